// API keys: list, create (the raw key is shown once), revoke.

import { del, get, post, qs } from "../api.js";
import {
  act, badge, button, clear, confirmDialog, field, fmtTime, formDialog, h, intOrUndef, pager, revealOnce, select, table,
  values,
} from "../ui.js";

export async function render({ main }) {
  const into = h("div", { id: "keys-list" });
  let projects = [];
  try { projects = (await get("/api/v1/projects?limit=100", { project: false })).data; } catch { /* no projects:read */ }
  const pname = (id) => (projects.find((p) => p.id === id) || { name: id }).name;
  let p = null;
  p = pager((cursor) => get(`/api/v1/api-keys${qs({ limit: 100, cursor })}`), (rows) => table("!API keys", [
    ["Name", (k) => k.name],
    ["Prefix", (k) => h("code", {}, k.keyPrefix + "…")],
    ["Scopes", (k) => k.scopes.join(", ")],
    ["Project", (k) => (k.projectId ? pname(k.projectId) : "all")],
    ["Rate limit", (k) => (k.rateLimit ? `${k.rateLimit}/s` : "default")],
    ["Expires", (k) => fmtTime(k.expiresAt)],
    ["State", (k) => badge(k.isActive ? "active" : "revoked", k.isActive ? "active" : "dead")],
    ["Created", (k) => fmtTime(k.createdAt)],
    ["", (k) => (k.isActive ? button("Revoke", async (ev) => {
      if (!(await confirmDialog(`Revoke key ${k.name}? Requests with it fail at once.`, "Revoke"))) return;
      await act(ev.target, () => del(`/api/v1/api-keys/${k.id}`), "Key revoked");
      await p.load(true);
    }, "danger") : "")]], rows), into);
  const add = button("New API key", async () => {
    const made = await formDialog("New API key", [
      field("Name", { name: "name", required: true }),
      field("Scopes", { name: "scopes", value: "*" }, "Comma-separated, e.g. events:write, endpoints:read; * for all"),
      field("Project", select("projectId", [["", "All projects"], ...projects.map((pr) => [pr.id, pr.name])], "")),
      field("Rate limit (requests/s, empty = default)", { name: "rateLimit", type: "number", min: 1 }),
      field("Expires", { name: "expiresAt", type: "date" }),
    ], (form) => {
      const v = values(form);
      return post("/api/v1/api-keys", {
        name: v.name.trim(), scopes: v.scopes.split(",").map((s) => s.trim()).filter(Boolean),
        projectId: v.projectId || undefined, rateLimit: intOrUndef(v.rateLimit),
        expiresAt: v.expiresAt ? new Date(v.expiresAt + "T00:00:00Z").toISOString() : undefined,
      }, { project: false });
    }, "Create");
    if (!made) return;
    await revealOnce("API key created", "API key", made.key);
    await p.load(true);
  }, "primary");
  clear(main, h("div", { class: "row" }, h("h1", {}, "API keys"), add), into, p.more);
  await p.load(true);
}
