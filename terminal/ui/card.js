// A card payment through the terminal: the terminal's prompts live on screen, a decline in plain words.
import { ApiError, get, post } from "./api.js";
import { fill, h } from "./dom.js";
import { openSheet, showError } from "./dialogs.js";
import { findPath } from "./features.js";
import { money } from "./money.js";
import { on, state } from "./state.js";

// The daemon's payment states (terminal/payments.py): started, in_progress (with the terminal's
// prompt in `text`), then approved, failed (`message` says why), needs_review or resolved.
const APPROVED = new Set(["approved"]);
const FAILED = new Set(["failed", "needs_review", "resolved"]);

const fillPath = (template, id) => template.replace(/\{[^}]+\}/, encodeURIComponent(id));

/**
 * Starts the payment (202 + payment id), shows the terminal's prompts from the event stream
 * (polling as a fallback) and resolves with the sale afterwards, or null when nothing changed.
 */
export async function payByCard(sale, amount) {
  const start = findPath("post", /^\/api\/v1\/sales\/\{[^}]+\}\/payments\/card$/);
  if (!start) return null;
  let payment;
  try {
    payment = await post(fillPath(start, sale.sale_id), { amount });
  } catch (err) {
    await showError(err, "Card not started");
    return null;
  }
  const paymentId = payment.payment_id || payment.id;
  state.cardBusy = true;
  try {
    const outcome = await follow(paymentId, amount);
    const fresh = await get(`sales/${sale.sale_id}`);
    if (!APPROVED.has(outcome.state)) {
      await showError(new ApiError(0, `card_${outcome.state}`, declineText(outcome)), "Card not paid");
    }
    return fresh;
  } finally {
    state.cardBusy = false;
  }
}

function declineText(outcome) {
  if (outcome.state === "needs_review") {
    return `${outcome.message || "The card terminal's answer is unclear."} A manager must check this payment before the customer pays again.`;
  }
  const what = outcome.message || outcome.text || "The card payment did not go through.";
  return `${what} The sale is still open.`;
}

function follow(paymentId, amount) {
  return new Promise((resolve) => {
    const text = h("p", { class: "card-prompt", "data-testid": "card-prompt" }, "Starting the card terminal…");
    const abortPath = findPath("post", /^\/api\/v1\/payments\/\{[^}]+\}\/abort$/);
    const abort = abortPath
      ? h("button", {
          class: "btn",
          type: "button",
          "data-testid": "card-abort",
          onclick: () => post(fillPath(abortPath, paymentId), {}).catch(showError),
        }, "Cancel payment")
      : null;
    const sheet = openSheet({
      title: `Card ${money(amount)}`,
      testid: "card",
      size: "sheet-small",
      closable: false,
      body: h("div", { class: "sheet-body" }, text, h("div", { class: "actions" }, abort)),
    });
    let finished = false;
    const finish = (outcome) => {
      if (finished) return;
      finished = true;
      off();
      clearInterval(poll);
      sheet.close();
      resolve(outcome);
    };
    const update = (p) => {
      if (p.text || p.message) fill(text, p.text || p.message);
      const s = String(p.state || p.status || "").toLowerCase();
      if (APPROVED.has(s) || FAILED.has(s)) finish({ ...p, state: s });
    };
    const off = on("event", (msg) => {
      if (msg.type !== "payment" && !msg.type?.startsWith("payment.")) return;
      const p = { ...(msg.data || {}), ...msg };
      if ((p.payment_id || p.id) && (p.payment_id || p.id) !== paymentId) return;
      update(p);
    });
    const getPath = findPath("get", /^\/api\/v1\/payments\/\{[^}]+\}$/);
    const poll = setInterval(() => {
      if (getPath) get(fillPath(getPath, paymentId)).then(update, () => {});
    }, 1000);
  });
}
