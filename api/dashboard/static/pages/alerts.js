// Alerting: rules over the delivery metrics (condition, action, cooldown), enable/disable, manual
// evaluation and the history of firings and resolutions.

import { del, get, post, put, qs } from "../api.js";
import {
  act, badge, button, clear, confirmDialog, field, fmtTime, formDialog, h, select, table, textarea, toast, values,
  parseJson,
} from "../ui.js";

const METRICS = ["failure_rate", "success_rate", "latency", "queue_depth", "error_count", "delivery_count"];
const OPS = [["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"], ["eq", "="], ["ne", "≠"]];
const ACTIONS = ["slack", "discord", "teams", "email", "webhook", "pagerduty"];

function ruleFields(r = {}) {
  const c = r.condition || { metric: "failure_rate", operator: "gt", value: 0.1, window: "5m" };
  const a = r.action || { type: "webhook" };
  const settings = { ...a };
  delete settings.type;
  return [
    field("Name", { name: "name", required: true, value: r.name || "" }),
    field("Description", { name: "description", value: r.description || "" }),
    h("div", { class: "grid3" },
      field("Metric", select("metric", METRICS, c.metric)),
      field("Operator", select("operator", OPS, c.operator)),
      field("Threshold", { name: "value", type: "number", step: "any", required: true, value: c.value })),
    h("div", { class: "grid3" },
      field("Window", { name: "window", required: true, value: c.window, pattern: "[0-9]+[mhd]" }, "e.g. 5m, 1h"),
      field("Cooldown", { name: "cooldown", value: r.cooldown || "15m", pattern: "[0-9]+[smhd]" }),
      field("Action", select("type", ACTIONS, a.type))),
    field("Action settings (JSON)", textarea("settings", JSON.stringify(Object.keys(settings).length ? settings
      : { webhookUrl: "https://hooks.example.com/alerts" }, null, 2), 4),
    "slack/discord/teams/webhook: webhookUrl; email: to (list); pagerduty: routingKey; or connector: a connector's name"),
  ];
}

function ruleBody(form) {
  const v = values(form);
  return { name: v.name.trim(), description: v.description,
    condition: { metric: v.metric, operator: v.operator, value: Number(v.value), window: v.window.trim() },
    action: { type: v.type, ...parseJson(v.settings, "action settings", {}) }, cooldown: v.cooldown.trim() || undefined };
}

const opText = (op) => (OPS.find(([k]) => k === op) || [op, op])[1];

export async function render({ main }) {
  const rules = h("div", { id: "rules" });
  const history = h("div", { id: "alert-history" });
  async function load() {
    const [page, hist] = await Promise.all([get(`/api/v1/alerting/rules${qs({ limit: 100 })}`), get("/api/v1/alerting/history?limit=20")]);
    clear(rules, table("!Alert rules", [
      ["Name", (r) => r.name],
      ["Condition", (r) => h("code", {}, `${r.condition.metric} ${opText(r.condition.operator)} ${r.condition.value} over ${r.condition.window}`)],
      ["Action", (r) => r.action.connector ? `${r.action.type || ""} via ${r.action.connector}` : r.action.type],
      ["State", (r) => badge(r.state || "ok", r.state === "firing" ? "failed" : "delivered")],
      ["Last value", (r) => (r.lastValue ?? "—")],
      ["Enabled", (r) => {
        const box = h("input", { type: "checkbox", checked: r.enabled, "aria-label": `Enable ${r.name}` });
        box.addEventListener("change", () => act(box, () => post(`/api/v1/alerting/rules/${r.id}/${box.checked ? "enable" : "disable"}`),
          box.checked ? "Rule enabled" : "Rule disabled"));
        return box;
      }],
      ["", (r) => h("div", { class: "actions" },
        button("Edit", async () => {
          if (await formDialog(`Edit ${r.name}`, ruleFields(r), (form) => put(`/api/v1/alerting/rules/${r.id}`, ruleBody(form)))) {
            toast("Rule saved");
            await load();
          }
        }, "secondary"),
        button("Delete", async (ev) => {
          if (!(await confirmDialog(`Delete rule ${r.name}?`, "Delete"))) return;
          await act(ev.target, () => del(`/api/v1/alerting/rules/${r.id}`), "Rule deleted");
          await load();
        }, "danger"))]], page.data, "No alert rules yet."));
    clear(history, table("!Alert history", [
      ["When", (x) => fmtTime(x.createdAt)], ["Rule", (x) => x.ruleName], ["Status", (x) => badge(x.status)],
      ["Value", (x) => `${x.value} (${opText(x.operator)} ${x.threshold})`],
      ["Sent via", (x) => x.action.type], ["Delivery", (x) => x.action.deliveryStatus || x.action.error || "—"]],
    hist.data, "Nothing has fired yet."));
  }
  const add = button("New rule", async () => {
    if (await formDialog("New alert rule", ruleFields(), (form) => post("/api/v1/alerting/rules", ruleBody(form)), "Create")) {
      toast("Rule created");
      await load();
    }
  }, "primary");
  const evaluate = button("Evaluate now", () => act(evaluate, async () => {
    await post("/api/v1/alerting/evaluate");
    await load();
  }, "Rules evaluated"), "secondary");
  clear(main, h("div", { class: "row" }, h("h1", {}, "Alerting"), h("div", { class: "actions" }, evaluate, add)),
    rules, h("section", { "aria-labelledby": "hist-h" }, h("h2", { id: "hist-h" }, "History"), history));
  await load();
}
