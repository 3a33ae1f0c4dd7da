// Overview: top-line figures, live queue stats over the stats WebSocket, and the analytics charts
// (outcomes, throughput, latency, failures, endpoint health) for a chosen window.

import { get, qs, statsSocket } from "../api.js";
import { barList, lineChart, sparkline, stackedBars } from "../charts.js";
import { badge, clear, fmtNum, h, link, pct, select, table } from "../ui.js";

const WINDOWS = [["1", "Last hour"], ["24", "Last 24 hours"], ["168", "Last 7 days"], ["720", "Last 30 days"]];

function card(label, value, extra) {
  return h("div", { class: "stat" }, h("span", { class: "stat-label" }, label), h("strong", {}, value), extra || null);
}

function liveSection() {
  const status = h("span", { class: "live-status", role: "status" }, "connecting…");
  const figures = h("div", { class: "stats", id: "live-figures" });
  const spark = h("div", { class: "spark-wrap" });
  const delivered = [];
  let ws = null;
  let stopped = false;
  let retry = 500;
  let timer = null;

  function draw(st) {
    delivered.push(st.deliveredPerSec);
    if (delivered.length > 60) delivered.shift();
    clear(figures,
      card("Queue depth", fmtNum(st.queueDepth)),
      card("In flight", fmtNum(st.inFlight)),
      card("Delivered/s", fmtNum(st.deliveredPerSec, 2)),
      card("Failed/s", fmtNum(st.failedPerSec, 2)),
      card("Delivered, last min", fmtNum(st.lastMinute.delivered),
        h("small", {}, `${fmtNum(st.lastMinute.failed)} failed, ${fmtNum(st.lastMinute.dead)} dead`)),
      card("Shards", fmtNum(st.shards.length)));
    clear(spark, sparkline(delivered, `Delivered per second, last ${delivered.length} seconds`));
  }

  function connect() {
    ws = statsSocket();
    ws.addEventListener("open", () => { retry = 500; status.textContent = "live"; status.className = "live-status on"; });
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.code) { status.textContent = `refused: ${msg.error}`; stopped = true; return; }
      draw(msg);
    });
    ws.addEventListener("close", () => {
      status.className = "live-status";
      if (stopped) return;
      status.textContent = "reconnecting…";
      timer = setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }
  connect();
  const section = h("section", { "aria-labelledby": "live-h" },
    h("h2", { id: "live-h" }, "Live ", status), figures, spark);
  return { section, stop: () => { stopped = true; clearTimeout(timer); if (ws) ws.close(); } };
}

async function analytics(into, hours) {
  const to = new Date();
  const from = new Date(to - hours * 3600e3);
  const q = qs({ from: from.toISOString(), to: to.toISOString() });
  const names = ["summary", "outcomes", "throughput", "latency", "failures", "endpoint-health"];
  const [sum, out, thr, lat, fail, health] = await Promise.all(names.map((n) => get(`/api/v1/analytics/${n}${q}`)));
  const ts = (r) => r.data.map((d) => d.timestamp);
  const col = (r, k) => r.data.map((d) => d[k]);
  clear(into,
    h("div", { class: "stats" },
      card("Sent", fmtNum(sum.sent)), card("Delivered", fmtNum(sum.delivered)), card("Failed", fmtNum(sum.failed)),
      card("Dead-lettered", fmtNum(sum.deadLettered)), card("Success rate", pct(sum.successRate)),
      card("Avg latency", sum.avgLatencyMs == null ? "—" : `${fmtNum(sum.avgLatencyMs, 1)} ms`)),
    h("div", { class: "charts" },
      stackedBars(`Outcomes per ${out.granularity}`, ts(out), [
        { name: "Success", values: col(out, "success"), color: 1 },
        { name: "Failure", values: col(out, "failure"), color: 3 },
        { name: "Timeout", values: col(out, "timeout"), color: 2 }]),
      lineChart(`Throughput per ${thr.granularity}`, ts(thr), [
        { name: "Attempts/s", values: col(thr, "attemptsPerSec"), color: 0 },
        { name: "Events/s", values: col(thr, "eventsPerSec"), color: 1 }], { fmt: (v) => fmtNum(v, 3) }),
      lineChart("Latency (ms)", ts(lat), [
        { name: "p50", values: col(lat, "p50"), color: 1 },
        { name: "p95", values: col(lat, "p95"), color: 2 },
        { name: "p99", values: col(lat, "p99"), color: 3 }], { unit: " ms", fmt: (v) => fmtNum(v) }),
      barList(`Failures by category (${fmtNum(fail.total)})`,
        Object.entries(fail.categories).map(([name, value]) => ({ name, value })))),
    h("section", { "aria-labelledby": "health-h" }, h("h2", { id: "health-h" }, "Endpoint health"),
      table("!Endpoint health", [
        ["Endpoint", (r) => link(`/dashboard/endpoints/${r.endpointId}`, r.url)],
        ["Status", (r) => badge(r.status)],
        ["Circuit", (r) => badge(r.circuitState.replace("_", "-"), `circuit-${r.circuitState}`)],
        ["Attempts", (r) => fmtNum(r.attempts)],
        ["Delivery rate", (r) => pct(r.deliveryRate)],
        ["p95", (r) => (r.p95LatencyMs == null ? "—" : `${r.p95LatencyMs} ms`)],
        ["Dead", (r) => fmtNum(r.dead)]], health.data, "No endpoints yet.")));
}

export async function render({ main }) {
  const body = h("div", { class: "analytics" });
  const win = select("window", WINDOWS, "24");
  win.id = "window";
  const reload = () => analytics(body, Number(win.value)).catch((e) => clear(body, h("p", { class: "form-error", role: "alert" }, e.message)));
  win.addEventListener("change", reload);
  const live = liveSection();
  clear(main, h("h1", {}, "Overview"), live.section,
    h("section", { "aria-labelledby": "an-h" },
      h("div", { class: "row" }, h("h2", { id: "an-h" }, "Analytics"),
        h("div", { class: "field inline" }, h("label", { for: "window" }, "Window"), win)),
      body));
  await reload();
  return live.stop;
}
