// Charts drawn as inline SVG (no library): lines, stacked bars and horizontal bars. Each chart is a
// <figure> whose SVG has a text alternative, and whose numbers are also in a table under <details>.

import { h } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
const W = 480;
const H = 200;
const PAD = { l: 46, r: 10, t: 12, b: 26 };

function s(tag, attrs, ...kids) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const kid of kids.flat()) if (kid) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return e;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const compact = (n) => (Math.abs(n) >= 1000 ? `${+(n / 1000).toFixed(1)}k` : `${+n.toPrecision(3)}`);

function tickLabel(iso, span) {
  const d = new Date(iso);
  return span > 2 * 86400e3
    ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
    : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function frame(labels, max, unit) {
  const g = s("g", { class: "axes" });
  const innerH = H - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + innerH - (innerH * i) / 4;
    g.append(s("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: "grid" }),
      s("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end" }, compact((max * i) / 4) + (i === 4 ? unit : "")));
  }
  const n = labels.length;
  if (n) {
    const span = new Date(labels[n - 1]) - new Date(labels[0]);
    const step = Math.max(1, Math.ceil(n / 6));
    for (let i = 0; i < n; i += step) {
      g.append(s("text", { x: xAt(i, n), y: H - 8, "text-anchor": "middle" }, tickLabel(labels[i], span)));
    }
  }
  return g;
}

function xAt(i, n) {
  const innerW = W - PAD.l - PAD.r;
  return n <= 1 ? PAD.l + innerW / 2 : PAD.l + (innerW * i) / (n - 1);
}

function legend(series) {
  return h("ul", { class: "legend" }, series.map((sr, i) => h("li", {}, h("span", { class: `key k${sr.color ?? i}` }), sr.name)));
}

function dataTable(title, labels, series, fmt) {
  return h("details", {}, h("summary", {}, "Data table"),
    h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "sr-only" }, title),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Time"), series.map((sr) => h("th", { scope: "col" }, sr.name)))),
      h("tbody", {}, labels.map((l, i) => h("tr", {}, h("td", {}, new Date(l).toLocaleString()),
        series.map((sr) => h("td", {}, fmt(sr.values[i])))))))));
}

function figure(title, summary, svg, extra) {
  const id = "c" + Math.random().toString(36).slice(2, 8);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", id);
  svg.prepend(s("title", { id }, `${title}: ${summary}`));
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg, extra);
}

function empty(title) {
  return h("figure", { class: "chart" }, h("figcaption", {}, title), h("p", { class: "empty" }, "No data in this window."));
}

/** Lines over time. series: [{name, values, color}] aligned with `labels` (ISO timestamps). */
export function lineChart(title, labels, series, { unit = "", fmt = (v) => (v ?? "—") } = {}) {
  if (!labels.length) return empty(title);
  const max = niceMax(Math.max(0, ...series.flatMap((sr) => sr.values.map((v) => v ?? 0))));
  const innerH = H - PAD.t - PAD.b;
  const y = (v) => PAD.t + innerH - (innerH * (v ?? 0)) / max;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "svg-chart" }, frame(labels, max, unit));
  series.forEach((sr, i) => {
    // A null (no attempts in that bucket) breaks the line rather than drawing a false zero.
    let run = [];
    const flush = () => {
      if (run.length) svg.append(s("polyline", { points: run.join(" "), class: `line k${sr.color ?? i}` }));
      run = [];
    };
    sr.values.forEach((v, j) => {
      if (v === null || v === undefined) flush();
      else run.push(`${xAt(j, labels.length).toFixed(1)},${y(v).toFixed(1)}`);
    });
    flush();
    if (labels.length <= 48) {
      sr.values.forEach((v, j) => v != null && svg.append(s("circle", { cx: xAt(j, labels.length), cy: y(v), r: 2.5, class: `dot k${sr.color ?? i}` },
        s("title", {}, `${sr.name} ${fmt(v)}${unit} at ${new Date(labels[j]).toLocaleString()}`))));
    }
  });
  const last = series.map((sr) => `${sr.name} ${fmt(sr.values[sr.values.length - 1])}${unit}`).join(", ");
  return figure(title, `${labels.length} points; latest ${last}`, svg, [legend(series), dataTable(title, labels, series, fmt)]);
}

/** Stacked bars over time, one stack per label. */
export function stackedBars(title, labels, series) {
  if (!labels.length) return empty(title);
  const totals = labels.map((_, i) => series.reduce((a, sr) => a + (sr.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const innerW = W - PAD.l - PAD.r;
  const innerH = H - PAD.t - PAD.b;
  const bw = Math.max(2, (innerW / labels.length) * 0.7);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "svg-chart" }, frame(labels, max, ""));
  labels.forEach((l, i) => {
    let base = PAD.t + innerH;
    const cx = labels.length === 1 ? PAD.l + innerW / 2 : PAD.l + (innerW * i) / (labels.length - 1);
    series.forEach((sr, k) => {
      const v = sr.values[i] || 0;
      if (!v) return;
      const hgt = (innerH * v) / max;
      base -= hgt;
      svg.append(s("rect", { x: (cx - bw / 2).toFixed(1), y: base.toFixed(1), width: bw.toFixed(1), height: hgt.toFixed(1),
        class: `bar k${sr.color ?? k}` }, s("title", {}, `${sr.name}: ${v} at ${new Date(l).toLocaleString()}`)));
    });
  });
  const sums = series.map((sr) => `${sr.name} ${sr.values.reduce((a, v) => a + (v || 0), 0)}`).join(", ");
  return figure(title, `totals: ${sums}`, svg, [legend(series), dataTable(title, labels, series, (v) => v ?? 0)]);
}

/** Horizontal bars: [{name, value}] (e.g. failures by category). */
export function barList(title, items) {
  const total = items.reduce((a, it) => a + it.value, 0);
  if (!total) return empty(title);
  const max = Math.max(...items.map((it) => it.value));
  const rowH = 22;
  const width = 400;   // narrower than the line charts: the labels then read at the same size
  const labelW = 70;
  const barW = width - labelW - 40;
  const svg = s("svg", { viewBox: `0 0 ${width} ${items.length * rowH + 4}`, class: "svg-chart" });
  items.forEach((it, i) => {
    const y = i * rowH + 2;
    svg.append(s("text", { x: 0, y: y + 14, class: "bar-label" }, it.name),
      s("rect", { x: labelW, y: y + 3, width: barW, height: 14, class: "track" }),
      s("rect", { x: labelW, y: y + 3, width: ((barW * it.value) / max).toFixed(1), height: 14, class: "bar k3" },
        s("title", {}, `${it.name}: ${it.value}`)),
      s("text", { x: labelW + barW + 8, y: y + 14, class: "bar-label" }, String(it.value)));
  });
  const summary = items.filter((it) => it.value).map((it) => `${it.name} ${it.value}`).join(", ");
  return figure(title, summary, svg, null);
}

/** A tiny live line (last N samples), redrawn in place. */
export function sparkline(values, label) {
  const w = 240;
  const hh = 48;
  const max = niceMax(Math.max(0, ...values));
  const pts = values.map((v, i) => `${((w * i) / Math.max(1, values.length - 1)).toFixed(1)},${(hh - (hh * v) / max).toFixed(1)}`);
  return s("svg", { viewBox: `0 0 ${w} ${hh}`, class: "spark", role: "img", "aria-label": label },
    s("polyline", { points: pts.join(" "), class: "line k0" }));
}
