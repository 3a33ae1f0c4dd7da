"""The human docs page at /docs: one self-contained HTML file (no CDN, works offline) that renders
the route table from /openapi.json, so it can never disagree with the document."""

DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Mittr API</title>
<style>
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1rem 2rem;
         color: #222; }
  h1 { margin-bottom: .2rem; } .muted { color: #666; }
  input { width: 100%; padding: .45rem; margin: .8rem 0; font: inherit; box-sizing: border-box; }
  details { border: 1px solid #ddd; border-radius: 6px; margin: .35rem 0; }
  summary { cursor: pointer; padding: .45rem .6rem; list-style: none; display: flex; gap: .8rem;
            align-items: baseline; }
  .m { font: bold 12px monospace; min-width: 4.2rem; text-align: center; border-radius: 4px; padding: 2px 4px;
       color: #fff; }
  .GET { background: #2b7bb9; } .POST { background: #2f9e44; } .PATCH { background: #d9822b; }
  .PUT { background: #9c6ade; } .DELETE { background: #c92a2a; }
  .p { font-family: monospace; } .sec { padding: 0 .8rem .8rem; }
  table { border-collapse: collapse; width: 100%; }
  td, th { border-bottom: 1px solid #eee; text-align: left; padding: 3px 6px; vertical-align: top; }
  pre { background: #f6f8fa; padding: .6rem; overflow: auto; max-height: 24rem; }
</style>
</head>
<body>
<h1>Mittr API</h1>
<p class="muted" id="info">Loading <a href="/openapi.json">/openapi.json</a>…</p>
<input id="filter" placeholder="Filter by path, method, tag or summary">
<div id="routes"></div>
<script>
"use strict";
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const kid of kids) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return e;
}
function resolve(doc, schema) {
  // Inline $refs to components for display (one level per use, cycles stop at the name).
  const seen = new Set();
  const walk = (s) => {
    if (Array.isArray(s)) return s.map(walk);
    if (!s || typeof s !== "object") return s;
    if (s.$ref) {
      const name = s.$ref.split("/").pop();
      if (seen.has(name)) return { $ref: name };
      seen.add(name);
      const out = walk(doc.components.schemas[name]);
      seen.delete(name);
      return out;
    }
    return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, walk(v)]));
  };
  return walk(schema);
}
function render(doc) {
  document.getElementById("info").textContent =
    `${doc.info.title} ${doc.info.version}: ${doc.info.description} Authenticate with the X-API-Key header.`;
  const root = document.getElementById("routes");
  const items = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const M = method.toUpperCase();
      const body = el("div", { class: "sec" });
      if (op.description) body.append(el("p", {}, op.description));
      if (op.parameters && op.parameters.length) {
        const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"),
                                     el("th", {}, "required"), el("th", {}, "schema")));
        for (const p of op.parameters) {
          t.append(el("tr", {}, el("td", { class: "p" }, p.name), el("td", {}, p.in),
                      el("td", {}, p.required ? "yes" : "no"), el("td", { class: "p" }, JSON.stringify(p.schema))));
        }
        body.append(el("h4", {}, "Parameters"), t);
      }
      if (op.requestBody) {
        const schema = resolve(doc, op.requestBody.content["application/json"].schema);
        body.append(el("h4", {}, "Request body"), el("pre", {}, JSON.stringify(schema, null, 2)));
      }
      const rt = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning")));
      for (const [code, r] of Object.entries(op.responses)) {
        rt.append(el("tr", {}, el("td", {}, code), el("td", {}, r.description)));
      }
      body.append(el("h4", {}, "Responses"), rt);
      const ok = Object.entries(op.responses).find(([c]) => c.startsWith("2"));
      if (ok && ok[1].content) {
        body.append(el("h4", {}, `Response ${ok[0]} body`),
                    el("pre", {}, JSON.stringify(resolve(doc, ok[1].content["application/json"].schema), null, 2)));
      }
      const head = el("summary", {}, el("span", { class: `m ${M}` }, M), el("span", { class: "p" }, path),
                      el("span", { class: "muted" }, `${op.summary} · ${(op.tags || []).join(", ")}`));
      const d = el("details", {}, head, body);
      d.dataset.search = `${M} ${path} ${op.summary} ${(op.tags || []).join(" ")}`.toLowerCase();
      items.push(d);
    }
  }
  items.sort((a, b) => a.dataset.search.split(" ")[1].localeCompare(b.dataset.search.split(" ")[1]));
  root.replaceChildren(...items);
  document.getElementById("filter").addEventListener("input", (ev) => {
    const q = ev.target.value.toLowerCase();
    for (const d of items) d.hidden = q !== "" && !d.dataset.search.includes(q);
  });
}
fetch("/openapi.json").then((r) => r.json()).then(render).catch((err) => {
  document.getElementById("info").textContent = `Could not load /openapi.json: ${err}`;
});
</script>
</body>
</html>
"""
