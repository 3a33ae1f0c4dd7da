// The public API as the dashboard calls it: same origin, the mittr_session cookie, JSON in and out,
// X-Project-ID from the project switcher. Errors arrive in the API's {"error", "code"} shape.

const PROJECT_KEY = "mittr.project";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "HTTP_" + status;
  }
}

let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }

export function currentProject() { return localStorage.getItem(PROJECT_KEY) || ""; }
export function setProject(id) {
  if (id) localStorage.setItem(PROJECT_KEY, id); else localStorage.removeItem(PROJECT_KEY);
}

export async function api(method, path, body, { headers = {}, project = true } = {}) {
  const h = { Accept: "application/json", ...headers };
  const pid = currentProject();
  if (project && pid) h["X-Project-ID"] = pid;
  const init = { method, headers: h, credentials: "same-origin" };
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = resp.status === 204 ? "" : await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text }; }
  }
  if (!resp.ok) {
    if (resp.status === 401 && !path.startsWith("/auth/")) unauthorized();
    throw new ApiError(resp.status, data);
  }
  return data;
}

export const get = (path, opts) => api("GET", path, undefined, opts);
export const post = (path, body, opts) => api("POST", path, body, opts);
export const patch = (path, body, opts) => api("PATCH", path, body, opts);
export const put = (path, body, opts) => api("PUT", path, body, opts);
export const del = (path, opts) => api("DELETE", path, undefined, opts);

/** "?a=1&b=2" from the non-empty values of `params`. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

/** Sends an event: the API wants an idempotency key on every create. */
export function sendEvent(body) {
  return post("/api/v1/events", body, { headers: { "X-Idempotency-Key": "dash-" + crypto.randomUUID() } });
}

/** The stats WebSocket (the cookie authenticates it), scoped like every call. */
export function statsSocket() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const pid = currentProject();
  return new WebSocket(`${proto}//${location.host}/api/v1/stats/ws${qs({ projectId: pid })}`);
}
