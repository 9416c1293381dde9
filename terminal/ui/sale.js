// The sale screen: the cart with its totals on one side, search and the category grid on the other.
import { get, newKey, post } from "./api.js";
import { $, fill, h } from "./dom.js";
import { askNumber, showError } from "./dialogs.js";
import { keyboard } from "./keyboard.js";
import { editCartDiscount, editLine } from "./lines.js";
import { money, qty } from "./money.js";
import { openPay } from "./pay.js";
import { emit, on, state } from "./state.js";

let queue = Promise.resolve();
let creating = null;
let refreshQueued = false;
let adopting = null; // a sale opened elsewhere, taken up once fetched
const ownKeys = new Set(); // Idempotency-Keys this screen sent: their events need no refetch

/** Runs sale changes one after another, so answers never overtake each other. */
export function serial(fn) {
  const run = queue.then(fn, fn);
  queue = run.catch(() => {});
  return run;
}

export function key() {
  const k = newKey();
  ownKeys.add(k);
  if (ownKeys.size > 200) ownKeys.delete(ownKeys.values().next().value);
  return k;
}

export function setSale(sale) {
  state.sale = sale;
  emit("sale", sale);
}

/** The open sale, opened now when there is none (run it inside `serial`). */
export async function ensureSale() {
  if (state.sale?.status === "open") return state.sale;
  creating ||= post("sales", undefined, { key: key() }).finally(() => (creating = null));
  setSale(await creating);
  return state.sale;
}

/** Adds an item by barcode or SKU: the sale opens on the first one. */
export function addLine(body) {
  return serial(async () => {
    try {
      const sale = await ensureSale();
      setSale(await post(`sales/${sale.sale_id}/lines`, body, { key: key() }));
      flashLast();
    } catch (err) {
      showError(err, err.code === "unknown_barcode" || err.code === "bad_barcode" ? "Not found" : undefined);
    }
  });
}

/** Follows changes made elsewhere (a scan at the scanner, another kiosk tab) from the stream. */
function followEvent(msg) {
  if (!msg.type?.startsWith("sale.") || !state.token) return;
  const data = msg.data || {};
  if (data.request && ownKeys.has(data.request.id)) return;
  const current = state.sale;
  const adopt = msg.type === "sale.opened" && !creating && current?.status !== "open";
  if (adopt) adopting = data.sale_id;
  // until the adopted sale is fetched, its next events (a line a moment later) count as its own
  if (!adopt && data.sale_id !== current?.sale_id && data.sale_id !== adopting) return;
  if (refreshQueued) return;
  refreshQueued = true;
  serial(async () => {
    refreshQueued = false;
    try {
      const sale = await get(`sales/${data.sale_id}`);
      const ours = sale.sale_id === adopting || sale.sale_id === state.sale?.sale_id;
      if (sale.sale_id === adopting) adopting = null;
      if (ours) setSale(sale);
      if (msg.type === "sale.line_added") flashLast();
    } catch {
      // the next event or resync fetches it again
    }
  });
}

/** After login or a reconnect: carry on with the newest open sale on this till. */
export async function resumeSale() {
  const { sales } = await get("sales");
  sales.sort((a, b) => a.opened_at.localeCompare(b.opened_at));
  if (sales.length) setSale(sales.at(-1));
  else if (state.sale?.status === "open") setSale(null);
}

function flashLast() {
  requestAnimationFrame(() => {
    const rows = document.querySelectorAll(".line");
    const last = rows[rows.length - 1];
    if (!last) return;
    last.scrollIntoView({ block: "nearest" });
    last.classList.remove("flash");
    void last.offsetWidth;
    last.classList.add("flash");
  });
}

// -- the cart ------------------------------------------------------------------------------

function lineRow(line) {
  const note = [];
  if (line.override) note.push(`Price changed: ${line.override.reason}`);
  if (line.discount_amount) note.push(`Discount −${money(line.discount_amount)}`);
  return h(
    "button",
    { class: "line", type: "button", "data-testid": "line", "data-sku": line.sku, onclick: () => editLine(line.line_id) },
    h("span", { class: "line-qty" }, line.unit === "kg" ? qty(line.quantity, "kg") : `${qty(line.quantity)} ×`),
    h("span", { class: "line-name" }, line.name, note.length ? h("small", {}, note.join(" · ")) : null),
    h("span", { class: "line-amount" }, money(line.amount)),
  );
}

function renderCart(cart) {
  const sale = state.sale?.status === "open" ? state.sale : null;
  const lines = sale?.lines || [];
  fill(
    $(".cart-lines", cart),
    lines.length
      ? lines.map(lineRow)
      : h("p", { class: "empty" }, "Scan an item, or tap one on the right."),
  );
  const count = lines.reduce((n, l) => n + (l.unit === "kg" ? 1 : Number(l.quantity)), 0);
  fill(
    $(".cart-sums", cart),
    h("span", {}, `${count} item${count === 1 ? "" : "s"}`),
    sale?.discount ? h("span", {}, `Discount −${money(sale.discount)}`) : null,
    sale?.paid ? h("span", {}, `Paid ${money(sale.paid)}`) : null,
  );
  $("[data-testid=total]", cart).textContent = money(sale ? sale.total : 0);
  $(".pay-btn", cart).disabled = !lines.length;
  $(".cart-discount", cart).disabled = !lines.length || Boolean(sale?.payments?.length);
}

// -- the catalog ---------------------------------------------------------------------------

function tile(item) {
  return h(
    "button",
    { class: "tile", type: "button", "data-testid": "item", "data-sku": item.sku, onclick: () => pick(item) },
    h("span", { class: "tile-name" }, item.name),
    h("span", { class: "tile-price" }, item.unit === "kg" ? `${money(item.price)} / kg` : money(item.price)),
  );
}

async function pick(item) {
  closeKeyboard();
  if (item.unit !== "kg") return addLine({ sku: item.sku, quantity: 1 });
  const weight = await askNumber({ title: `${item.name}: weight in kg`, mode: "qty", okLabel: "Add" });
  if (weight && Number(weight) > 0) addLine({ sku: item.sku, quantity: weight });
}

let searchTimer = null;
let shownQuery = null;

async function showItems(query) {
  const grid = $(".items");
  if (!grid) return;
  const params = new URLSearchParams({ limit: "120" });
  if (query.q) params.set("q", query.q);
  if (query.category) params.set("category", query.category);
  shownQuery = params.toString();
  try {
    const { items } = await get(`catalog/items?${params}`);
    if (shownQuery !== params.toString()) return;
    fill(grid, items.length ? items.map(tile) : h("p", { class: "empty" }, "Nothing found. Try fewer letters."));
    grid.scrollTop = 0;
  } catch (err) {
    showError(err);
  }
}

function selectCategory(id) {
  state.category = id;
  for (const chip of document.querySelectorAll(".chip")) chip.classList.toggle("on", chip.dataset.id === id);
  const input = $(".search");
  if (input) input.value = "";
  showItems({ category: id });
}

function closeKeyboard() {
  const dock = $("#dock");
  if (dock) dock.remove();
  document.body.classList.remove("typing");
  $(".search")?.blur();
}

function openKeyboard(input) {
  if ($("#dock")) return;
  document.body.classList.add("typing");
  const submit = (text) => {
    const code = text.trim();
    if (/^\d{8,14}$/.test(code)) {
      input.value = "";
      addLine({ barcode: code });
      selectCategory(state.category);
    }
    closeKeyboard();
  };
  document.body.append(h("div", { id: "dock" }, keyboard(input, { locale: state.store.locale, okLabel: "Done", onOk: submit })));
  input.addEventListener("keydown", (e) => e.key === "Enter" && submit(input.value), { once: true });
}

function onSearch(e) {
  clearTimeout(searchTimer);
  const q = e.target.value.trim();
  searchTimer = setTimeout(() => (q ? showItems({ q }) : selectCategory(state.category)), 150);
}

// -- the screen ----------------------------------------------------------------------------

export function saleScreen(categories) {
  const cart = h(
    "section",
    { class: "cart" },
    h("div", { class: "cart-lines", "data-testid": "cart" }),
    h(
      "div",
      { class: "cart-foot" },
      h("div", { class: "cart-sums" }),
      h("div", { class: "total-row" }, h("span", { class: "total-label" }, "Total"), h("span", { class: "total", "data-testid": "total" })),
      h(
        "div",
        { class: "cart-actions" },
        h("button", { class: "btn cart-discount", type: "button", onclick: () => editCartDiscount() }, "Discount"),
        h("button", { class: "btn btn-primary pay-btn", type: "button", "data-testid": "pay", onclick: () => openPay() }, "Pay"),
      ),
    ),
  );
  const search = h("input", {
    class: "search",
    type: "search",
    inputmode: "none",
    autocomplete: "off",
    placeholder: "Search by name, or type a barcode",
    "data-testid": "search",
    oninput: onSearch,
    onfocus: (e) => openKeyboard(e.target),
  });
  const catalog = h(
    "section",
    { class: "catalog" },
    h("div", { class: "search-row" }, search),
    h("div", { class: "chips" }, categories.map((c) =>
      h("button", { class: "chip", type: "button", "data-id": c.id, onclick: () => selectCategory(c.id) }, c.name))),
    h("div", { class: "items", "data-testid": "items" }),
  );
  const el = h("div", { class: "sale-screen", "data-testid": "sale" }, cart, catalog);
  const off = on("sale", () => renderCart(cart));
  el.cleanup = () => {
    off();
    closeKeyboard();
  };
  renderCart(cart);
  queueMicrotask(() => selectCategory(state.category || categories[0]?.id || ""));
  return el;
}

export function startSaleFollowing() {
  on("event", followEvent);
  on("stream", (how) => how === "open" && state.token && serial(resumeSale).catch(() => {}));
}
