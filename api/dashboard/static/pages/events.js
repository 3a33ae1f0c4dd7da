// Events: the list (status filter), delivery attempts across events (range, outcome, endpoint, type
// filters), sending an event, and one event's detail with its attempts, replay and edit-and-replay.

import { get, patch, post, qs, sendEvent } from "../api.js";
import {
  act, badge, button, clear, confirmDialog, field, fmtTime, formDialog, h, intOrUndef, link, pager, parseJson, pre, select,
  shortId, table, textarea, toast, values,
} from "../ui.js";

const STATUSES = ["", "queued", "delivering", "delivered", "failed", "dead"];
const FINAL = new Set(["delivered", "dead"]);

export function sendEventDialog(preset = {}) {
  const mode = select("mode", [["eventType", "By event type (fan-out)"], ["destination", "Direct to a URL"]],
    preset.destination ? "destination" : "eventType");
  return formDialog("Send an event", [
    field("Delivery", mode),
    field("Event type or destination URL", { name: "target", required: true, value: preset.eventType || preset.destination || "" }),
    field("Payload (JSON object)", textarea("payload", JSON.stringify(preset.payload || { hello: "world" }, null, 2))),
    field("Priority", { name: "priority", type: "number", min: 1, max: 10, value: 5 }, "1 highest, 10 lowest"),
    field("Delay (seconds)", { name: "delaySeconds", type: "number", min: 0, value: 0 }),
  ], async (form) => {
    const v = values(form);
    const body = { [v.mode]: v.target.trim(), payload: parseJson(v.payload, "payload", {}),
      priority: intOrUndef(v.priority), delaySeconds: intOrUndef(v.delaySeconds) || undefined };
    return sendEvent(body);
  }, "Send");
}

function eventsTable(rows) {
  return table("!Events", [
    ["Event", (e) => link(`/dashboard/events/${e.id}`, h("code", {}, shortId(e.id)))],
    ["Status", (e) => badge(e.status)],
    ["Type / destination", (e) => e.eventType || e.destination],
    ["Attempts", (e) => `${e.attempts}/${e.maxAttempts}`],
    ["Created", (e) => fmtTime(e.createdAt)],
    ["Delivered", (e) => fmtTime(e.deliveredAt)]], rows, "No events match.");
}

export function attemptsTable(rows, withEvent) {
  return table("!Delivery attempts", [
    ...(withEvent ? [["Event", (a) => link(`/dashboard/events/${a.eventId}`, h("code", {}, shortId(a.eventId)))]] : []),
    ["#", (a) => a.attemptNumber],
    ["Outcome", (a) => badge(a.outcome)],
    ["Status", (a) => a.statusCode ?? "—"],
    ["Duration", (a) => `${a.durationMs} ms`],
    ["Endpoint", (a) => (a.endpointId ? link(`/dashboard/endpoints/${a.endpointId}`, h("code", {}, shortId(a.endpointId))) : "direct")],
    ["Error", (a) => a.error ? `${a.error}${a.errorCategory ? ` (${a.errorCategory})` : ""}` : ""],
    ["Response", (a) => h("code", { class: "clip", title: a.responseBody }, a.responseBody)],
    ["At", (a) => fmtTime(a.attemptedAt)]], rows, "No attempts yet.");
}

async function list({ main, navigate }) {
  const status = select("status", STATUSES.map((s) => [s, s || "Any status"]), new URLSearchParams(location.search).get("status") || "");
  status.id = "status-filter";
  const into = h("div", { id: "events-list" });
  const p = pager((cursor) => get(`/api/v1/events${qs({ status: status.value, limit: 25, cursor })}`), eventsTable, into);
  const retryAll = button("Retry these", async () => {
    const which = status.value;
    if (!(await confirmDialog(`Replay up to 100 ${which} events?`, "Replay"))) return;
    const out = await act(retryAll, () => post("/api/v1/events/batch/retry", { status: which, limit: 100 }));
    if (out) { toast(`${out.retried} events replayed`); await p.load(true); }
  }, "secondary");
  const showRetry = () => { retryAll.hidden = !["failed", "dead"].includes(status.value); };
  showRetry();
  status.addEventListener("change", () => {
    history.replaceState(null, "", `/dashboard/events${qs({ status: status.value })}`);
    showRetry();
    act(null, () => p.load(true));
  });

  const range = select("range", ["1h", "24h", "7d", "30d"], "24h");
  const outcome = select("outcome", [["", "Any outcome"], "success", "failure", "timeout"], "");
  const endpointId = h("input", { name: "endpoint_id", placeholder: "endpoint id" });
  const eventType = h("input", { name: "event_type", placeholder: "event type" });
  const attemptsInto = h("div", { id: "attempts-list" });
  const ap = pager((cursor) => get(`/api/v1/deliveries${qs({ range: range.value, outcome: outcome.value,
    endpoint_id: endpointId.value.trim(), event_type: eventType.value.trim(), limit: 20, cursor })}`),
  (rows) => attemptsTable(rows, true), attemptsInto);
  const filterForm = h("form", { class: "filters", onsubmit: (ev) => { ev.preventDefault(); act(null, () => ap.load(true)); } },
    field("Range", range), field("Outcome", outcome), field("Endpoint", endpointId), field("Event type", eventType),
    h("button", { type: "submit", class: "secondary" }, "Filter"));

  const send = button("Send event", async () => {
    const made = await sendEventDialog();
    if (made) { toast("Event queued"); navigate(`/dashboard/events/${made.id}`); }
  }, "primary");
  const goId = h("input", { name: "id", placeholder: "event id", "aria-label": "Event id" });
  const go = h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); if (goId.value.trim()) navigate(`/dashboard/events/${goId.value.trim()}`); } },
    goId, h("button", { type: "submit", class: "secondary" }, "Open"));

  clear(main, h("div", { class: "row" }, h("h1", {}, "Events"), send),
    h("section", { "aria-labelledby": "ev-h" }, h("div", { class: "row" }, h("h2", { id: "ev-h" }, "Events"),
      h("div", { class: "field inline" }, h("label", { for: "status-filter" }, "Status"), status), retryAll, go), into, p.more),
    h("section", { "aria-labelledby": "at-h" }, h("h2", { id: "at-h" }, "Delivery attempts"), filterForm, attemptsInto, ap.more));
  await Promise.all([p.load(true), ap.load(true)]);
}

async function detail({ main, params, navigate }) {
  const id = params[0];
  const body = h("div", {});
  let timer = null;
  let alive = true;

  async function editDialog(ev) {
    return formDialog("Edit and replay", [
      ev.destination ? field("Destination", { name: "destination", value: ev.destination, type: "url" }) : null,
      field("Payload (JSON object)", textarea("payload", JSON.stringify(ev.payload, null, 2), 10)),
      field("Headers (JSON object)", textarea("headers", JSON.stringify(ev.headers || {}, null, 2), 3)),
      h("div", { class: "field check" }, h("input", { type: "checkbox", name: "replay", id: "edit-replay", checked: true }),
        h("label", { for: "edit-replay" }, "Replay after saving")),
    ], async (form) => {
      const v = values(form);
      const change = { payload: parseJson(v.payload, "payload", {}), headers: parseJson(v.headers, "headers", {}), replay: v.replay };
      if (ev.destination && v.destination !== ev.destination) change.destination = v.destination;
      return patch(`/api/v1/events/${id}`, change);
    });
  }

  async function load() {
    const [ev, att] = await Promise.all([get(`/api/v1/events/${id}`), get(`/api/v1/events/${id}/deliveries`)]);
    if (!alive) return;
    const canReplay = ev.status === "failed" || ev.status === "dead";
    const replay = button("Replay", () => act(replay, async () => {
      await post(`/api/v1/events/${id}/replay`);
      await load();
    }, "Replay queued"), "primary");
    const edit = button("Edit and replay", async () => {
      if (await editDialog(ev)) { toast("Event updated"); await load(); }
    }, "secondary");
    replay.disabled = !canReplay;
    edit.disabled = !canReplay;
    if (!canReplay) {
      replay.title = edit.title = "Only failed or dead events can be replayed or edited";
    }
    clear(body,
      h("div", { class: "row" }, h("h1", {}, "Event ", h("code", {}, shortId(ev.id))), badge(ev.status),
        h("div", { class: "actions" }, replay, edit, button("Refresh", () => act(null, load), "secondary"))),
      h("dl", { class: "props" },
        h("dt", {}, "Id"), h("dd", {}, h("code", {}, ev.id)),
        h("dt", {}, "Idempotency key"), h("dd", {}, h("code", {}, ev.idempotencyKey)),
        h("dt", {}, ev.eventType ? "Event type" : "Destination"), h("dd", {}, ev.eventType || ev.destination),
        h("dt", {}, "Attempts"), h("dd", { id: "event-attempts" }, `${ev.attempts} of ${ev.maxAttempts}`),
        h("dt", {}, "Priority"), h("dd", {}, ev.priority),
        h("dt", {}, "Created"), h("dd", {}, fmtTime(ev.createdAt)),
        h("dt", {}, "Delivered"), h("dd", {}, fmtTime(ev.deliveredAt))),
      ev.pending && ev.pending.length ? h("section", {}, h("h2", {}, "Pending deliveries"), table("!Pending deliveries", [
        ["Endpoint", (d) => (d.endpointId ? link(`/dashboard/endpoints/${d.endpointId}`, h("code", {}, shortId(d.endpointId))) : d.destination)],
        ["Status", (d) => badge(d.status)], ["Attempts", (d) => d.attempts],
        ["Waiting", (d) => d.waitingReason.replaceAll("_", " ")], ["Next attempt", (d) => fmtTime(d.nextAttemptAt)]], ev.pending)) : null,
      h("section", { "aria-labelledby": "att-h" }, h("h2", { id: "att-h" }, `Attempts (${att.count})`), attemptsTable(att.deliveries, false)),
      h("section", {}, h("h2", {}, "Payload"), pre(ev.payload)),
      Object.keys(ev.headers || {}).length ? h("section", {}, h("h2", {}, "Headers"), pre(ev.headers)) : null);
    clearTimeout(timer);
    if (!FINAL.has(ev.status)) timer = setTimeout(() => load().catch(() => {}), 1000);
  }

  clear(main, h("p", {}, link("/dashboard/events", "← Events")), body);
  try {
    await load();
  } catch (e) {
    clear(body, h("h1", {}, "Event"), h("p", { class: "form-error", role: "alert" }, e.status === 404 ? "No such event." : e.message));
  }
  return () => { alive = false; clearTimeout(timer); };
}

export function render(ctx) {
  return ctx.params.length ? detail(ctx) : list(ctx);
}
