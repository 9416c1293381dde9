// The lock screen: a cashier logs in with their PIN on the keypad.
import { post } from "./api.js";
import { h } from "./dom.js";
import { keypad } from "./keypad.js";
import { emit, state } from "./state.js";

export function loginScreen(notice = "") {
  const message = h("p", { class: "login-message", "data-testid": "login-message" }, notice);
  let busy = false;
  const pad = keypad({
    mode: "pin",
    okLabel: "Log in",
    onOk: async (pin) => {
      if (busy || pin.length < 4) {
        message.textContent = pin.length < 4 ? "A PIN has 4 to 8 digits." : message.textContent;
        return;
      }
      busy = true;
      try {
        const answer = await post("sessions", { pin }, { key: null, retries: 1 });
        state.token = answer.token;
        state.user = answer.cashier;
        sessionStorage.setItem("tillbox.token", answer.token);
        emit("login");
      } catch (err) {
        pad.set("");
        message.textContent = err.message;
        message.classList.add("login-error");
      } finally {
        busy = false;
      }
    },
  });
  const el = h(
    "div",
    { class: "login-screen", "data-testid": "login" },
    h(
      "div",
      { class: "login-side" },
      h("h1", { class: "login-store" }, state.store?.name || "Tillbox"),
      h("p", { class: "login-prompt" }, "Enter your PIN to start"),
      message,
    ),
    h("div", { class: "login-pad" }, pad.el),
  );
  el.handleKey = (e) => pad.el.handleKey(e);
  return el;
}
