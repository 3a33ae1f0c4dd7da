// Team: members and their roles, pending invitations, inviting by e-mail.

import { del, get, patch, post, qs } from "../api.js";
import { act, badge, button, clear, confirmDialog, field, fmtTime, formDialog, h, select, table, toast, values } from "../ui.js";

const ROLES = ["admin", "editor", "viewer"];

export async function render({ main, session }) {
  const members = h("div", { id: "members" });
  const invites = h("div", { id: "invites" });
  async function load() {
    const page = await get(`/api/v1/team${qs({ limit: 100 })}`, { project: false });
    clear(members, table("Members", [
      ["Name", (m) => m.name || "—"],
      ["E-mail", (m) => [m.email, m.emailVerified ? "" : [" ", badge("unverified", "muted")]]],
      ["Role", (m) => {
        const sel = select("role", ROLES, m.role);
        sel.setAttribute("aria-label", `Role of ${m.email}`);
        sel.addEventListener("change", () => act(sel, () => patch(`/api/v1/team/${m.id}`, { role: sel.value }, { project: false }),
          `${m.email} is now ${sel.value}`).then(load));
        return sel;
      }],
      ["Joined", (m) => fmtTime(m.joinedAt)],
      ["", (m) => (session.user && session.user.id === m.id ? badge("you", "active") : button("Remove", async (ev) => {
        if (!(await confirmDialog(`Remove ${m.email} from the workspace?`, "Remove"))) return;
        await act(ev.target, () => del(`/api/v1/team/${m.id}`, { project: false }), "Member removed");
        await load();
      }, "danger"))]], page.data));
    clear(invites, table("Pending invitations", [
      ["E-mail", (i) => i.email], ["Role", (i) => i.role], ["Status", (i) => badge(i.status)],
      ["Invited", (i) => fmtTime(i.invitedAt)], ["Expires", (i) => fmtTime(i.expiresAt)],
      ["", (i) => button("Revoke", async (ev) => {
        await act(ev.target, () => del(`/api/v1/team/invites/${i.id}`, { project: false }), "Invitation revoked");
        await load();
      }, "danger")]], page.invitations, "No pending invitations."));
  }
  const invite = button("Invite member", async () => {
    const made = await formDialog("Invite a member", [
      field("E-mail", { name: "email", type: "email", required: true }),
      field("Role", select("role", ROLES, "editor")),
    ], (form) => post("/api/v1/team/invite", values(form), { project: false }), "Invite");
    if (made) { toast(`Invitation mailed to ${made.email}`); await load(); }
  }, "primary");
  clear(main, h("div", { class: "row" }, h("h1", {}, "Team"), invite), members, invites);
  await load();
}
