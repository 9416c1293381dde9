// Opening a shift with the counted float, closing it with the counted cash, and the Z report.
import { get, newKey, post } from "./api.js";
import { h } from "./dom.js";
import { askNumber, showError } from "./dialogs.js";
import { keypad } from "./keypad.js";
import { money } from "./money.js";
import { emit, state } from "./state.js";

export function openShiftScreen() {
  const key = newKey();
  const pad = keypad({
    mode: "money",
    okLabel: "Open shift",
    onOk: async (entry) => {
      try {
        state.shift = await post("shifts", { opening_float: Number(entry || "0") }, { key });
        emit("shift-opened");
      } catch (err) {
        if (err.code === "shift_open") {
          state.shift = await get("shifts/current");
          emit("shift-opened");
        } else showError(err);
      }
    },
  });
  const el = h(
    "div",
    { class: "login-screen", "data-testid": "open-shift" },
    h(
      "div",
      { class: "login-side" },
      h("h1", {}, "Open the shift"),
      h("p", { class: "login-prompt" }, "Count the cash in the drawer and type the amount."),
    ),
    h("div", { class: "login-pad" }, pad.el),
  );
  el.handleKey = (e) => pad.el.handleKey(e);
  return el;
}

/** Counted cash in, Z report out (shown by the caller). */
export async function closeShift() {
  const counted = await askNumber({
    title: "Close the shift",
    mode: "money",
    okLabel: "Close shift",
    hint: "Count all the cash in the drawer and type the amount.",
    testid: "close-shift",
  });
  if (counted === null) return null;
  return post("shifts/current/close", { counted: Number(counted || "0") });
}

const row = (label, value, cls = "") => h("tr", { class: cls }, h("th", {}, label), h("td", {}, value));

export function zReportScreen(z, onDone) {
  const names = Object.fromEntries(["cash", "card"].map((m) => [m, m === "cash" ? "Cash" : "Card"]));
  const cash = z.cash;
  const overShort = cash.over_short ?? 0;
  const balance = overShort === 0 ? "Drawer balanced" : overShort > 0 ? "Over" : "Short";
  const when = (at) => new Date(at).toLocaleString(state.store.locale, { dateStyle: "short", timeStyle: "short" });
  const el = h(
    "div",
    { class: "report-screen", "data-testid": "z-report" },
    h("header", { class: "report-head" },
      h("h1", {}, `${z.kind} report`),
      h("p", {}, `${when(z.opened_at)} – ${z.closed_at ? when(z.closed_at) : "now"}`),
      h("button", { class: "btn btn-primary", type: "button", "data-testid": "z-done", onclick: onDone }, "Done")),
    h(
      "div",
      { class: "report-cols" },
      h("table", { class: "report" },
        h("caption", {}, "Sales"),
        row(`Sales (${z.sales.count})`, money(z.sales.total)),
        row("of which discounts", money(z.sales.discounts)),
        row(`Refunds (${z.refunds.count})`, money(-z.refunds.total)),
        row("Net total", money(z.net_total), "strong"),
        row(`Voids (${z.voids.count})`, money(z.voids.total)),
        row("No-sales", String(z.no_sales)),
        Object.entries(z.tenders).map(([m, t]) => row(`${names[m] || m} net (${t.count})`, money(t.net)))),
      h("table", { class: "report" },
        h("caption", {}, "Tax"),
        z.taxes.map((t) => row(`${t.code} ${t.rate} %`, `${money(t.tax)} of ${money(t.gross)}`)),
        z.taxes.length ? null : row("No taxable sales", "")),
      h("table", { class: "report", "data-testid": "z-cash" },
        h("caption", {}, "Cash drawer"),
        row("Opening float", money(cash.opening_float)),
        row("Cash sales", money(cash.sales)),
        row("Cash refunds", money(-cash.refunds)),
        row("Cash in / out", `${money(cash.cash_in)} / ${money(-cash.cash_out)}`),
        row("Expected", money(cash.expected), "strong"),
        cash.counted === undefined ? null : row("Counted", money(cash.counted), "strong"),
        cash.counted === undefined ? null : row(balance, money(overShort), overShort === 0 ? "good" : "warn")),
    ),
  );
  return el;
}
