// Sub-accounts (your customers, each with its own endpoints and events): the list, create, edit,
// deactivate; one sub-account's page mints a portal session (a one-time URL to hand the customer or
// embed; docs/portal.md) and lists and revokes its sessions.

import { del, get, patch, post, qs } from "../api.js";
import {
  act, badge, button, clear, confirmDialog, copyable, field, fmtTime, formDialog, h, intOrUndef, link, pager, parseJson, pre,
  table, textarea, toast, values,
} from "../ui.js";

const base = "/dashboard/sub-accounts";

function accountFields(a = {}) {
  return [
    field("Name", { name: "name", required: true, maxlength: 200, value: a.name || "", placeholder: "Acme Customer Inc." }),
    field("Your id for it (subID)", { name: "subID", required: true, maxlength: 128, value: a.subID || "", placeholder: "cust_abc123" },
      "Unique in the workspace; events name the sub-account by it (X-Sub-Account-ID takes either)"),
    field("Metadata (JSON object)", textarea("metadata", JSON.stringify(a.metadata || {}, null, 2), 3)),
  ];
}

function accountBody(form) {
  const v = values(form);
  return { name: v.name.trim(), subID: v.subID.trim(), metadata: parseJson(v.metadata, "metadata", {}) };
}

const state = (a) => badge(a.active ? "active" : "deactivated", a.active ? "active" : "inactive");

function editDialog(a) {
  return formDialog(`Edit ${a.name}`, accountFields(a), (form) => patch(`/api/v1/sub-accounts/${a.id}`, accountBody(form)));
}

async function deactivate(a, btn) {
  if (!(await confirmDialog(`Deactivate ${a.name}? Its new events are refused and its portal sessions end; its history stays.`,
    "Deactivate"))) return false;
  return (await act(btn, () => del(`/api/v1/sub-accounts/${a.id}`), `${a.name} deactivated`)) !== undefined;
}

async function list({ main, navigate }) {
  const into = h("div", { id: "sub-accounts-list" });
  let p = null;
  p = pager((cursor) => get(`/api/v1/sub-accounts${qs({ limit: 50, cursor })}`), (rows) => table("!Sub-accounts", [
    ["Name", (a) => link(`${base}/${a.id}`, a.name)],
    ["subID", (a) => h("code", {}, a.subID)],
    ["State", state],
    ["Created", (a) => fmtTime(a.createdAt)],
    ["", (a) => h("div", { class: "actions" },
      button("Edit", async () => {
        if (await editDialog(a)) { toast("Sub-account saved"); await p.load(true); }
      }, "secondary"),
      a.active ? button("Deactivate", async (ev) => { if (await deactivate(a, ev.target)) await p.load(true); }, "danger") : null)],
  ], rows, "No sub-accounts yet."), into);
  const add = button("New sub-account", async () => {
    const made = await formDialog("New sub-account", accountFields(), (form) => post("/api/v1/sub-accounts", accountBody(form)), "Create");
    if (made) { toast(`${made.name} created`); navigate(`${base}/${made.id}`); }
  }, "primary");
  clear(main, h("div", { class: "row" }, h("h1", {}, "Sub-accounts"), add),
    h("p", { class: "muted" }, "Your customers: each has its own endpoints and events, and a portal where it manages them."),
    into, p.more);
  await p.load(true);
}

function sessionDialog(a) {
  return formDialog("New portal session", [
    field("Return URL", { name: "returnURL", type: "url", placeholder: "https://app.example.com/integrations" },
      "Where the portal's “Back” link leads (your product); its origin may frame the portal"),
    field("Idle timeout (seconds)", { name: "ttlSeconds", type: "number", min: 60, max: 86400, value: 3600 },
      "The session ends after this long without use"),
  ], (form) => {
    const v = values(form);
    return post(`/api/v1/sub-accounts/${a.id}/sessions`, { returnURL: v.returnURL.trim() || undefined,
      ttlSeconds: intOrUndef(v.ttlSeconds) });
  }, "Create");
}

function showPortalUrl(url) {
  return formDialog("Portal session created", [
    h("p", {}, "Give this URL to the customer or load it in your product's iframe. It works once, within minutes: "
      + "the first visit trades it for the session."),
    copyable("Portal URL", url, { "data-secret": "" }),
    h("p", {}, h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, "Open the portal in a new tab")),
  ], async () => true, "Done");
}

async function detail({ main, params }) {
  const id = params[0];
  const body = h("div", {});
  let account = null;
  const sessionsInto = h("div", { id: "portal-sessions" });
  let sp = null;
  sp = pager((cursor) => get(`/api/v1/sub-accounts/${id}/sessions${qs({ limit: 50, cursor })}`), (rows) => table("!Portal sessions", [
    ["Status", (s) => badge(s.status)],
    ["Created", (s) => fmtTime(s.createdAt)],
    ["Opened", (s) => fmtTime(s.exchangedAt)],
    ["Last seen", (s) => fmtTime(s.lastSeenAt)],
    ["Expires", (s) => fmtTime(s.expiresAt)],
    ["Return URL", (s) => (s.returnURL ? h("code", { class: "clip narrow", title: s.returnURL }, s.returnURL) : "—")],
    ["", (s) => (s.status === "pending" || s.status === "active" ? button("Revoke", async (ev) => {
      await act(ev.target, () => del(`/api/v1/sub-accounts/${id}/sessions/${s.id}`), "Session revoked");
      await sp.load(true);
    }, "danger") : "")]], rows, "No portal sessions yet."), sessionsInto);

  async function load() {
    account = await get(`/api/v1/sub-accounts/${id}`);
    const a = account;
    const mint = button("New portal session", async () => {
      const made = await sessionDialog(a);
      if (!made) return;
      await showPortalUrl(made.url);
      await sp.load(true);
    }, "primary");
    mint.disabled = !a.active;
    if (!a.active) mint.title = "A deactivated sub-account has no portal";
    const revokeAll = button("Revoke all", async (ev) => {
      if (!(await confirmDialog(`End every portal session of ${a.name}?`, "Revoke all"))) return;
      const out = await act(ev.target, () => del(`/api/v1/sub-accounts/${id}/sessions`));
      if (out) { toast(`${out.revoked} sessions revoked`); await sp.load(true); }
    }, "secondary");
    clear(body,
      h("div", { class: "row" }, h("h1", {}, a.name), state(a), h("div", { class: "actions" },
        button("Edit", async () => {
          if (await editDialog(a)) { toast("Sub-account saved"); await load(); }
        }, "secondary"),
        a.active ? button("Deactivate", async (ev) => { if (await deactivate(a, ev.target)) await load(); }, "danger") : null)),
      h("dl", { class: "props" },
        h("dt", {}, "Id"), h("dd", {}, h("code", {}, a.id)),
        h("dt", {}, "subID"), h("dd", { id: "sub-id" }, h("code", {}, a.subID)),
        h("dt", {}, "Created"), h("dd", {}, fmtTime(a.createdAt)),
        h("dt", {}, "Deactivated"), h("dd", {}, fmtTime(a.deactivatedAt))),
      Object.keys(a.metadata || {}).length ? h("section", {}, h("h2", {}, "Metadata"), pre(a.metadata)) : null,
      h("section", { "aria-labelledby": "ps-h" },
        h("div", { class: "row" }, h("h2", { id: "ps-h" }, "Portal sessions"), h("div", { class: "actions" }, revokeAll, mint)),
        sessionsInto, sp.more));
    await sp.load(true);
  }

  clear(main, h("p", {}, link(base, "← Sub-accounts")), body);
  try {
    await load();
  } catch (e) {
    clear(body, h("h1", {}, "Sub-account"), h("p", { class: "form-error", role: "alert" }, e.status === 404 ? "No such sub-account." : e.message));
  }
}

export function render(ctx) {
  return ctx.params.length ? detail(ctx) : list(ctx);
}
