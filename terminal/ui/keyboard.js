// The on-screen keyboard (the kiosk compositor has none): letters for the store's language.
import { h } from "./dom.js";

const LAYOUTS = {
  de: ["1234567890ß", "qwertzuiopü", "asdfghjklöä", "yxcvbnm-.@"],
  fr: ["1234567890-", "azertyuiopé", "qsdfghjklmè", "wxcvbnç.@à"],
  en: ["1234567890-", "qwertyuiop", "asdfghjkl'", "zxcvbnm.@/"],
};

/**
 * A keyboard that edits `target` in place: an input, or a function giving the input to type
 * into (a form with several fields). onOk fires on its OK key (and Enter).
 */
export function keyboard(target, { locale = "en", onOk, okLabel = "OK" } = {}) {
  const rows = LAYOUTS[locale.slice(0, 2)] || LAYOUTS.en;
  const field = typeof target === "function" ? target : () => target;
  let shift = false;
  const letters = [];

  function type(text) {
    const input = field();
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    input.selectionStart = input.selectionEnd = start + text.length;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    if (shift) toggleShift();
  }

  function back() {
    const input = field();
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    const from = start === end ? Math.max(0, start - 1) : start;
    input.value = input.value.slice(0, from) + input.value.slice(end);
    input.selectionStart = input.selectionEnd = from;
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function toggleShift() {
    shift = !shift;
    for (const b of letters) b.textContent = shift ? b.dataset.char.toUpperCase() : b.dataset.char;
    shiftKey.classList.toggle("on", shift);
  }

  const charKey = (c) => {
    const b = h("button", { class: "kb-key", type: "button", "data-char": c }, c);
    b.addEventListener("click", () => type(shift ? c.toUpperCase() : c));
    letters.push(b);
    return b;
  };
  const shiftKey = h("button", { class: "kb-key kb-wide", type: "button", onclick: toggleShift }, "⇧");
  const el = h(
    "div",
    { class: "keyboard", "data-testid": "keyboard" },
    rows.map((row, i) =>
      h("div", { class: "kb-row" }, i === 3 ? shiftKey : null, [...row].map(charKey),
        i === 0 ? h("button", { class: "kb-key kb-wide", type: "button", "data-key": "back", onclick: back }, "⌫") : null),
    ),
    h(
      "div",
      { class: "kb-row" },
      h("button", { class: "kb-key kb-wide", type: "button", onclick: () => { const input = field(); input.value = ""; input.dispatchEvent(new Event("input", { bubbles: true })); } }, "Clear"),
      h("button", { class: "kb-key kb-space", type: "button", onclick: () => type(" ") }, "space"),
      h("button", { class: "kb-key kb-ok", type: "button", "data-key": "ok", onclick: () => onOk?.(field().value) }, okLabel),
    ),
  );
  el.addEventListener("pointerdown", (e) => e.preventDefault()); // keep the caret in the input
  return el;
}
