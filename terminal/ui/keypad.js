// The on-screen numeric keypad: PINs, money typed as on a till (1-2-5-0 is 12,50), quantities.
import { h, fill } from "./dom.js";
import { money, decimalSeparator, minorUnits } from "./money.js";

const LIMITS = { pin: 8, money: 9, qty: 7, percent: 6, digits: 12 };

/**
 * mode: "pin" | "money" | "qty" (decimal, up to 3 places) | "percent" | "digits".
 * Returns {el, value(), set(text)}; value() is the typed text ("1250" minor units for money).
 */
export function keypad({ mode, initial = "", onChange, onOk, okLabel = "OK", decimals = true }) {
  let entry = String(initial);
  let fresh = entry !== ""; // a preset value (what is due) is replaced by the first digit typed
  const display = h("div", { class: `keypad-display ${mode}`, "data-testid": "keypad-display" });
  const sep = decimalSeparator();
  const withPoint = (mode === "qty" || mode === "percent") && decimals;

  function render() {
    if (mode === "pin") display.textContent = "●".repeat(entry.length) || " ";
    else if (mode === "money") display.textContent = money(Number(entry || "0"));
    else display.textContent = entry.replace(".", sep) || "0";
    onChange?.(entry);
  }

  function press(key) {
    if (fresh && key !== "back") entry = "";
    fresh = false;
    if (key === "back") entry = entry.slice(0, -1);
    else if (key === "clear") entry = "";
    else if (key === ".") {
      if (withPoint && !entry.includes(".")) entry = (entry || "0") + ".";
    } else if (entry.length + key.length <= LIMITS[mode]) {
      if (entry.includes(".") && entry.split(".")[1].length >= 3) return;
      const leadingZero = mode !== "pin" && mode !== "digits" && entry === "0";
      entry = leadingZero ? key : entry + key;
      if (mode === "money") entry = entry.replace(/^0+/, "");
    }
    render();
  }

  const key = (label, value, cls = "") =>
    h("button", { class: `key ${cls}`, type: "button", "data-key": value, onclick: () => press(value) }, label);
  let corner = key("C", "clear", "key-soft");
  if (withPoint) corner = key(sep, ".");
  else if (mode === "money" && minorUnits() > 0) corner = key("00", "00");
  const keys = h(
    "div",
    { class: "keypad-keys" },
    ["7", "8", "9", "4", "5", "6", "1", "2", "3"].map((d) => key(d, d)),
    corner,
    key("0", "0"),
    key("⌫", "back", "key-soft"),
  );
  const ok = h("button", { class: "key key-ok", type: "button", "data-key": "ok", onclick: () => onOk?.(entry) }, okLabel);
  const el = h("div", { class: "keypad" }, display, keys, ok);
  el.handleKey = (e) => {
    if (/^[0-9]$/.test(e.key)) press(e.key);
    else if (e.key === "." || e.key === ",") press(".");
    else if (e.key === "Backspace") press("back");
    else if (e.key === "Enter") onOk?.(entry);
    else return false;
    return true;
  };
  render();
  return {
    el,
    value: () => entry,
    set(text) {
      entry = String(text);
      fresh = true;
      render();
    },
    label(text) {
      fill(ok, text);
    },
  };
}
