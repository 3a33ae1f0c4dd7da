// Sign in: e-mail and password (POST /auth/login), or an API key turned into a browser session
// (POST /auth/session: the first-start admin key works). Both set the HttpOnly mittr_session cookie.

import { post } from "../api.js";
import { errorText, field, h } from "../ui.js";

export function render(root, done) {
  const error = h("p", { class: "form-error", role: "alert", id: "login-error" });
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const key = h("input", { type: "password", name: "apiKey", autocomplete: "off", required: true, placeholder: "mtr_…" });

  async function submit(ev, fn) {
    ev.preventDefault();
    const btn = ev.target.querySelector("button");
    btn.disabled = true;
    error.textContent = "";
    try {
      await fn();
      await done();
    } catch (e) {
      error.textContent = e.status === 401 ? "Wrong e-mail address or password." : errorText(e);
    } finally {
      btn.disabled = false;
    }
  }

  const byPassword = h("form", { class: "card", "aria-labelledby": "login-title", onsubmit: (ev) => submit(ev, () =>
    post("/auth/login", { email: email.value.trim(), password: password.value }, { project: false })) },
  h("h1", { id: "login-title" }, "Sign in to Mittr"),
  field("E-mail", email), field("Password", password), error,
  h("button", { type: "submit", class: "primary" }, "Sign in"));

  const byKey = h("details", { class: "card" }, h("summary", {}, "Sign in with an API key instead"),
    h("form", { onsubmit: (ev) => submit(ev, () =>
      post("/auth/session", undefined, { project: false, headers: { "X-API-Key": key.value.trim() } })) },
    h("p", { class: "muted" }, "The session acts with the key's scopes. `mittr serve` prints an admin key on first start."),
    field("API key", key),
    h("button", { type: "submit", class: "secondary" }, "Sign in with key")));

  root.append(h("main", { id: "main", class: "login" }, byPassword, byKey));
  email.focus();
}
