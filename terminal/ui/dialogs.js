// Sheets over the screen: errors a cashier can act on, keypad and keyboard prompts, manager approval.
import { ApiError } from "./api.js";
import { $, h } from "./dom.js";
import { keyboard } from "./keyboard.js";
import { keypad } from "./keypad.js";
import { emit, state } from "./state.js";

const stack = [];

export const cancelled = () => new ApiError(0, "cancelled", "");

/** A sheet over the screen; `handleKey` on the result takes physical keys while it is on top. */
export function openSheet({ title, body, size = "", closable = true, onClose, testid }) {
  let closed = false;
  const entry = { handleKey: null };
  const close = (result) => {
    if (closed) return;
    closed = true;
    overlay.remove();
    stack.splice(stack.indexOf(entry), 1);
    onClose?.(result);
  };
  const head = h(
    "header",
    { class: "sheet-head" },
    h("h2", {}, title),
    closable ? h("button", { class: "sheet-close", type: "button", "aria-label": "Close", onclick: () => close(null) }, "✕") : null,
  );
  const sheet = h("section", { class: `sheet ${size}`, role: "dialog", "data-testid": testid }, head, body);
  const overlay = h("div", { class: "overlay" }, sheet);
  $("#overlays").append(overlay);
  Object.assign(entry, { close, sheet, overlay });
  stack.push(entry);
  return entry;
}

export const topSheet = () => stack.at(-1) || null;

export function closeAllSheets() {
  while (stack.length) stack.at(-1).close(null);
}

/** Shows the till's own message (it says what to do next). Resolves when the cashier taps OK. */
export function showError(err, title = "That did not work") {
  if (!err || err.code === "cancelled") return Promise.resolve();
  if (!(err instanceof ApiError)) {
    console.error(err);
    err = new ApiError(0, "kiosk_error", "The screen hit a problem. Try again; if it happens again, call a manager.");
  }
  if (err.code === "login_required" && state.token) {
    emit("session-lost", err.message);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const ok = h("button", { class: "btn btn-primary", type: "button", onclick: () => sheet.close() }, "OK");
    const sheet = openSheet({
      title,
      testid: "error",
      size: "sheet-small sheet-error",
      onClose: resolve,
      body: h(
        "div",
        { class: "sheet-body" },
        h("p", { class: "error-message", "data-testid": "error-message" }, err.message),
        err.code && !err.code.startsWith("http_") ? h("p", { class: "error-code" }, `Code: ${err.code}`) : null,
        h("div", { class: "actions" }, ok),
      ),
    });
    sheet.handleKey = (e) => (e.key === "Enter" || e.key === "Escape") && (sheet.close(), true);
  });
}

export function toast(text, kind = "info") {
  const el = h("div", { class: `toast toast-${kind}`, "data-testid": "toast" }, text);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), 3500);
}

/** A keypad prompt; resolves with the typed text, or null when closed. */
export function askNumber({ title, mode, initial = "", okLabel = "OK", hint, decimals = true, testid = "ask-number" }) {
  return new Promise((resolve) => {
    let pad;
    const sheet = openSheet({
      title,
      testid,
      size: "sheet-keypad",
      onClose: (v) => resolve(v ?? null),
      body: h("div", { class: "sheet-body" }, hint ? h("p", { class: "hint", "data-testid": "hint" }, hint) : null),
    });
    pad = keypad({ mode, initial, okLabel, decimals, onOk: (v) => v !== "" && sheet.close(v) });
    sheet.sheet.querySelector(".sheet-body").append(pad.el);
    sheet.handleKey = (e) => pad.el.handleKey(e);
  });
}

export const askPin = (title, hint) => askNumber({ title, mode: "pin", hint, okLabel: "OK", testid: "ask-pin" });

/** A text prompt with the on-screen keyboard. */
export function askText({ title, initial = "", okLabel = "OK", placeholder = "", testid = "ask-text" }) {
  return new Promise((resolve) => {
    const input = h("input", { class: "text-input", type: "text", inputmode: "none", autocomplete: "off", placeholder, value: initial });
    const sheet = openSheet({
      title,
      testid,
      size: "sheet-keyboard",
      onClose: (v) => resolve(v ?? null),
      body: h("div", { class: "sheet-body" }, input),
    });
    const done = () => input.value.trim() && sheet.close(input.value.trim());
    input.addEventListener("keydown", (e) => e.key === "Enter" && done());
    sheet.sheet.querySelector(".sheet-body").append(keyboard(input, { locale: state.store?.locale, okLabel, onOk: done }));
    input.focus();
  });
}

/** Big buttons of common reasons, and "Other…" for the keyboard. */
export function pickReason(title, reasons) {
  return new Promise((resolve) => {
    const choose = (reason) => sheet.close(reason);
    const sheet = openSheet({
      title,
      testid: "reasons",
      size: "sheet-small",
      onClose: (v) => resolve(v ?? null),
      body: h(
        "div",
        { class: "sheet-body choices" },
        reasons.map((r) => h("button", { class: "btn choice", type: "button", onclick: () => choose(r) }, r)),
        h("button", {
          class: "btn choice",
          type: "button",
          onclick: async () => {
            const text = await askText({ title: "Reason" });
            if (text) choose(text);
          },
        }, "Other…"),
      ),
    });
  });
}

export function confirmSheet({ title, text, okLabel = "Yes", cancelLabel = "Back" }) {
  return new Promise((resolve) => {
    const sheet = openSheet({
      title,
      testid: "confirm",
      size: "sheet-small",
      onClose: (v) => resolve(Boolean(v)),
      body: h(
        "div",
        { class: "sheet-body" },
        h("p", { class: "confirm-text" }, text),
        h(
          "div",
          { class: "actions" },
          h("button", { class: "btn", type: "button", onclick: () => sheet.close(false) }, cancelLabel),
          h("button", { class: "btn btn-primary", type: "button", "data-testid": "confirm-ok", onclick: () => sheet.close(true) }, okLabel),
        ),
      ),
    });
  });
}

/**
 * Runs `run(managerPin)`; when the till answers manager_required, a manager types their PIN
 * on the spot and it runs again with it (the cashier stays logged in).
 */
export async function approve(title, run) {
  try {
    return await run(undefined);
  } catch (err) {
    if (err.code !== "manager_required") throw err;
  }
  let hint = `${title}: a manager approves with their PIN.`;
  for (;;) {
    const pin = await askPin("Manager approval", hint);
    if (pin === null) throw cancelled();
    try {
      return await run(pin);
    } catch (err) {
      if (err.code !== "manager_pin_wrong") throw err;
      hint = err.message;
    }
  }
}
