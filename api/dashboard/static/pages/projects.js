// Projects: separate endpoints, events and keys within the workspace. The header's switcher scopes
// every page to one of them (X-Project-ID on each call).

import { currentProject, del, get, patch, post, qs, setProject } from "../api.js";
import { act, badge, button, clear, confirmDialog, field, fmtTime, formDialog, h, select, table, toast, values } from "../ui.js";
import { refreshSwitcher } from "../app.js";

const ENVS = ["production", "staging", "development", "test"];

function projectFields(p = {}) {
  return [field("Name", { name: "name", required: true, value: p.name || "" }),
    field("Environment", select("environment", ENVS, p.environment || "production"))];
}

export async function render({ main }) {
  const into = h("div", { id: "projects-list" });
  async function load() {
    const page = await get(`/api/v1/projects${qs({ limit: 100 })}`, { project: false });
    clear(into, table("!Projects", [
      ["Name", (p) => [p.name, p.id === currentProject() ? [" ", badge("selected", "active")] : ""]],
      ["Environment", (p) => badge(p.environment, "muted")],
      ["Id", (p) => h("code", {}, p.id)],
      ["Created", (p) => fmtTime(p.createdAt)],
      ["", (p) => h("div", { class: "actions" },
        button(p.id === currentProject() ? "Show all" : "Switch to", async () => {
          setProject(p.id === currentProject() ? "" : p.id);
          await refreshSwitcher();
          await load();
        }, "secondary"),
        button("Edit", async () => {
          if (await formDialog(`Edit ${p.name}`, projectFields(p), (form) => patch(`/api/v1/projects/${p.id}`, values(form), { project: false }))) {
            toast("Project saved");
            await refreshSwitcher();
            await load();
          }
        }, "secondary"),
        button("Delete", async (ev) => {
          if (!(await confirmDialog(`Delete project ${p.name}?`, "Delete"))) return;
          if (await act(ev.target, () => del(`/api/v1/projects/${p.id}`, { project: false }).then(() => true), "Project deleted")) {
            if (p.id === currentProject()) setProject("");
            await refreshSwitcher();
            await load();
          }
        }, "danger"))]], page.data, "No projects: everything belongs to the workspace as a whole."));
  }
  const add = button("New project", async () => {
    if (await formDialog("New project", projectFields(), (form) => post("/api/v1/projects", values(form), { project: false }), "Create")) {
      toast("Project created");
      await refreshSwitcher();
      await load();
    }
  }, "primary");
  clear(main, h("div", { class: "row" }, h("h1", {}, "Projects"), add), into);
  await load();
}
