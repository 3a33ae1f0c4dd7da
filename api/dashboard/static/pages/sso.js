// SSO & provisioning (admins): the workspace's SAML identity providers (/api/v1/sso/saml: list, add
// from the IdP's metadata XML or URL, edit domains / require-SSO / default role, remove), each with
// the URLs to give the IdP; and SCIM tokens (/api/v1/scim/tokens: create, shown once with the SCIM
// base URL; list; revoke).

import { del, get, patch, post, qs } from "../api.js";
import {
  act, badge, button, clear, confirmDialog, copyable, errorText, field, fmtTime, formDialog, h, pager, revealOnce, select,
  table, textarea, toast, values,
} from "../ui.js";

const ROLES = ["viewer", "editor", "admin"];
const SLUG = "[a-z0-9](?:[a-z0-9\\-]{0,62}[a-z0-9])?";

const domainsOf = (text) => text.split(/[\s,]+/).map((d) => d.trim().toLowerCase()).filter(Boolean);

function requireBox(checked) {
  return h("div", { class: "field check" },
    h("input", { type: "checkbox", name: "requireSso", id: "saml-require", checked }),
    h("label", { for: "saml-require" }, "Require SSO: members may not sign in with a password"));
}

/** The settings both dialogs share; `c` is the connection being edited (undefined: a new one). */
function settingsFields(c) {
  return [
    field("Name", { name: "name", required: !c, value: c ? c.name : "", placeholder: "Okta" }),
    field("E-mail domains", { name: "emailDomains", value: c ? c.emailDomains.join(", ") : "", placeholder: "acme.com" },
      "Comma-separated. “Continue with SSO” sends these addresses to this IdP; new accounts only from them"),
    requireBox(c ? c.requireSso : false),
    field("Default role", select("defaultRole", ROLES, c ? c.defaultRole : "viewer"),
      "The role of someone the IdP signs in for the first time"),
  ];
}

function metadataFields(editing) {
  return [
    field(editing ? "Metadata URL (fetched again when given)" : "Metadata URL",
      { name: "metadataUrl", type: "url", placeholder: "https://acme.okta.com/app/…/sso/saml/metadata" }),
    field(editing ? "Replace the metadata XML" : "…or the metadata XML", textarea("metadataXml", "", 6),
      editing ? "Leave both empty to keep the IdP's settings" : "Paste the IdP's metadata document (one of the two)"),
  ];
}

function body(form, editing) {
  const v = values(form);
  const out = { emailDomains: domainsOf(v.emailDomains), requireSso: v.requireSso, defaultRole: v.defaultRole };
  if (v.name.trim()) out.name = v.name.trim();
  if (!editing) out.slug = v.slug.trim();
  if (v.metadataUrl.trim()) out.metadataUrl = v.metadataUrl.trim();
  else if (v.metadataXml.trim()) out.metadataXml = v.metadataXml.trim();
  else if (!editing) throw new Error("Give the IdP's metadata URL or paste its metadata XML");
  return out;
}

function connectionCard(c, reload) {
  const edit = button("Edit", async () => {
    const saved = await formDialog(`Edit ${c.name}`, [...settingsFields(c), ...metadataFields(true)],
      (form) => patch(`/api/v1/sso/saml/${c.id}`, body(form, true), { project: false }));
    if (saved) { toast("Connection saved"); await reload(); }
  }, "secondary");
  const remove = button("Delete", async (ev) => {
    if (!(await confirmDialog(`Delete the SAML connection ${c.name}? Its members then sign in with a password.`, "Delete"))) return;
    await act(ev.target, () => del(`/api/v1/sso/saml/${c.id}`, { project: false }), "Connection deleted");
    await reload();
  }, "danger");
  const titleId = `saml-${c.id}`;
  return h("section", { class: "card saml", "aria-labelledby": titleId, "data-slug": c.slug },
    h("div", { class: "row" }, h("h3", { id: titleId }, c.name, " ", h("code", {}, c.slug)),
      c.requireSso ? badge("SSO required", "active") : badge("password allowed", "muted"), h("div", { class: "actions" }, edit, remove)),
    h("dl", { class: "props" },
      h("dt", {}, "E-mail domains"), h("dd", { class: "domains" }, c.emailDomains.length ? c.emailDomains.join(", ") : "none (sign-in by URL only)"),
      h("dt", {}, "Default role"), h("dd", { class: "default-role" }, c.defaultRole),
      h("dt", {}, "IdP entity id"), h("dd", {}, h("code", {}, c.idpEntityId)),
      h("dt", {}, "IdP sign-on URL"), h("dd", {}, h("code", {}, c.ssoUrl)),
      h("dt", {}, "Metadata"), h("dd", {}, c.metadataUrl ? h("code", {}, c.metadataUrl) : "given as XML"),
      h("dt", {}, "Certificates"), h("dd", {}, c.certificates.map((cert) =>
        h("div", {}, cert.subject, " · expires ", fmtTime(cert.notAfter))))),
    h("h4", {}, "Give these to your identity provider"),
    copyable("ACS URL (single sign-on URL)", c.sp.acsUrl),
    copyable("SP entity id (audience)", c.sp.entityId),
    copyable("SP metadata URL", c.sp.metadataUrl),
    copyable("Sign-in URL", c.sp.loginUrl));
}

async function samlSection() {
  const into = h("div", { id: "saml-list", class: "cards" });
  async function load() {
    try {
      const page = await get(`/api/v1/sso/saml${qs({ limit: 100 })}`, { project: false });
      clear(into, page.data.length ? page.data.map((c) => connectionCard(c, load))
        : h("p", { class: "empty" }, "No SAML identity provider yet: people sign in with a password or a server-wide provider."));
    } catch (e) {
      clear(into, h("p", { class: "form-error", role: "alert" }, errorText(e)));
    }
  }
  const add = button("New SAML connection", async () => {
    const made = await formDialog("New SAML connection", [
      field("Slug", { name: "slug", required: true, pattern: SLUG, placeholder: "okta" },
        "Lower-case letters, digits and -: names the connection in its URLs"),
      ...settingsFields(), ...metadataFields(false),
    ], (form) => post("/api/v1/sso/saml", body(form, false), { project: false }), "Create");
    if (made) { toast(`Connection ${made.name} created: give its URLs to the IdP`); await load(); }
  }, "primary");
  await load();
  return h("section", { "aria-labelledby": "saml-h" },
    h("div", { class: "row" }, h("h2", { id: "saml-h" }, "SAML identity providers"), add),
    h("p", { class: "muted" }, "People of these domains sign in at their company's IdP (Okta, Entra ID, Google Workspace, …). "
      + "Set [auth] public_url first: the URLs below are built from it."),
    into);
}

async function scimSection() {
  const into = h("div", { id: "scim-list" });
  let p = null;
  p = pager((cursor) => get(`/api/v1/scim/tokens${qs({ limit: 50, cursor })}`, { project: false }), (rows) => table("!SCIM tokens", [
    ["Name", (t) => t.name],
    ["Prefix", (t) => h("code", {}, t.prefix + "…")],
    ["State", (t) => badge(t.active ? "active" : "revoked")],
    ["Created", (t) => fmtTime(t.createdAt)],
    ["Last used", (t) => fmtTime(t.lastUsedAt)],
    ["", (t) => (t.active ? button("Revoke", async (ev) => {
      if (!(await confirmDialog(`Revoke the SCIM token ${t.name}? The IdP's next request is refused.`, "Revoke"))) return;
      await act(ev.target, () => del(`/api/v1/scim/tokens/${t.id}`, { project: false }), "Token revoked");
      await p.load(true);
    }, "danger") : fmtTime(t.revokedAt))]], rows, "No SCIM tokens yet."), into);
  const add = button("New SCIM token", async () => {
    const made = await formDialog("New SCIM token", [
      field("Name", { name: "name", required: true, placeholder: "Okta" }, "Which identity provider uses it"),
    ], (form) => post("/api/v1/scim/tokens", { name: values(form).name.trim() }, { project: false }), "Create");
    if (!made) return;
    await revealOnce("SCIM token created", "Bearer token", made.token, [
      copyable("SCIM base URL", made.scimBaseUrl),
      h("p", { class: "muted" }, "In the IdP's provisioning settings: the base URL, and the token as an HTTP header (Bearer)."),
    ]);
    await p.load(true);
  }, "primary");
  try {
    await p.load(true);
  } catch (e) {
    clear(into, h("p", { class: "form-error", role: "alert" }, errorText(e)));
  }
  return h("section", { "aria-labelledby": "scim-h" },
    h("div", { class: "row" }, h("h2", { id: "scim-h" }, "SCIM provisioning"), add),
    h("p", { class: "muted" }, "An identity provider with a token adds, updates and removes members of this workspace (SCIM 2.0)."),
    into, p.more);
}

export async function render({ main }) {
  const [saml, scim] = await Promise.all([samlSection(), scimSection()]);
  clear(main, h("h1", {}, "SSO & provisioning"), saml, scim);
}
