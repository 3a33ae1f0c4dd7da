// The dashboard shell: who is signed in, the project switcher, navigation, and the page router.
// Pages are ES modules loaded when first opened; each exports render(ctx) and may return a cleanup.
// A fourth NAV field `true` marks an admin-only page: hidden from editors and viewers (the API would
// refuse them anyway); a key's session sees it and its scopes decide.

import { currentProject, del, get, onUnauthorized, setProject } from "./api.js";
import { act, clear, h, select, toast } from "./ui.js";

const BASE = "/dashboard";
const NAV = [
  ["overview", "Overview", "overview.js"],
  ["events", "Events", "events.js"],
  ["endpoints", "Endpoints", "endpoints.js"],
  ["event-types", "Event types", "event_types.js"],
  ["alerts", "Alerting", "alerts.js"],
  ["api-keys", "API keys", "api_keys.js"],
  ["team", "Team", "team.js"],
  ["projects", "Projects", "projects.js"],
  ["sub-accounts", "Sub-accounts", "sub_accounts.js"],
  ["audit-log", "Audit log", "audit.js", true],
  ["sso", "SSO & provisioning", "sso.js", true],
];
const root = document.getElementById("app");
let session = null;
let cleanup = null;
let renderSeq = 0;

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  route();
}

function parse() {
  const rest = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "/";
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "overview", params: parts.slice(1) };
}

async function route() {
  const seq = ++renderSeq;
  if (cleanup) { try { cleanup(); } catch { /* a page's teardown must not stop the next page */ } cleanup = null; }
  const { name, params } = parse();
  if (name === "login") {
    if (!session) session = await get("/auth/session", { project: false }).catch(() => null);
    if (seq !== renderSeq) return;
    if (session) await shell();
    return showLogin();
  }
  if (!session) {
    try {
      session = await get("/auth/session", { project: false });
    } catch {
      return toLogin();
    }
    if (seq !== renderSeq) return;
    await shell();
  }
  const entry = visibleNav().find(([n]) => n === name);
  const main = document.getElementById("main");
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === (entry ? entry[0] : "")) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (!entry) {
    clear(main, h("h1", {}, "Not found"), h("p", {}, "No such page."));
    return;
  }
  document.title = `${entry[1]} · Mittr`;
  clear(main, h("p", { class: "loading", role: "status" }, "Loading…"));
  try {
    const mod = await import(`./pages/${entry[2]}`);
    if (seq !== renderSeq) return;
    clear(main);
    const out = await mod.render({ main, params, session, navigate, base: BASE });
    if (seq !== renderSeq) { if (typeof out === "function") out(); return; }
    cleanup = typeof out === "function" ? out : null;
    const heading = main.querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
  } catch (e) {
    if (seq !== renderSeq) return;
    clear(main, h("h1", {}, entry[1]), h("p", { class: "form-error", role: "alert" }, `Could not load: ${e.message}`));
  }
}

function toLogin() {
  session = null;
  const next = location.pathname.startsWith(BASE + "/login") ? "" : location.pathname + location.search;
  history.replaceState(null, "", `${BASE}/login${next && next !== BASE + "/" ? "?next=" + encodeURIComponent(next) : ""}`);
  showLogin();
}

/** Where signing in leads: the dashboard page in ?next=, else the overview. */
function nextPath() {
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith(BASE + "/") && !next.startsWith(BASE + "/login") ? next : `${BASE}/`;
}

function afterLogin() {
  navigate(nextPath(), { replace: true });
}

const visibleNav = () => NAV.filter(([, , , admin]) => !admin || !session || !session.role || session.role === "admin");

async function showLogin() {
  if (session) {   // signed in already (a bookmarked login page): straight on
    afterLogin();
    return;
  }
  document.title = "Sign in · Mittr";
  const mod = await import("./pages/login.js");
  clear(root);
  mod.render(root, async () => afterLogin(), nextPath());
}

async function projectSwitcher() {
  let projects = [];
  try {
    projects = (await get("/api/v1/projects?limit=100", { project: false })).data;
  } catch { /* a key without projects:read: the switcher stays at "All projects" */ }
  if (currentProject() && !projects.some((p) => p.id === currentProject())) setProject("");
  const sel = select("project", [["", "All projects"], ...projects.map((p) => [p.id, `${p.name} (${p.environment})`])],
    currentProject());
  sel.id = "project-switch";
  sel.addEventListener("change", () => {
    setProject(sel.value);
    toast(sel.value ? `Project: ${sel.selectedOptions[0].textContent}` : "All projects");
    route();
  });
  return h("div", { class: "switcher" }, h("label", { for: "project-switch" }, "Project"), sel);
}

export async function refreshSwitcher() {
  const old = document.querySelector(".switcher");
  if (old) old.replaceWith(await projectSwitcher());
}

async function shell() {
  const who = session.user ? session.user.email : session.apiKey ? `key ${session.apiKey.keyPrefix}…` : "";
  const logout = h("button", { type: "button", class: "secondary", onclick: () => act(logout, async () => {
    await del("/auth/session", { project: false });
    toLogin();
  }) }, "Sign out");
  clear(root,
    h("header", { class: "top" },
      h("a", { class: "brand", href: `${BASE}/`, "data-nav": "" }, "Mittr"),
      h("span", { class: "workspace", title: "Workspace" }, session.workspace.name),
      await projectSwitcher(),
      h("span", { class: "who" }, who, session.role ? ` · ${session.role}` : "",
        session.role === "viewer" ? h("span", { class: "badge", title: "Viewers can look, not change" }, "read-only") : null),
      logout),
    h("nav", { "aria-label": "Main" }, h("ul", {}, visibleNav().map(([n, label]) =>
      h("li", {}, h("a", { href: n === "overview" ? `${BASE}/` : `${BASE}/${n}`, "data-nav": "", "data-page": n }, label))))),
    h("main", { id: "main" }),
    h("div", { id: "toasts", class: "toasts", "aria-live": "polite" }));
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a[data-nav]");
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);
onUnauthorized(() => { if (session) toLogin(); });
route();
