// The menu: refund, void, no-sale, customers, devices, closing the shift, logging out.
import { post } from "./api.js";
import { h } from "./dom.js";
import { approve, confirmSheet, openSheet, pickReason, showError, toast } from "./dialogs.js";
import { money } from "./money.js";
import { openRefund } from "./refund.js";
import { key, serial, setSale } from "./sale.js";
import { closeShift } from "./shift.js";
import { emit, state } from "./state.js";
import { openDevices } from "./devices.js";
import { openCustomers } from "./customers.js";

export function openMenu() {
  const sale = state.sale?.status === "open" ? state.sale : null;
  const item = (label, run, testid, enabled = true) =>
    h("button", {
      class: "btn menu-item",
      type: "button",
      "data-testid": testid,
      disabled: !enabled,
      onclick: () => {
        sheet.close();
        run();
      },
    }, label);
  const sheet = openSheet({
    title: `${state.user?.name || ""} · ${state.store.name}`,
    testid: "menu",
    size: "sheet-menu",
    body: h(
      "div",
      { class: "sheet-body menu-grid" },
      item("Refund", () => openRefund(), "menu-refund"),
      item("Void sale", voidSale, "menu-void", Boolean(sale && (sale.lines.length || sale.payments.length))),
      item("Open drawer (no sale)", noSale, "menu-no-sale"),
      item("Customer lookup", openCustomers, "menu-customer"),
      state.features.devices ? item("Devices", openDevices, "menu-devices") : null,
      item("Close shift", endShift, "menu-close-shift"),
      item("Log out", () => emit("logout"), "menu-logout"),
    ),
  });
}

async function voidSale() {
  const sale = state.sale;
  const ok = await confirmSheet({
    title: "Void this sale?",
    text: `All ${sale.lines.length} lines (${money(sale.total)}) are cancelled. The sale stays in the journal as voided.`,
    okLabel: "Void sale",
  });
  if (!ok) return;
  const reason = await pickReason("Why is the sale voided?", ["Customer left", "Customer cannot pay", "Wrong items rung up"]);
  if (!reason) return;
  const k = key();
  try {
    const voided = await serial(() =>
      approve("Void sale", (pin) => post(`sales/${sale.sale_id}/void`, { reason }, { key: k, managerPin: pin })));
    setSale(null);
    const back = voided.returned.reduce((sum, p) => sum + p.amount, 0);
    toast(back ? `Sale voided. Hand back ${money(back)} in cash.` : "Sale voided.");
  } catch (err) {
    showError(err, "Not voided");
  }
}

async function noSale() {
  const reason = await pickReason("Why open the drawer?", ["Change for a customer", "Check the drawer", "Cash count"]);
  if (!reason) return;
  const k = key();
  try {
    await approve("Open drawer", (pin) => post("drawer/open", { reason }, { key: k, managerPin: pin }));
    toast("The drawer is open.");
  } catch (err) {
    showError(err, "Drawer not opened");
  }
}

async function endShift() {
  try {
    const z = await closeShift();
    if (z) emit("shift-closed", z);
  } catch (err) {
    showError(err, "Shift not closed");
  }
}
