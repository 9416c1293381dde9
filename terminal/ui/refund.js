// Refunds from a scanned (or typed) receipt number: choose the lines, a manager approves.
import { get, newKey, post } from "./api.js";
import { fill, h } from "./dom.js";
import { approve, openSheet, pickReason, showError } from "./dialogs.js";
import { keyboard } from "./keyboard.js";
import { fromMilli, money, qty, toMilli } from "./money.js";
import { cardText } from "./pay.js";
import { printReceipt } from "./receipts.js";
import { state } from "./state.js";

const REASONS = ["Faulty", "Wrong item", "Changed their mind", "Past its date"];

/** What is left to refund of each line, in thousandths. */
function remaining(sale) {
  const left = new Map(sale.lines.map((l) => [l.line_id, toMilli(l.quantity)]));
  for (const refund of sale.refunds) {
    for (const l of refund.lines) left.set(l.line_id, left.get(l.line_id) - toMilli(l.quantity));
  }
  return left;
}

export function openRefund(receiptNo = "") {
  const body = h("div", { class: "sheet-body refund" });
  const sheet = openSheet({ title: "Refund", body, size: "sheet-full", testid: "refund" });

  function askReceipt(message = "") {
    const input = h("input", {
      class: "text-input",
      type: "text",
      inputmode: "none",
      autocomplete: "off",
      placeholder: "Scan the receipt's barcode, or type its number",
      "data-testid": "receipt-no",
      value: receiptNo,
    });
    const find = () => input.value.trim() && lookUp(input.value.trim());
    input.addEventListener("keydown", (e) => e.key === "Enter" && find());
    fill(
      body,
      message ? h("p", { class: "hint" }, message) : null,
      input,
      keyboard(input, { locale: state.store.locale, okLabel: "Find", onOk: find }),
    );
    input.focus();
  }

  async function lookUp(number) {
    receiptNo = number;
    try {
      const sale = await get(`receipts/${encodeURIComponent(number)}`);
      if (sale.status !== "completed") return askReceipt("That receipt's sale was not completed, so there is nothing to refund.");
      choose(sale);
    } catch (err) {
      await showError(err, "Receipt not found");
      askReceipt();
    }
  }

  function choose(sale) {
    const left = remaining(sale);
    const picked = new Map();
    let to = "original";
    const onlyCash = sale.payments.every((p) => p.method === "cash");
    const submit = h("button", { class: "btn btn-primary", type: "button", "data-testid": "refund-submit", disabled: true, onclick: () => run(sale, picked, to) }, "Refund");

    const stepper = (line) => {
      const max = left.get(line.line_id);
      const value = h("span", { class: "step-value", "data-testid": "refund-qty" }, "0");
      const set = (milli) => {
        milli = Math.max(0, Math.min(max, milli));
        if (milli) picked.set(line.line_id, milli);
        else picked.delete(line.line_id);
        value.textContent = qty(fromMilli(milli), line.unit);
        submit.disabled = picked.size === 0;
      };
      const current = () => picked.get(line.line_id) || 0;
      const unit = line.unit === "kg" ? max : 1000; // weighed lines go back whole
      return h(
        "div",
        { class: "refund-line", "data-testid": "refund-line" },
        h("span", { class: "line-name" }, line.name, h("small", {}, `${qty(line.quantity, line.unit)} bought for ${money(line.amount)}; ${qty(fromMilli(max), line.unit)} left to refund`)),
        max > 0
          ? h("div", { class: "stepper" },
              h("button", { class: "btn step", type: "button", "aria-label": "Less", onclick: () => set(current() - unit) }, "−"),
              value,
              h("button", { class: "btn step", type: "button", "aria-label": "More", "data-testid": "refund-more", onclick: () => set(current() + unit) }, "+"),
              h("button", { class: "btn", type: "button", onclick: () => set(max) }, "All"))
          : h("span", { class: "muted" }, "Refunded"),
      );
    };

    const toggle = (value, label) =>
      h("button", {
        class: `btn toggle ${to === value ? "on" : ""}`,
        type: "button",
        onclick: (e) => {
          to = value;
          for (const b of e.target.parentNode.children) b.classList.toggle("on", b === e.target);
        },
      }, label);

    fill(
      body,
      h("p", { class: "refund-head" }, `Receipt ${sale.receipt_no} · ${money(sale.total)} · ${new Date(sale.at).toLocaleString(state.store.locale, { dateStyle: "short", timeStyle: "short" })}`),
      h("div", { class: "refund-lines" }, sale.lines.map(stepper)),
      h(
        "div",
        { class: "actions" },
        onlyCash ? null : h("div", { class: "toggles" }, toggle("original", "Back to the card"), toggle("cash", "In cash")),
        submit,
      ),
    );
  }

  async function run(sale, picked, to) {
    const reason = await pickReason("Why is it refunded?", REASONS);
    if (!reason) return;
    const lines = [...picked].map(([line_id, milli]) => ({ line_id, quantity: fromMilli(milli) }));
    const before = new Set(sale.refunds.map((r) => r.refund_id));
    const key = newKey();
    try {
      const answer = await approve("Refund", (pin) =>
        post(`sales/${sale.sale_id}/refunds`, { lines, to, reason }, { key, managerPin: pin }));
      result(answer, answer.refunds.find((r) => !before.has(r.refund_id)));
    } catch (err) {
      showError(err, "Not refunded");
    }
  }

  function result(sale, refund) {
    const how = refund.payments.map((p) =>
      h("li", { class: "paid-row" },
        h("span", {}, p.method === "cash" ? "Give back in cash" : `Back to card ${cardText(p.card)}`),
        h("span", {}, money(p.amount))));
    fill(
      body,
      h(
        "div",
        { class: "pay-done", "data-testid": "refund-done" },
        h("p", { class: "due-label" }, "Refunded"),
        h("p", { class: "due", "data-testid": "refunded" }, money(refund.total)),
        h("p", { class: "receipt-no" }, `Refund receipt ${refund.receipt_no}`),
        h("ul", { class: "paid-list" }, how),
        h(
          "div",
          { class: "actions" },
          state.features.reprint
            ? h("button", { class: "btn", type: "button", onclick: () => printReceipt(sale.sale_id, refund.refund_id) }, "Print receipt")
            : null,
          h("button", { class: "btn btn-primary", type: "button", onclick: () => sheet.close() }, "Done"),
        ),
      ),
    );
  }

  if (receiptNo) lookUp(receiptNo);
  else askReceipt();
}
