// Money and quantities in the store's locale: integers of minor units in, text out, never a float.
import { state } from "./state.js";

let currency = null;
let number = null;
let decimals = 2;

export function setupMoney(store) {
  decimals = store.minor_units;
  const opts = { minimumFractionDigits: decimals, maximumFractionDigits: decimals };
  currency = new Intl.NumberFormat(store.locale, { style: "currency", currency: store.currency, ...opts });
  number = new Intl.NumberFormat(store.locale, { maximumFractionDigits: 3 });
}

/** Minor units as a decimal string ("-12.05"), which Intl formats exactly. */
export function decimalText(minor) {
  const sign = minor < 0 ? "-" : "";
  const digits = String(Math.abs(minor)).padStart(decimals + 1, "0");
  if (decimals === 0) return sign + digits;
  return `${sign}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

export function money(minor) {
  return currency.format(decimalText(minor ?? 0));
}

/** A quantity string from the API ("3", "0.452") for a line: "3" or "0,452 kg". */
export function qty(quantity, unit) {
  const text = number.format(String(quantity));
  return unit === "kg" ? `${text} kg` : text;
}

/** The locale's decimal separator, for the keypad's decimal key. */
export function decimalSeparator() {
  const parts = new Intl.NumberFormat(state.store?.locale || "en").formatToParts(1.5);
  return parts.find((p) => p.type === "decimal")?.value || ".";
}

/** "0.452" → 452 thousandths: refund quantities are compared without floats. */
export function toMilli(quantity) {
  const [whole, frac = ""] = String(quantity).split(".");
  return Number(whole) * 1000 + Number(frac.padEnd(3, "0").slice(0, 3));
}

export function fromMilli(milli) {
  const whole = Math.floor(milli / 1000);
  const frac = String(milli % 1000).padStart(3, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : String(whole);
}

export function minorUnits() {
  return decimals;
}
