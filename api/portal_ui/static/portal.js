// Mittr's embedded sub-account portal: one ES module, no build step, no dependencies.
// It exchanges the one-time token from its URL for a session token (kept in memory and in this
// tab's sessionStorage, never in the URL), then calls /sub-account-api/* with it. Everything it shows
// is the sub-account's own: the API scopes every call to the session's sub-account.

const API = "/sub-account-api";
const STORE = "mittr.portal";
const FINAL = new Set(["delivered", "dead"]);
const STATUSES = ["queued", "delivering", "delivered", "failed", "dead"];
// Theme: query parameter -> CSS variable, and what a value may look like (colours, lengths, fonts).
const COLOR = /^(#[0-9a-f]{3,8}|[a-z]{3,20})$/i;
const THEME = {
  accent: ["--mittr-accent", COLOR], accentFg: ["--mittr-accent-fg", COLOR], bg: ["--mittr-bg", COLOR],
  fg: ["--mittr-fg", COLOR], muted: ["--mittr-muted", COLOR], border: ["--mittr-border", COLOR],
  radius: ["--mittr-radius", /^\d{1,2}(\.\d)?(px|rem)$/], font: ["--mittr-font", /^[\w ,'"-]{1,120}$/],
};

const state = { token: null, session: null, poll: null, render: 0, quiet: false };
const $ = (id) => document.getElementById(id);

class Expired extends Error {}

/** A DOM element: h("a", {href: "#x", class: "b"}, "text", child). Text is never parsed as HTML. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false)
    el.append(c instanceof Node ? c : String(c));
  return el;
}

function announce(message, kind = "info") {
  const s = $("status");
  s.dataset.kind = kind;
  s.textContent = message;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function badge(status) {
  return h("span", { class: `badge ${status}` }, status);
}

async function call(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(API + path, init);
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (resp.status === 401) {
    showExpired(state.session?.returnURL);
    throw new Expired();
  }
  if (!resp.ok) throw new Error(data?.error || `request failed (${resp.status})`);
  return data;
}

function save() {
  try {
    sessionStorage.setItem(STORE, JSON.stringify({ token: state.token, sessionId: state.session.sessionId }));
  } catch { /* storage blocked: the session lives in memory for this page */ }
}

function saved() {
  try { return JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch { return null; }
}

function forget() {
  state.token = null;
  try { sessionStorage.removeItem(STORE); } catch { /* nothing stored */ }
}

function applyTheme(params) {
  for (const [name, [variable, shape]] of Object.entries(THEME)) {
    const value = params.get(name);
    if (value && shape.test(value)) document.documentElement.style.setProperty(variable, value);
  }
}

function stopPolling() {
  clearTimeout(state.poll);
  state.poll = null;
}

/** Replace the main area with a view; focus its heading so keyboard and screen-reader users follow. */
function show(...nodes) {
  stopPolling();
  state.render += 1;
  const main = $("main");
  main.replaceChildren(...nodes);
  if (!state.quiet) (main.querySelector("h2") || main).focus();
  return state.render;
}

function showExpired(returnURL) {
  forget();
  stopPolling();
  $("tabs").hidden = true;
  $("back").hidden = true;
  const back = returnURL ? h("a", { href: returnURL, class: "button primary", target: "_top",
                                     rel: "noopener noreferrer" }, `Return to ${new URL(returnURL).host}`) : null;
  show(h("section", { class: "expired", "aria-labelledby": "expired-title" },
    h("h2", { id: "expired-title", tabindex: "-1" }, "Session expired"),
    h("p", {}, "This portal session has expired or was revoked. Open the webhooks page again from the application."),
    back));
  announce("Your session has expired.", "error");
}

function markTab(view) {
  for (const a of $("tabs").querySelectorAll("a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

// -- endpoints -----------------------------------------------------------------------------

async function endpointsView() {
  markTab("endpoints");
  const list = await call("GET", "/endpoints?limit=100");
  const rows = list.data.map((ep) => h("tr", {},
    h("td", { class: "url" }, ep.url, ep.description ? h("div", { class: "muted" }, ep.description) : null),
    h("td", {}, ep.eventTypes.join(", ")),
    h("td", {}, badge(ep.status)),
    h("td", {}, h("div", { class: "row" },
      h("a", { href: `#endpoints/${ep.id}/edit`, class: "button", "aria-label": `Edit ${ep.url}` }, "Edit"),
      h("button", { type: "button", "aria-label": `${ep.status === "paused" ? "Resume" : "Pause"} ${ep.url}`,
                    onclick: (e) => toggle(e.currentTarget, ep) }, ep.status === "paused" ? "Resume" : "Pause"),
      h("button", { type: "button", "aria-label": `Send test event to ${ep.url}`,
                    onclick: (e) => sendTest(e.currentTarget, ep) }, "Send test event")))));
  show(h("section", { "aria-labelledby": "ep-title" },
    h("div", { class: "head" }, h("h2", { id: "ep-title", tabindex: "-1" }, "Endpoints"),
      h("a", { href: "#endpoints/new", class: "button primary" }, "Add endpoint")),
    rows.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["URL", "Event types", "Status", "Actions"].map((t) =>
          h("th", { scope: "col" }, t)))), h("tbody", {}, rows))
      : h("p", { class: "empty" }, "No endpoints yet. Add one to start receiving webhooks.")));
}

async function toggle(button, ep) {
  button.disabled = true;
  const action = ep.status === "paused" ? "resume" : "pause";
  try {
    await call("POST", `/endpoints/${ep.id}/${action}`);
    announce(action === "pause" ? `Paused ${ep.url}: events wait until you resume it.` : `Resumed ${ep.url}.`);
    await endpointsView();
  } catch (err) {
    if (!(err instanceof Expired)) { announce(err.message, "error"); button.disabled = false; }
  }
}

async function sendTest(button, ep) {
  button.disabled = true;
  try {
    const ev = await call("POST", `/endpoints/${ep.id}/test`);
    announce(`Test event sent to ${ep.url}.`);
    location.hash = `#events/${ev.id}`;
  } catch (err) {
    if (!(err instanceof Expired)) { announce(err.message, "error"); button.disabled = false; }
  }
}

function typesOf(text) {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

async function endpointForm(id) {
  markTab("endpoints");
  const ep = id ? await call("GET", `/endpoints/${id}`) : null;
  const error = h("div", { class: "alert", role: "alert", hidden: true });
  const url = h("input", { type: "url", name: "url", required: true, value: ep?.url ?? "",
                           placeholder: "https://example.com/webhooks", autocomplete: "url" });
  const types = h("input", { type: "text", name: "eventTypes", required: true,
                             value: (ep?.eventTypes ?? ["*"]).join(", "), "aria-describedby": "types-hint" });
  const description = h("input", { type: "text", name: "description", value: ep?.description ?? "" });
  const rotate = ep ? h("input", { type: "checkbox", name: "rotate" }) : null;
  const form = h("form", { novalidate: true },
    h("label", {}, "URL", url),
    h("label", {}, "Event types", types,
      h("span", { id: "types-hint", class: "hint" }, "Comma-separated; * matches every type, order.* a family.")),
    h("label", {}, "Description", description),
    rotate ? h("label", { class: "check" }, rotate, "Generate a new signing secret") : null,
    error,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, ep ? "Save" : "Create endpoint"),
      h("a", { href: "#endpoints", class: "button" }, "Cancel")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    const body = { url: url.value.trim(), eventTypes: typesOf(types.value), description: description.value.trim() };
    if (rotate?.checked) body.signingSecret = null;
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const out = await call(ep ? "PATCH" : "POST", ep ? `/endpoints/${ep.id}` : "/endpoints", body);
      if (out.signingSecret) return secretView(out, !ep);
      announce(`Saved ${out.url}.`);
      location.hash = "#endpoints";
    } catch (err) {
      if (err instanceof Expired) return;
      error.textContent = err.message;
      error.hidden = false;
      submit.disabled = false;
      announce(err.message, "error");
      url.focus();
    }
  });
  show(h("section", { "aria-labelledby": "form-title" },
    h("div", { class: "head" }, h("h2", { id: "form-title", tabindex: "-1" }, ep ? "Edit endpoint" : "Add endpoint")),
    form));
}

function secretView(ep, created) {
  const code = h("code", { id: "secret" }, ep.signingSecret);
  const copy = h("button", { type: "button", onclick: async () => {
    try { await navigator.clipboard.writeText(ep.signingSecret); announce("Secret copied."); }
    catch { announce("Copy failed: select the secret and copy it by hand.", "error"); }
  } }, "Copy");
  show(h("section", { "aria-labelledby": "secret-title" },
    h("div", { class: "head" }, h("h2", { id: "secret-title", tabindex: "-1" },
      created ? "Endpoint created" : "New signing secret")),
    h("div", { class: "secret" },
      h("p", {}, h("strong", {}, "Signing secret for "), ep.url),
      h("p", {}, code),
      h("p", { class: "muted" }, "Copy it now: it is shown only once. Use it to verify the X-Mittr-Signature header."),
      h("div", { class: "row" }, copy, h("a", { href: "#endpoints", class: "button primary" }, "Done")))));
  announce(created ? "Endpoint created. Copy its signing secret now: it is shown only once."
                   : "New signing secret made. Copy it now: it is shown only once.");
}

// -- events --------------------------------------------------------------------------------

async function eventsView(params) {
  markTab("events");
  const status = STATUSES.includes(params.get("status")) ? params.get("status") : "";
  const query = new URLSearchParams({ limit: "25" });
  if (status) query.set("status", status);
  if (params.get("cursor")) query.set("cursor", params.get("cursor"));
  const list = await call("GET", `/events?${query}`);
  const filter = h("select", { id: "status-filter", onchange: (e) => {
    location.hash = e.target.value ? `#events?status=${e.target.value}` : "#events";
  } }, h("option", { value: "" }, "All"), STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)));
  const rows = list.data.map((ev) => h("tr", {},
    h("td", {}, h("a", { href: `#events/${ev.id}` }, ev.eventType ?? ev.destination ?? ev.id)),
    h("td", {}, badge(ev.status)),
    h("td", {}, `${ev.attempts} / ${ev.maxAttempts}`),
    h("td", {}, when(ev.createdAt))));
  const more = list.pagination?.hasMore
    ? h("a", { class: "button", href: `#events?${new URLSearchParams({ ...(status && { status }),
                                                                      cursor: list.pagination.cursor })}` }, "Older events")
    : null;
  show(h("section", { "aria-labelledby": "ev-title" },
    h("div", { class: "head" }, h("h2", { id: "ev-title", tabindex: "-1" }, "Events"),
      h("div", { class: "row" }, h("label", { class: "check", for: "status-filter" }, "Status"), filter,
        h("button", { type: "button", onclick: () => route() }, "Refresh"))),
    rows.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["Event", "Status", "Attempts", "Created"].map((t) =>
          h("th", { scope: "col" }, t)))), h("tbody", {}, rows))
      : h("p", { class: "empty" }, status ? `No ${status} events.` : "No events yet."),
    more));
}

function attemptRow(a) {
  const result = a.statusCode ? `HTTP ${a.statusCode}` : (a.errorCategory || "error");
  return h("tr", {},
    h("td", {}, a.attemptNumber),
    h("td", {}, h("span", { class: `badge ${a.outcome === "success" ? "delivered" : "failed"}` }, result),
      a.error && a.error !== result ? h("div", { class: "muted" }, a.error) : null),
    h("td", {}, `${a.durationMs} ms`),
    h("td", {}, when(a.attemptedAt)));
}

async function eventView(id) {
  markTab("events");
  const ev = await call("GET", `/events/${id}`);
  const retry = ["failed", "dead"].includes(ev.status)
    ? h("button", { type: "button", class: "primary", onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          await call("POST", `/events/${ev.id}/retry`);
          announce("Event queued for delivery again.");
          await eventView(id);
        } catch (err) { if (!(err instanceof Expired)) announce(err.message, "error"); }
      } }, "Retry")
    : null;
  const attempts = ev.deliveryAttempts;
  const pending = ev.pending.map((p) => h("li", {}, `${p.status}: ${p.waitingReason ?? "waiting"}`,
    p.nextAttemptAt ? ` (next attempt ${when(p.nextAttemptAt)})` : ""));
  const shown = show(h("section", { "aria-labelledby": "event-title" },
    h("div", { class: "head" }, h("h2", { id: "event-title", tabindex: "-1" }, `Event ${ev.eventType ?? ""}`),
      h("div", { class: "row" }, retry, h("a", { href: "#events", class: "button" }, "All events"))),
    h("dl", {},
      h("dt", {}, "Status"), h("dd", { id: "event-status" }, badge(ev.status)),
      h("dt", {}, "ID"), h("dd", {}, h("code", {}, ev.id)),
      h("dt", {}, "Attempts"), h("dd", {}, `${ev.attempts} / ${ev.maxAttempts}`),
      h("dt", {}, "Created"), h("dd", {}, when(ev.createdAt)),
      h("dt", {}, "Delivered"), h("dd", {}, when(ev.deliveredAt))),
    h("h3", {}, "Delivery attempts"),
    attempts.length
      ? h("table", { id: "attempts" }, h("thead", {}, h("tr", {}, ["#", "Result", "Duration", "Time"].map((t) =>
          h("th", { scope: "col" }, t)))), h("tbody", {}, attempts.map(attemptRow)))
      : h("p", { class: "empty" }, "No attempt yet."),
    pending.length ? [h("h3", {}, "Waiting"), h("ul", {}, pending)] : null,
    h("h3", {}, "Payload"),
    h("pre", {}, JSON.stringify(ev.payload, null, 2))));
  if (!FINAL.has(ev.status)) {
    // Follow it until it settles; a new view (or a route change) stops this.
    state.poll = setTimeout(async () => {
      if (state.render !== shown) return;
      state.quiet = true;   // a refresh of the same view: leave the focus where the reader is
      try {
        await eventView(id);
      } catch (err) {
        if (!(err instanceof Expired)) announce(err.message, "error");
      } finally {
        state.quiet = false;
      }
    }, 1000);
  } else if (state.lastAnnounced !== `${id}:${ev.status}`) {
    state.lastAnnounced = `${id}:${ev.status}`;
    announce(`Event ${ev.status} after ${ev.attempts} attempt${ev.attempts === 1 ? "" : "s"}.`);
  }
}

// -- routing and start ---------------------------------------------------------------------

async function route() {
  if (!state.token) return;
  const [path, query] = (location.hash.slice(1) || "endpoints").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/");
  try {
    if (parts[0] === "events" && parts[1]) await eventView(parts[1]);
    else if (parts[0] === "events") await eventsView(params);
    else if (parts[0] === "endpoints" && parts[1] === "new") await endpointForm(null);
    else if (parts[0] === "endpoints" && parts[2] === "edit") await endpointForm(parts[1]);
    else await endpointsView();
  } catch (err) {
    if (!(err instanceof Expired)) announce(err.message, "error");
  }
}

async function exchange(token) {
  const resp = await fetch(`${API}/auth/exchange`, { method: "POST", cache: "no-store", credentials: "omit",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) });
  return resp.ok ? resp.json() : null;
}

async function start() {
  const params = new URLSearchParams(location.search);
  applyTheme(params);
  const token = params.get("token");
  params.delete("token");
  const keep = params.size ? `?${params}` : "";
  if (location.pathname === "/s/exchange") {
    history.replaceState(null, "", `/s/exchange${keep}${location.hash}`);   // the token leaves the address now
    const session = token ? await exchange(token) : null;
    if (!session) return showExpired(null);
    state.token = session.token;
    state.session = session;
    save();
    history.replaceState(null, "", `/s/${encodeURIComponent(session.sessionId)}${keep}${location.hash}`);
  } else {
    const stored = saved();
    if (!stored || `/s/${stored.sessionId}` !== location.pathname) return showExpired(null);
    state.token = stored.token;
    try { state.session = await call("GET", "/session"); } catch { return; }
  }
  const { subAccount, returnURL } = state.session;
  $("account").textContent = subAccount.name;
  if (returnURL) {
    const back = $("back");
    back.href = returnURL;
    back.textContent = `Back to ${new URL(returnURL).host}`;
    back.hidden = false;
  }
  $("tabs").hidden = false;
  window.addEventListener("hashchange", route);
  await route();
}

start();
