// Small DOM helpers shared by every page: elements built node by node (no HTML strings), tables, forms, dialogs, toasts.

/** h("button", {class: "x", onclick: fn}, "text", child): attributes, listeners and children. */
export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "value") e.value = v;
    else if (k === "checked") e.checked = !!v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  append(e, kids);
  return e;
}

function append(e, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
}

export function clear(e, ...kids) { e.replaceChildren(); append(e, kids); return e; }

let seq = 0;
export const uid = (p = "f") => `${p}${++seq}`;

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return h("time", { datetime: iso, title: iso }, d.toLocaleString(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" }));
}

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export const pct = (r) => (r === null || r === undefined ? "—" : `${(r * 100).toFixed(1)}%`);

export function badge(text, kind) {
  return h("span", { class: `badge b-${kind || text}` }, text);
}

/** The last 12 characters: event ids are UUIDv7, whose first ones are the (shared) timestamp. */
export const shortId = (id) => (id ? id.slice(-12) : "—");

/** A link the router handles (no page load). */
export function link(href, ...kids) { return h("a", { href, "data-nav": "" }, ...kids); }

/** A table with a caption; `cols` are [header, row => cell]. */
export function table(caption, cols, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: caption.startsWith("!") ? "sr-only" : "" }, caption.replace(/^!/, "")),
    h("thead", {}, h("tr", {}, cols.map(([name]) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map(([, cell]) => h("td", {}, cell(r))))))));
}

export function pre(value) {
  return h("pre", { class: "json", tabindex: "0" }, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

/** A labelled control. `input` may be an element or the attributes of an <input>. */
export function field(label, input, hint) {
  const control = input instanceof Node ? input : h("input", input);
  if (!control.id) control.id = uid();
  const hintId = hint ? control.id + "-hint" : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control,
    hint ? h("small", { id: hintId }, hint) : null);
}

export function select(name, options, value) {
  return h("select", { name }, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: v === value }, text);
  }));
}

export function textarea(name, value, rows = 6) {
  return h("textarea", { name, rows, spellcheck: "false", value: value ?? "" });
}

export function button(text, onclick, kind = "") {
  return h("button", { type: "button", class: kind, onclick }, text);
}

/** Parses a JSON textarea's value, naming the field when it is not JSON. */
export function parseJson(text, name, fallback) {
  if (!text.trim()) return fallback;
  try { return JSON.parse(text); } catch (e) { throw new Error(`${name}: not valid JSON (${e.message})`); }
}

const live = () => document.getElementById("toasts");

export function toast(message, kind = "ok") {
  const region = live();
  if (!region) return;
  const t = h("div", { class: `toast t-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  region.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

export const errorText = (e) => (e && e.code ? `${e.message} (${e.code})` : String(e && e.message || e));

/** Runs an action from a button: disables it meanwhile, reports errors as a toast. */
export async function act(btn, fn, done) {
  if (btn) btn.disabled = true;
  try {
    const out = await fn();
    if (done) toast(done);
    return out;
  } catch (e) {
    toast(errorText(e), "error");
    return undefined;
  } finally {
    if (btn) btn.disabled = false;
  }
}

/** A modal <dialog> (focus is kept inside, Esc closes it) holding a form; resolves with what
 * `submit(form)` returns, or null when cancelled. Errors from submit show inside the dialog. */
export function formDialog(title, fields, submit, submitText = "Save") {
  return new Promise((resolve) => {
    const err = h("p", { class: "form-error", role: "alert" });
    const titleId = uid("dlg");
    const form = h("form", { method: "dialog" }, h("h2", { id: titleId }, title), fields, err,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, submitText)));
    const dlg = h("dialog", { "aria-labelledby": titleId }, form);
    const opener = document.activeElement;
    let settled = false;
    const close = (value) => {
      if (settled) return;
      settled = true;
      dlg.close();
      dlg.remove();
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();   // keyboard users stay put
      resolve(value);
    };
    dlg.addEventListener("cancel", (ev) => { ev.preventDefault(); close(null); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      err.textContent = "";
      try {
        close(await submit(form));
      } catch (e) {
        err.textContent = errorText(e);
      } finally {
        btn.disabled = false;
      }
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** Copies text to the clipboard, saying so (or why not). */
export function copy(text) {
  if (!navigator.clipboard) return toast("Copying needs a secure page (HTTPS): select the text instead", "error");
  return navigator.clipboard.writeText(text).then(() => toast("Copied"), () => toast("Could not copy", "error"));
}

/** A read-only value with its label and a Copy button (URLs to give an identity provider, ...). */
export function copyable(label, value, attrs = {}) {
  const input = h("input", { readonly: true, value, class: "mono", ...attrs });
  input.id = uid();
  return h("div", { class: "field copy" }, h("label", { for: input.id }, label),
    h("div", { class: "inline" }, input, h("button", { type: "button", class: "secondary", title: `Copy ${label}`,
      "aria-describedby": input.id, onclick: () => copy(value) }, "Copy")));
}

/** Shows a secret once, with a copy button (and any `extra` nodes after it); resolves when dismissed. */
export function revealOnce(title, label, secret, extra = []) {
  return formDialog(title, [
    h("p", {}, "Copy it now: it is not shown again."),
    copyable(label, secret, { "data-secret": "" }),
    extra,
  ], async () => true, "Done");
}

export function confirmDialog(text, confirmText = "Confirm") {
  return formDialog(text, [], async () => true, confirmText).then((v) => v === true);
}

/** The form's values by control name (checkboxes as booleans). */
export function values(form) {
  const out = {};
  for (const c of form.elements) {
    if (!c.name) continue;
    out[c.name] = c.type === "checkbox" ? c.checked : c.value;
  }
  return out;
}

export const intOrUndef = (v) => (v === "" || v === undefined ? undefined : Number.parseInt(v, 10));

/** A "Load more" pager over the API's cursor pagination. */
export function pager(fetchPage, render, into) {
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let cursor = null;
  let rows = [];
  async function load(reset) {
    if (reset) { cursor = null; rows = []; }
    const page = await fetchPage(cursor);
    rows = rows.concat(page.data);
    cursor = page.pagination && page.pagination.hasMore ? page.pagination.cursor : null;
    more.hidden = !cursor;
    clear(into, render(rows));
  }
  more.addEventListener("click", () => act(more, () => load(false)));
  return { load, more };
}
