// Taking the money: cash with the keypad and change due, card through the terminal, or both (split).
import { post } from "./api.js";
import { fill, h } from "./dom.js";
import { openSheet, showError, toast } from "./dialogs.js";
import { payByCard } from "./card.js";
import { keypad } from "./keypad.js";
import { money } from "./money.js";
import { printReceipt } from "./receipts.js";
import { key, serial, setSale } from "./sale.js";
import { on, state } from "./state.js";

/** Round-up amounts a customer is likely to hand over: the next 5, 10, 20, 50 and 100. */
function quickCash(due) {
  const unit = 10 ** state.store.minor_units;
  const out = [];
  for (const note of [5, 10, 20, 50, 100]) {
    const amount = Math.ceil(due / (note * unit)) * note * unit;
    if (amount > due && !out.includes(amount)) out.push(amount);
  }
  return out.slice(0, 3);
}

export function cardText(card) {
  if (!card) return "";
  return [card.brand, card.masked_pan].filter(Boolean).join(" ");
}

function paymentRows(sale) {
  return sale.payments.map((p) =>
    h("li", { class: "paid-row" },
      h("span", {}, p.method === "cash" ? (p.tendered ? `Cash, given ${money(p.tendered)}` : "Cash") : `Card ${cardText(p.card)}`),
      h("span", {}, money(p.amount))));
}

export function openPay() {
  if (state.sale?.status !== "open" || !state.sale.lines.length) return;
  const body = h("div", { class: "sheet-body pay" });
  const sheet = openSheet({
    title: "Payment",
    body,
    size: "sheet-full",
    testid: "pay",
    onClose: () => {
      off();
      if (state.sale?.status === "completed") setSale(null);
    },
  });
  // A payment taken elsewhere (a card terminal, a scan) redraws what is due.
  let shown = "";
  const off = on("sale", (sale) => {
    if (!sale || shown === "done") return;
    if (sale.status === "completed") done();
    else if (sale.status === "open") render();
  });
  let pad = null;

  const due = () => state.sale.cash_due;

  async function cash() {
    const entered = Number(pad.value() || "0") || due();
    try {
      const sale = await serial(() => post(`sales/${state.sale.sale_id}/payments`, { method: "cash", tendered: entered }, { key: key() }));
      setSale(sale);
      if (sale.status === "completed") return done();
      toast(`Part paid in cash. Still to pay: ${money(sale.due)}`);
      render();
    } catch (err) {
      showError(err);
    }
  }

  async function card() {
    const entered = Number(pad.value() || "0");
    const amount = entered && entered < state.sale.due ? entered : state.sale.due;
    const sale = await payByCard(state.sale, amount);
    if (!sale) return;
    setSale(sale);
    if (sale.status === "completed") return done();
    render();
  }

  function render() {
    const sale = state.sale;
    shown = "pay";
    pad = keypad({ mode: "money", okLabel: "Cash", onOk: cash });
    pad.set(String(due()));
    const rounding = sale.cash_due !== sale.due;
    sheet.handleKey = (e) => pad.el.handleKey(e);
    fill(
      body,
      h(
        "div",
        { class: "pay-summary" },
        h("p", { class: "due-label" }, sale.paid ? "Still to pay" : "To pay"),
        h("p", { class: "due", "data-testid": "due" }, money(sale.due)),
        rounding ? h("p", { class: "hint" }, `In cash: ${money(sale.cash_due)} (rounded)`) : null,
        sale.payments.length ? h("ul", { class: "paid-list" }, paymentRows(sale)) : null,
        h(
          "div",
          { class: "tenders" },
          h("button", { class: "btn", type: "button", "data-testid": "exact", onclick: () => pad.set(String(due())) }, `Exact ${money(due())}`),
          quickCash(due()).map((a) => h("button", { class: "btn", type: "button", onclick: () => pad.set(String(a)) }, money(a))),
          state.features.card
            ? h("button", { class: "btn btn-card", type: "button", "data-testid": "card", onclick: card }, "Card")
            : null,
        ),
        h("p", { class: "hint" }, "Split: type part of the amount, then choose how it is paid."),
      ),
      h("div", { class: "pay-input" }, pad.el),
    );
    pad.el.querySelector("[data-key=ok]").dataset.testid = "cash";
  }

  function done() {
    const sale = state.sale;
    shown = "done";
    sheet.handleKey = (e) => e.key === "Enter" && (sheet.close(), true);
    const receipt = state.features.reprint
      ? h("button", { class: "btn", type: "button", "data-testid": "print", onclick: () => printReceipt(sale.sale_id) }, "Print receipt")
      : null;
    fill(
      body,
      h(
        "div",
        { class: "pay-done", "data-testid": "done" },
        sale.change
          ? [h("p", { class: "due-label" }, "Change"), h("p", { class: "due change", "data-testid": "change" }, money(sale.change))]
          : [h("p", { class: "due-label" }, "Paid"), h("p", { class: "due" }, money(sale.paid))],
        h("p", { class: "receipt-no" }, `Receipt ${sale.receipt_no}`),
        h("ul", { class: "paid-list" }, paymentRows(sale)),
        h(
          "div",
          { class: "actions" },
          receipt,
          h("button", { class: "btn btn-primary", type: "button", "data-testid": "new-sale", onclick: () => sheet.close() }, "New sale"),
        ),
      ),
    );
  }

  render();
}
