// The devices panel and the header's device pill, where the daemon reports its devices.
import { get } from "./api.js";
import { $, fill, h } from "./dom.js";
import { openSheet, showError } from "./dialogs.js";
import { emit, on, state } from "./state.js";

const GOOD = new Set(["online", "ok", "ready", "connected", "idle"]);

const health = (d) => String(d.health || d.state || d.status || "unknown").toLowerCase();
const label = (d) => d.name || d.id || d.kind || "device";

function troubled() {
  return (state.devices || []).filter((d) => !GOOD.has(health(d)) || d.message);
}

function renderPill() {
  const pill = $("#bar-devices");
  if (!state.features.devices || !state.devices) {
    pill.hidden = true;
    return;
  }
  const bad = troubled();
  pill.hidden = false;
  pill.className = `pill pill-${bad.length ? "warn" : "good"}`;
  fill(pill, bad.length ? `${label(bad[0])}: ${health(bad[0]).replaceAll("_", " ")}` : "Devices OK");
}

async function refresh() {
  if (!state.features.devices || !state.token) return;
  try {
    const answer = await get("devices");
    state.devices = Array.isArray(answer) ? answer : answer.devices || [];
  } catch {
    state.devices = null;
  }
  renderPill();
}

export function openDevices() {
  const list = h("div", { class: "customers", "data-testid": "devices" });
  const render = () =>
    fill(list, (state.devices || []).map((d) =>
      h("div", { class: "customer" },
        h("span", { class: "line-name" }, label(d), h("small", {}, [d.kind, d.id, d.port || d.path].filter(Boolean).join(" · "))),
        h("span", { class: GOOD.has(health(d)) ? "badge good" : "badge warn" }, health(d).replaceAll("_", " ")),
        d.message || d.detail ? h("small", {}, d.message || d.detail) : null)));
  const off = on("devices", render);
  openSheet({ title: "Devices", body: h("div", { class: "sheet-body" }, list), size: "sheet-full", testid: "devices-sheet", onClose: off });
  refresh().then(render, showError);
}

export function startDevices() {
  $("#bar-devices").addEventListener("click", openDevices);
  on("event", (msg) => {
    if (msg.type === "device" || msg.type?.startsWith("device.")) refresh().then(() => emit("devices", state.devices));
  });
  on("logged-in", refresh);
  on("features", refresh);
  setInterval(refresh, 30000);
}

