// Event types: the catalogue of names senders use, each with an optional JSON Schema that ingest
// validates payloads against.

import { del, get, post, put, qs } from "../api.js";
import {
  badge, button, clear, confirmDialog, field, fmtTime, formDialog, h, pager, parseJson, pre, table, textarea, toast,
  values, act,
} from "../ui.js";

const EXAMPLE = { type: "object", required: ["orderId"], properties: { orderId: { type: "string" } } };

function typeFields(t = {}) {
  return [
    field("Name", { name: "name", required: true, value: t.name || "", placeholder: "order.created" }),
    field("Description", { name: "description", value: t.description || "" }),
    field("Schema version", { name: "schemaVersion", value: t.schemaVersion || "1.0" }),
    field("JSON Schema (empty = any payload)", textarea("schema", t.id ? (t.schema ? JSON.stringify(t.schema, null, 2) : "")
      : JSON.stringify(EXAMPLE, null, 2), 10)),
  ];
}

function typeBody(form) {
  const v = values(form);
  return { name: v.name.trim(), description: v.description, schemaVersion: v.schemaVersion.trim() || undefined,
    schema: parseJson(v.schema, "schema", null) };
}

export async function render({ main }) {
  const into = h("div", { id: "event-types-list" });
  let p = null;
  const reload = () => p.load(true);
  p = pager((cursor) => get(`/api/v1/event-types${qs({ limit: 100, cursor })}`), (rows) => table("!Event types", [
    ["Name", (t) => h("code", {}, t.name)],
    ["Description", (t) => t.description || ""],
    ["Schema", (t) => (t.schema ? h("details", {}, h("summary", {}, `v${t.schemaVersion}`), pre(t.schema)) : badge("none", "muted"))],
    ["Updated", (t) => fmtTime(t.updatedAt)],
    ["", (t) => h("div", { class: "actions" },
      button("Edit", async () => {
        if (await formDialog(`Edit ${t.name}`, typeFields(t), (form) => put(`/api/v1/event-types/${t.id}`, typeBody(form)))) {
          toast("Event type saved");
          await reload();
        }
      }, "secondary"),
      button("Delete", async (ev) => {
        if (!(await confirmDialog(`Delete event type ${t.name}?`, "Delete"))) return;
        await act(ev.target, () => del(`/api/v1/event-types/${t.id}`), "Event type deleted");
        await reload();
      }, "danger"))]], rows, "No event types yet. Events may still use any type name; a type with a schema validates payloads."), into);
  const add = button("New event type", async () => {
    if (await formDialog("New event type", typeFields(), (form) => post("/api/v1/event-types", typeBody(form)), "Create")) {
      toast("Event type created");
      await reload();
    }
  }, "primary");
  clear(main, h("div", { class: "row" }, h("h1", {}, "Event types"), add), into, p.more);
  await reload();
}
