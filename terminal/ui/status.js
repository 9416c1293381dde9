// The header's link pill and the banner: online or not, how many events wait, whether the till
// can record; from /healthz and the stream's `uplink` messages.
import { $, fill } from "./dom.js";
import { emit, on, state } from "./state.js";

let unreachable = false;

async function refreshHealth() {
  try {
    // /healthz answers 503 with the same body when degraded: read it either way.
    const response = await fetch("/healthz", { cache: "no-store" });
    state.health = await response.json();
    unreachable = false;
  } catch {
    unreachable = true;
  }
  render();
}

function waiting() {
  const uplink = state.health?.uplink;
  return uplink?.outbox_depth ?? state.health?.outbox?.depth ?? 0;
}

/** [pill text, pill kind, banner text or null, banner kind]. */
export function linkStatus() {
  if (unreachable) {
    return ["No till service", "bad",
      "The till service is not answering. Wait a moment: it restarts by itself. If this stays, call a manager.", "bad"];
  }
  const h = state.health;
  if (!h) return ["…", "", null, ""];
  if (h.journal && !h.journal.writable) {
    return ["Not recording", "bad",
      `The till cannot save anything right now (${h.journal.error || "storage problem"}). Do not take money; call a manager.`, "bad"];
  }
  if (h.journal && h.journal.free_mb < h.journal.min_free_mb) {
    return ["Disk full", "bad",
      "The till's disk is nearly full: open sales can finish, new ones cannot start. Call a manager.", "bad"];
  }
  const n = waiting();
  const uplink = h.uplink || {};
  if (!uplink.enabled) return [`Stand-alone · ${n} queued`, "", null, ""];
  if (uplink.connected) return [n ? `Online · ${n} to send` : "Online", "good", null, ""];
  const what = n === 1 ? "1 record waits" : `${n} records wait`;
  return [`Offline · ${n} waiting`, "warn",
    `Offline: ${what} to be sent. Keep selling; everything is sent when the connection is back.`, "warn"];
}

function render() {
  const [pill, kind, banner, bannerKind] = linkStatus();
  const el = $("#bar-link");
  fill(el, pill);
  el.className = `pill pill-${kind || "plain"}`;
  el.dataset.testid = "link";
  const b = $("#banner");
  b.hidden = !banner;
  b.className = `banner banner-${bannerKind}`;
  b.dataset.testid = "banner";
  fill(b, banner || "");
  emit("health", state.health);
}

export function startStatus() {
  on("event", (msg) => {
    if (msg.type !== "uplink" || !state.health) return;
    const { type, ...view } = msg;
    state.health.uplink = { ...state.health.uplink, ...view };
    render();
  });
  on("stream", (how) => {
    if (how === "closed") refreshHealth();
  });
  refreshHealth();
  setInterval(refreshHealth, 10000);
}
