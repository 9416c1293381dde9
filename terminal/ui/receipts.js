// Printing and reprinting receipts through the daemon's printer, where the box has one.
import { post } from "./api.js";
import { showError, toast } from "./dialogs.js";
import { findPath } from "./features.js";

export async function printReceipt(saleId, refundId = null) {
  const template = findPath("post", /^\/api\/v1\/sales\/\{[^}]+\}\/receipt\/print$/);
  if (!template) return;
  const path = template.replace(/\{[^}]+\}/, encodeURIComponent(saleId));
  try {
    await post(path, refundId ? { refund_id: refundId } : {});
    toast("The receipt is printing.");
  } catch (err) {
    showError(err, "Not printed");
  }
}
