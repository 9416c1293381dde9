// Changing a line (quantity, discount, price override, removal) and the discount on the whole sale.
import { del, patch, put } from "./api.js";
import { fill, h } from "./dom.js";
import { approve, askNumber, openSheet, pickReason, showError } from "./dialogs.js";
import { money, qty } from "./money.js";
import { key, serial, setSale } from "./sale.js";
import { on, state } from "./state.js";

const PRICE_REASONS = ["Damaged packaging", "Short best-before date", "Shelf price differs", "Price match"];

/** One change through the till; a manager approves when the till asks for one. */
function change(title, request) {
  const k = key();
  return serial(async () => {
    try {
      setSale(await approve(title, (pin) => request(k, pin)));
      return true;
    } catch (err) {
      await showError(err);
      return false;
    }
  });
}

const linePath = (line) => `sales/${state.sale.sale_id}/lines/${line.line_id}`;

function discountButtons(apply, clear, active) {
  const percent = (p) => h("button", { class: "btn", type: "button", onclick: () => apply({ percent: p }) }, `${p} %`);
  return h(
    "div",
    { class: "choices choices-row" },
    ["5", "10", "20"].map(percent),
    h("button", {
      class: "btn",
      type: "button",
      onclick: async () => {
        const p = await askNumber({ title: "Discount in %", mode: "percent", okLabel: "Apply" });
        if (p && Number(p) > 0) apply({ percent: p });
      },
    }, "Other %"),
    h("button", {
      class: "btn",
      type: "button",
      onclick: async () => {
        const a = await askNumber({ title: "Discount amount", mode: "money", okLabel: "Apply" });
        if (a && Number(a) > 0) apply({ amount: Number(a) });
      },
    }, "Amount"),
    active ? h("button", { class: "btn", type: "button", "data-testid": "clear-discount", onclick: clear }, "No discount") : null,
  );
}

export function editLine(lineId) {
  const body = h("div", { class: "sheet-body line-editor" });
  const sheet = openSheet({ title: "Change line", body, testid: "line-editor", onClose: () => off() });
  const off = on("sale", () => render());

  function render() {
    const line = state.sale?.status === "open" && state.sale.lines.find((l) => l.line_id === lineId);
    if (!line) return sheet.close();
    const setQty = (q) => change("Quantity", (k, pin) => patch(linePath(line), { quantity: q }, { key: k, managerPin: pin }));
    const step = (d) => {
      const next = Number(line.quantity) + d;
      if (next > 0) setQty(String(next));
    };
    const askQty = async () => {
      const q = await askNumber({
        title: line.unit === "kg" ? "Weight in kg" : "Quantity",
        mode: "qty",
        decimals: line.unit === "kg",
        initial: "",
        okLabel: "Set",
      });
      if (q && Number(q) > 0) setQty(q);
    };
    const discount = (d) =>
      change("Discount", (k, pin) => patch(linePath(line), { discount: d }, { key: k, managerPin: pin })).then((ok) => ok && sheet.close());
    const clearDiscount = () =>
      change("Discount", (k) => patch(linePath(line), { clear_discount: true }, { key: k })).then((ok) => ok && sheet.close());
    const override = async () => {
      const price = await askNumber({ title: `New price${line.unit === "kg" ? " per kg" : ""}`, mode: "money", okLabel: "Next" });
      if (price === null || price === "") return;
      const reason = await pickReason("Why the new price?", PRICE_REASONS);
      if (!reason) return;
      const ok = await change("Price change", (k, pin) =>
        patch(linePath(line), { price_override: { unit_price: Number(price), reason } }, { key: k, managerPin: pin }));
      if (ok) sheet.close();
    };
    const clearOverride = () =>
      change("Price change", (k, pin) => patch(linePath(line), { clear_override: true }, { key: k, managerPin: pin }));
    const remove = () =>
      change("Remove", (k) => del(linePath(line), { key: k })).then((ok) => ok && sheet.close());

    fill(
      body,
      h("p", { class: "editor-title" }, line.name, h("span", {}, `${money(line.unit_price)}${line.unit === "kg" ? " / kg" : ""}`)),
      h(
        "div",
        { class: "qty-row" },
        line.unit === "kg" ? null : h("button", { class: "btn step", type: "button", "aria-label": "One less", onclick: () => step(-1) }, "−"),
        h("button", { class: "btn qty-value", type: "button", "data-testid": "qty", onclick: askQty }, qty(line.quantity, line.unit)),
        line.unit === "kg" ? null : h("button", { class: "btn step", type: "button", "aria-label": "One more", onclick: () => step(1) }, "+"),
        h("span", { class: "qty-amount" }, money(line.amount)),
      ),
      h("h3", {}, "Discount"),
      discountButtons(discount, clearDiscount, Boolean(line.discount)),
      h("h3", {}, "Price"),
      h(
        "div",
        { class: "choices choices-row" },
        h("button", { class: "btn", type: "button", "data-testid": "override", onclick: override }, "Change price"),
        line.override ? h("button", { class: "btn", type: "button", onclick: clearOverride }, "Back to catalog price") : null,
        h("button", { class: "btn btn-danger", type: "button", "data-testid": "remove-line", onclick: remove }, "Remove line"),
      ),
    );
  }
  render();
}

export function editCartDiscount() {
  const sale = state.sale;
  if (sale?.status !== "open") return;
  const path = `sales/${sale.sale_id}/discount`;
  const sheet = openSheet({
    title: "Discount on the whole sale",
    testid: "cart-discount",
    body: h(
      "div",
      { class: "sheet-body" },
      h("p", { class: "hint" }, `Total now ${money(sale.total)}. Large discounts need a manager.`),
      discountButtons(
        (d) => change("Discount", (k, pin) => put(path, d, { key: k, managerPin: pin })).then((ok) => ok && sheet.close()),
        () => change("Discount", () => del(path, { key: null })).then((ok) => ok && sheet.close()),
        Boolean(sale.cart_discount),
      ),
    ),
  });
}
