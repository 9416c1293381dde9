// The kiosk: start-up, which screen shows, auto-lock, and scans from a keyboard-wedge scanner.
import { ApiError, get } from "./api.js";
import { startCustomers } from "./customers.js";
import { $, fill } from "./dom.js";
import { closeAllSheets, showError, topSheet } from "./dialogs.js";
import { connectEvents, disconnectEvents } from "./events.js";
import { detectFeatures } from "./features.js";
import { loginScreen } from "./login.js";
import { openMenu } from "./menu.js";
import { setupMoney } from "./money.js";
import { openRefund } from "./refund.js";
import { addLine, resumeSale, saleScreen, setSale, startSaleFollowing } from "./sale.js";
import { openShiftScreen, zReportScreen } from "./shift.js";
import { emit, on, state } from "./state.js";
import { startDevices } from "./devices.js";
import { startStatus } from "./status.js";

const params = new URLSearchParams(location.search);
const LOCK_AFTER_S = Number(params.get("autolock") || 120); // 0 turns auto-lock off
let current = null;
let categories = [];

function show(screen, { bar = true } = {}) {
  current?.cleanup?.();
  current = screen;
  fill($("#screen"), screen);
  $("#bar").hidden = !bar;
  $("#bar-user").textContent = state.user ? state.user.name : "";
  if (screen.dataset.testid === "sale") {
    requestAnimationFrame(() => {
      performance.mark("tillbox:sale-screen");
      document.body.dataset.ready = "sale";
    });
  }
}

function showLogin(notice = "") {
  closeAllSheets();
  disconnectEvents();
  state.token = state.user = state.shift = null;
  setSale(null);
  sessionStorage.removeItem("tillbox.token");
  show(loginScreen(notice), { bar: false });
}

async function afterLogin() {
  connectEvents();
  emit("logged-in");
  try {
    state.shift = await get("shifts/current");
  } catch (err) {
    if (err.code === "no_shift") return show(openShiftScreen());
    return showError(err);
  }
  await resumeSale().catch(showError);
  show(saleScreen(categories));
}

async function logout(notice) {
  const token = state.token;
  showLogin(notice);
  if (token) {
    await fetch("/api/v1/sessions/current", { method: "DELETE", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  }
}

// -- auto-lock -----------------------------------------------------------------------------

let lastTouch = Date.now();
function watchIdle() {
  for (const type of ["pointerdown", "keydown"]) addEventListener(type, () => (lastTouch = Date.now()), true);
  if (!LOCK_AFTER_S) return;
  setInterval(() => {
    if (!state.token || state.cardBusy) return;
    if (Date.now() - lastTouch < LOCK_AFTER_S * 1000) return;
    const minutes = LOCK_AFTER_S >= 120 ? `${Math.round(LOCK_AFTER_S / 60)} minutes` : `${LOCK_AFTER_S} seconds`;
    logout(`Locked after ${minutes} without use. An open sale is kept: log in to carry on.`);
  }, 500);
}

// -- keys: sheets first, then the screen's keypad, then the scanner ------------------------

let scanned = "";
function onKey(e) {
  const sheet = topSheet();
  if (sheet) {
    if (sheet.handleKey?.(e)) e.preventDefault();
    return;
  }
  if (e.target instanceof HTMLInputElement) return;
  if (current?.handleKey?.(e)) return e.preventDefault();
  if (!state.token || current?.dataset.testid !== "sale") return;
  if (e.key === "Enter") {
    const code = scanned.trim();
    scanned = "";
    if (/^\d{8,14}$/.test(code)) addLine({ barcode: code });
    else if (code.length >= 4) openRefund(code); // anything else a scanner sends is a receipt number
  } else if (e.key.length === 1) {
    scanned += e.key;
  }
}

/** What the till's own scanner reports beyond items: a receipt to refund, a refused scan. */
function onDeviceEvent(msg) {
  if (msg.type !== "device" || !state.token || current?.dataset.testid !== "sale") return;
  if (msg.event === "receipt_scanned" && !topSheet()) openRefund(msg.receipt_no);
  if (msg.event === "scan_refused") showError(new ApiError(0, msg.code, msg.message), "Scan not added");
}

// -- start ---------------------------------------------------------------------------------

async function boot() {
  // Optional panels (devices, card, reprint) appear once the route list is read; the sale
  // screen does not wait for it.
  detectFeatures().then(() => emit("features"));
  const [store, cats] = await Promise.all([get("store"), get("catalog/categories")]);
  state.store = store;
  document.documentElement.lang = store.locale;
  document.title = `${store.name} · Tillbox`;
  setupMoney(store);
  $("#bar-store").textContent = store.name;
  $("#bar-menu").addEventListener("click", openMenu);
  categories = cats.categories;
  startStatus();
  startDevices();
  startCustomers();
  startSaleFollowing();
  watchIdle();
  on("event", onDeviceEvent);
  document.addEventListener("keydown", onKey);
  on("login", afterLogin);
  on("logout", () => logout());
  on("session-lost", (message) => showLogin(message));
  on("shift-opened", () => afterLogin());
  on("shift-closed", (z) => {
    closeAllSheets();
    show(zReportScreen(z, () => logout("Shift closed. The next cashier opens a new shift.")), { bar: false });
  });
  // Pinch zoom and the long-press menu only get in a cashier's way.
  addEventListener("contextmenu", (e) => e.preventDefault());
  addEventListener("gesturestart", (e) => e.preventDefault());
  addEventListener("wheel", (e) => e.ctrlKey && e.preventDefault(), { passive: false });

  const saved = sessionStorage.getItem("tillbox.token");
  if (saved) {
    state.token = saved;
    try {
      state.user = await get("sessions/current");
      return afterLogin();
    } catch {
      // an old token: log in again
    }
  }
  showLogin();
}

boot().catch((err) => {
  fill($("#screen"), "The till service is not answering. This screen tries again in a few seconds.");
  console.error(err);
  setTimeout(() => location.reload(), 3000);
});
