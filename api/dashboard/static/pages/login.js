// Sign in: e-mail and password (POST /auth/login), single sign-on (a button per provider the server
// offers, GET /auth/providers; "Continue with SSO" finds the SAML identity provider of an address's
// domain, GET /auth/sso/discover), or an API key turned into a browser session (POST /auth/session:
// the first-start admin key works). All end in the HttpOnly mittr_session cookie; single sign-on
// leaves the page and comes back to `next` through the provider.

import { get, post, qs } from "../api.js";
import { errorText, field, h } from "../ui.js";

/** `url` (a path or an absolute URL of this server) with ?next= set. */
function withNext(url, next) {
  const u = new URL(url, location.origin);
  u.searchParams.set("next", next);
  return u.origin === location.origin ? u.pathname + u.search : u.href;
}

function providerButtons(next) {
  const list = h("div", { class: "providers", id: "sso-providers" });
  get("/auth/providers", { project: false }).then(({ providers }) => {
    for (const p of providers) {
      list.append(h("a", { class: "button provider", href: withNext(p.loginUrl, next), "data-provider": p.id },
        `Sign in with ${p.name}`));
    }
    if (providers.length) list.append(h("p", { class: "or" }, h("span", {}, "or")));
  }).catch(() => { /* no providers listed: password and SSO discovery still work */ });
  return list;
}

function ssoDiscovery(next) {
  const email = h("input", { type: "email", name: "ssoEmail", autocomplete: "username", required: true,
    placeholder: "you@company.com" });
  const note = h("p", { class: "form-error", role: "alert", id: "sso-error" });
  const form = h("form", { class: "card", "aria-labelledby": "sso-title", onsubmit: async (ev) => {
    ev.preventDefault();
    const btn = form.querySelector("button");
    btn.disabled = true;
    note.textContent = "";
    try {
      const found = await get(`/auth/sso/discover${qs({ email: email.value.trim() })}`, { project: false });
      if (found.sso && found.loginUrl) {
        note.setAttribute("role", "status");
        note.className = "muted";
        note.textContent = "Taking you to your identity provider…";
        location.assign(withNext(found.loginUrl, next));
        return;
      }
      note.textContent = "Single sign-on is not set up for this address's domain: sign in with your password.";
    } catch (e) {
      note.textContent = errorText(e);
    } finally {
      btn.disabled = false;
    }
  } },
  h("h2", { id: "sso-title" }, "Single sign-on"),
  h("p", { class: "muted" }, "Your company signs you in (SAML): enter your work address."),
  field("Work e-mail", email), note,
  h("button", { type: "submit", class: "secondary" }, "Continue with SSO"));
  return form;
}

export function render(root, done, next = "/dashboard/") {
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
      error.textContent = e.status === 401 ? "Wrong e-mail address or password."
        : e.code === "SSO_REQUIRED" ? "Your workspace signs you in through its identity provider: use Continue with SSO below."
          : errorText(e);
    } finally {
      btn.disabled = false;
    }
  }

  const byPassword = h("form", { class: "card", "aria-labelledby": "login-title", onsubmit: (ev) => submit(ev, () =>
    post("/auth/login", { email: email.value.trim(), password: password.value }, { project: false })) },
  h("h1", { id: "login-title" }, "Sign in to Mittr"),
  providerButtons(next),
  field("E-mail", email), field("Password", password), error,
  h("button", { type: "submit", class: "primary" }, "Sign in"));

  const byKey = h("details", { class: "card" }, h("summary", {}, "Sign in with an API key instead"),
    h("form", { onsubmit: (ev) => submit(ev, () =>
      post("/auth/session", undefined, { project: false, headers: { "X-API-Key": key.value.trim() } })) },
    h("p", { class: "muted" }, "The session acts with the key's scopes. `mittr serve` prints an admin key on first start."),
    field("API key", key),
    h("button", { type: "submit", class: "secondary" }, "Sign in with key")));

  root.append(h("main", { id: "main", class: "login" }, byPassword, ssoDiscovery(next), byKey));
  email.focus();
}
