// Audit log (admins): who changed what, when and from where (GET /api/v1/audit-logs, newest first),
// filtered by resource and action (kept in the address, so a reload or a shared link shows the same),
// paged 50 at a time; each entry's before/after on demand. Under a project: that project's entries.

import { get, qs } from "../api.js";
import { act, badge, clear, field, fmtTime, h, pager, pre, table } from "../ui.js";

// Common values, offered as suggestions (any name the API records can be typed).
const RESOURCES = ["session", "workspace", "team_member", "invite", "api_key", "project", "endpoint", "event", "event_type",
  "alert_rule", "connector", "inbound_endpoint", "sub_account", "portal_session", "saml_connection", "scim_token",
  "subscription"];
const ACTIONS = ["create", "update", "delete", "login", "logout", "invite", "revoke", "retry", "deactivate", "export"];

function suggestions(id, items) {
  return h("datalist", { id }, items.map((v) => h("option", { value: v })));
}

/** Who made the change: a person's address, a key's name, or the system. */
function actor({ actor: a }) {
  return h("span", { class: "actor" }, a.label || "—", " ", badge(a.type === "api_key" ? "key" : a.type.replace("_", " "), "muted"));
}

function change(e) {
  if (e.before == null && e.after == null) return "";
  return h("details", { class: "change" }, h("summary", {}, "Details"),
    e.before != null ? [h("div", { class: "muted" }, "Before"), pre(e.before)] : null,
    e.after != null ? [h("div", { class: "muted" }, "After"), pre(e.after)] : null);
}

export async function render({ main }) {
  const params = new URLSearchParams(location.search);
  const resource = h("input", { name: "resource", list: "audit-resources", value: params.get("resource") || "",
    maxlength: 64, autocomplete: "off" });
  const action = h("input", { name: "action", list: "audit-actions", value: params.get("action") || "", maxlength: 64,
    autocomplete: "off" });
  const into = h("div", { id: "audit-list" });
  const p = pager((cursor) => get(`/api/v1/audit-logs${qs({ resource: resource.value.trim(), action: action.value.trim(),
    limit: 50, cursor })}`), (rows) => table("!Audit log", [
    ["When", (e) => fmtTime(e.createdAt)],
    ["Who", actor],
    ["Action", (e) => h("strong", {}, e.action)],
    ["Resource", (e) => e.resource],
    ["Id", (e) => (e.resourceId ? h("code", { class: "clip narrow", title: e.resourceId }, e.resourceId) : "—")],
    ["From", (e) => e.ip || "—"],
    ["", change]], rows, "No entries match."), into);
  const filters = h("form", { class: "filters", onsubmit: (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", `/dashboard/audit-log${qs({ resource: resource.value.trim(), action: action.value.trim() })}`);
    act(null, () => p.load(true));
  } },
  field("Resource", resource), field("Action", action),
  h("button", { type: "submit", class: "secondary" }, "Filter"),
  suggestions("audit-resources", RESOURCES), suggestions("audit-actions", ACTIONS));
  clear(main, h("h1", {}, "Audit log"),
    h("p", { class: "muted" }, "Every change in the workspace, newest first: who made it (a person or an API key), from which address."),
    filters, into, p.more);
  await p.load(true);
}
