// Endpoints: list and create; one endpoint's configuration, breaker state, pause/resume, a test
// event, edit, secret rotation, delete, and its version history with diffs and rollback.

import { del, get, patch, post, qs, sendEvent } from "../api.js";
import {
  act, badge, button, clear, confirmDialog, field, fmtTime, formDialog, h, intOrUndef, link, pager, parseJson, pre,
  revealOnce, select, shortId, table, textarea, toast, values,
} from "../ui.js";
import { attemptsTable } from "./events.js";

const CIRCUIT_HELP = {
  closed: "Closed: deliveries flow normally.",
  open: "Open: too many consecutive failures; deliveries wait until the reset interval lets one probe through.",
  half_open: "Half-open: one probe delivery decides whether the breaker closes again.",
};

function endpointFields(ep = {}) {
  return [
    field("URL", { name: "url", type: "url", required: true, value: ep.url || "", placeholder: "https://example.com/webhooks" }),
    field("Event types", { name: "eventTypes", required: true, value: (ep.eventTypes || ["*"]).join(", ") },
      "Comma-separated; * wildcards, e.g. order.*, payment.created"),
    field("Description", { name: "description", value: ep.description || "" }),
    h("div", { class: "grid3" },
      field("Max attempts", { name: "maxRetries", type: "number", min: 1, max: 25, value: ep.maxRetries ?? 5 }),
      field("Timeout (ms)", { name: "timeoutMs", type: "number", min: 1, value: ep.timeoutMs ?? 30000 }),
      field("Rate limit (/s, 0 = none)", { name: "rateLimitPerSec", type: "number", min: 0, value: ep.rateLimitPerSec ?? 0 })),
    h("div", { class: "grid3" },
      field("Breaker threshold", { name: "circuitThreshold", type: "number", min: 1, value: ep.circuitThreshold ?? 5 }),
      field("Breaker reset (ms)", { name: "circuitResetMs", type: "number", min: 1, value: ep.circuitResetMs ?? 300000 }),
      field("Backoff start (ms)", { name: "retryBackoffMs", type: "number", min: 0, value: ep.retryBackoffMs ?? 1000 })),
    field("Custom headers (JSON object)", textarea("customHeaders", JSON.stringify(ep.customHeaders || {}, null, 2), 3)),
  ];
}

function endpointBody(form) {
  const v = values(form);
  return {
    url: v.url.trim(),
    eventTypes: v.eventTypes.split(",").map((s) => s.trim()).filter(Boolean),
    description: v.description,
    maxRetries: intOrUndef(v.maxRetries), timeoutMs: intOrUndef(v.timeoutMs), rateLimitPerSec: intOrUndef(v.rateLimitPerSec),
    circuitThreshold: intOrUndef(v.circuitThreshold), circuitResetMs: intOrUndef(v.circuitResetMs),
    retryBackoffMs: intOrUndef(v.retryBackoffMs),
    customHeaders: parseJson(v.customHeaders, "customHeaders", {}),
  };
}

function testType(ep) {
  const concrete = (ep.eventTypes || []).find((t) => !t.includes("*"));
  return concrete || (ep.eventTypes || ["test"])[0].replace(/\*+/g, "test").replace(/\.$/, "") || "test";
}

function sendTestDialog(ep) {
  return formDialog("Send a test event", [
    h("p", { class: "muted" }, "A real event of this type: it fans out to every endpoint subscribed to it."),
    field("Event type", { name: "eventType", required: true, value: testType(ep) }),
    field("Payload (JSON object)", textarea("payload", JSON.stringify({ test: true, sentAt: new Date().toISOString() }, null, 2))),
  ], async (form) => {
    const v = values(form);
    return sendEvent({ eventType: v.eventType.trim(), payload: parseJson(v.payload, "payload", {}) });
  }, "Send");
}

async function list({ main, navigate }) {
  const into = h("div", { id: "endpoints-list" });
  const p = pager((cursor) => get(`/api/v1/endpoints${qs({ limit: 50, cursor })}`), (rows) => table("!Endpoints", [
    ["URL", (e) => link(`/dashboard/endpoints/${e.id}`, e.url)],
    ["Event types", (e) => e.eventTypes.join(", ")],
    ["Status", (e) => badge(e.status)],
    ["Circuit", (e) => badge(e.circuitState.replace("_", "-"), `circuit-${e.circuitState}`)],
    ["Version", (e) => `v${e.version}`],
    ["Description", (e) => e.description || ""]], rows, "No endpoints yet: add one to start delivering."), into);
  const add = button("New endpoint", async () => {
    const made = await formDialog("New endpoint", endpointFields(), (form) => post("/api/v1/endpoints", endpointBody(form)), "Create");
    if (!made) return;
    if (made.signingSecret) await revealOnce("Endpoint created", "Signing secret", made.signingSecret);
    navigate(`/dashboard/endpoints/${made.id}`);
  }, "primary");
  clear(main, h("div", { class: "row" }, h("h1", {}, "Endpoints"), add), into, p.more);
  await p.load(true);
}

async function versions(id, into, reload) {
  const page = await get(`/api/v1/endpoints/${id}/versions?limit=100`);
  const rows = page.data;
  const nums = rows.map((r) => [String(r.version), `v${r.version}`]);
  const diffOut = h("div", { id: "diff", "aria-live": "polite" });
  const v1 = select("v1", nums, nums.length > 1 ? nums[1][0] : nums[0]?.[0]);
  const v2 = select("v2", nums, nums[0]?.[0]);
  const diffForm = h("form", { class: "filters", onsubmit: (ev) => {
    ev.preventDefault();
    act(null, async () => {
      const d = await get(`/api/v1/endpoints/${id}/versions/diff${qs({ v1: v1.value, v2: v2.value })}`);
      clear(diffOut, d.changes.length ? table(`Changes from v${d.v1} to v${d.v2}`, [
        ["Field", (c) => h("code", {}, c.field)],
        ["From", (c) => h("code", { class: "del" }, JSON.stringify(c.from))],
        ["To", (c) => h("code", { class: "ins" }, JSON.stringify(c.to))]], d.changes) : h("p", { class: "empty" }, "No differences."));
    });
  } }, field("From", v1), field("To", v2), h("button", { type: "submit", class: "secondary" }, "Diff"));
  clear(into,
    table("!Versions", [
      ["Version", (r) => `v${r.version}`],
      ["Saved", (r) => fmtTime(r.createdAt)],
      ["URL", (r) => r.snapshot.url],
      ["", (r) => (r === rows[0] ? badge("current", "active") : button(`Roll back to v${r.version}`, async (ev) => {
        if (!(await confirmDialog(`Roll back to version ${r.version}? This saves a new version.`, "Roll back"))) return;
        await act(ev.target, () => post(`/api/v1/endpoints/${id}/versions/${r.version}/rollback`), `Rolled back to v${r.version}`);
        await reload();
      }, "secondary"))]], rows),
    rows.length > 1 ? [h("h3", {}, "Compare versions"), diffForm, diffOut] : null);
}

async function detail({ main, params, navigate }) {
  const id = params[0];
  const body = h("div", {});
  async function load() {
    const ep = await get(`/api/v1/endpoints/${id}`);
    const paused = ep.status === "paused";
    const toggle = button(paused ? "Resume" : "Pause", () => act(toggle, async () => {
      await post(`/api/v1/endpoints/${id}/${paused ? "resume" : "pause"}`);
      await load();
    }, paused ? "Endpoint resumed" : "Endpoint paused"), paused ? "primary" : "secondary");
    const test = button("Send test event", async () => {
      const made = await sendTestDialog(ep);
      if (made) { toast("Test event queued"); navigate(`/dashboard/events/${made.id}`); }
    }, "secondary");
    const edit = button("Edit", async () => {
      if (await formDialog("Edit endpoint", endpointFields(ep), (form) => patch(`/api/v1/endpoints/${id}`, endpointBody(form)))) {
        toast("Saved as a new version");
        await load();
      }
    }, "secondary");
    const rotate = button("Rotate secret", async () => {
      if (!(await confirmDialog("Rotate the signing secret? Receivers must switch to the new one.", "Rotate"))) return;
      const out = await act(rotate, () => patch(`/api/v1/endpoints/${id}`, { signingSecret: null }));
      if (out && out.signingSecret) await revealOnce("New signing secret", "Signing secret", out.signingSecret);
      await load();
    }, "secondary");
    const remove = button("Delete", async () => {
      if (!(await confirmDialog("Delete this endpoint? Its undelivered events become dead.", "Delete"))) return;
      if (await act(remove, () => del(`/api/v1/endpoints/${id}`).then(() => true), "Endpoint deleted")) navigate("/dashboard/endpoints");
    }, "danger");
    const versionsInto = h("div", { id: "versions" });
    const recentInto = h("div", { id: "recent-attempts" });
    const config = { ...ep };
    for (const k of ["id", "status", "circuitState", "version", "createdAt", "updatedAt", "url"]) delete config[k];
    clear(body,
      h("div", { class: "row" }, h("h1", {}, ep.url), badge(ep.status, ep.status)),
      h("div", { class: "actions" }, toggle, test, edit, rotate, remove),
      h("dl", { class: "props" },
        h("dt", {}, "Id"), h("dd", {}, h("code", {}, ep.id)),
        h("dt", {}, "Status"), h("dd", { id: "ep-status" }, ep.status),
        h("dt", {}, "Circuit breaker"), h("dd", { id: "ep-circuit" }, badge(ep.circuitState.replace("_", "-"), `circuit-${ep.circuitState}`),
          " ", CIRCUIT_HELP[ep.circuitState] || "", ` Trips after ${ep.circuitThreshold} consecutive failures; resets after ${ep.circuitResetMs} ms.`),
        h("dt", {}, "Event types"), h("dd", {}, ep.eventTypes.join(", ")),
        h("dt", {}, "Version"), h("dd", {}, `v${ep.version}, saved `, fmtTime(ep.updatedAt)),
        h("dt", {}, "Created"), h("dd", {}, fmtTime(ep.createdAt))),
      h("details", {}, h("summary", {}, "Full configuration"), pre(config)),
      h("section", { "aria-labelledby": "ver-h" }, h("h2", { id: "ver-h" }, "Versions"), versionsInto),
      h("section", { "aria-labelledby": "rec-h" }, h("h2", { id: "rec-h" }, "Recent attempts (24 h)"), recentInto));
    const recent = get(`/api/v1/deliveries${qs({ endpoint_id: id, range: "24h", limit: 10 })}`)
      .then((page) => clear(recentInto, attemptsTable(page.data, true)));
    await Promise.all([versions(id, versionsInto, load), recent]);
  }
  clear(main, h("p", {}, link("/dashboard/endpoints", "← Endpoints")), body);
  try {
    await load();
  } catch (e) {
    clear(body, h("h1", {}, "Endpoint"), h("p", { class: "form-error", role: "alert" }, e.status === 404 ? "No such endpoint." : e.message));
  }
}

export function render(ctx) {
  return ctx.params.length ? detail(ctx) : list(ctx);
}
