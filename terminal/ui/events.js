// The daemon's event stream (server-sent events), read with fetch so every event type arrives
// and a lost session is told apart from a lost connection.
import { emit, state } from "./state.js";

let controller = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function dispatch(block) {
  const data = block
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).trimStart())
    .join("\n");
  if (!data) return;
  try {
    emit("event", JSON.parse(data));
  } catch {
    // a message we cannot read is skipped; the next resync fetches the state anyway
  }
}

export function connectEvents() {
  disconnectEvents();
  const ctrl = new AbortController();
  controller = ctrl;
  (async () => {
    while (!ctrl.signal.aborted) {
      try {
        const url = `/api/v1/events?token=${encodeURIComponent(state.token)}`;
        const response = await fetch(url, { signal: ctrl.signal, headers: { Accept: "text/event-stream" } });
        if (response.status === 401) {
          emit("session-lost", "Log in with your PIN again (the till service restarted).");
          return;
        }
        if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
        emit("stream", "open");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replaceAll("\r\n", "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            dispatch(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch {
        if (ctrl.signal.aborted) return;
      }
      emit("stream", "closed");
      await sleep(1000);
    }
  })();
}

export function disconnectEvents() {
  controller?.abort();
  controller = null;
}
