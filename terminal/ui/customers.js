// Customers at the counter: lookup, a new customer with their marketing answer, the sale's customer.
import { del, get, post, put } from "./api.js";
import { $, fill, h } from "./dom.js";
import { confirmSheet, openSheet, showError, toast } from "./dialogs.js";
import { keyboard } from "./keyboard.js";
import { ensureSale, key, serial, setSale } from "./sale.js";
import { on, state } from "./state.js";

// Refusals that name one field of the form; the message is shown next to it, in the till's words.
const FIELD_OF = { bad_name: "name", contact_missing: "email", bad_email: "email", bad_phone: "phone" };

const openSale = () => (state.sale?.status === "open" ? state.sale : null);

/** The lookup sheet: search, tap a customer to put them on the sale, or capture a new one. */
export function openCustomers() {
  const input = h("input", { class: "text-input", type: "text", inputmode: "none", autocomplete: "off", placeholder: "Name, email, phone or customer number", "data-testid": "customer-q" });
  const list = h("div", { class: "customers", "data-testid": "customers" }, h("p", { class: "hint" }, "Type at least 2 letters or digits."));
  let timer = null;
  const search = async () => {
    const q = input.value.trim();
    if (q.length < 2) return;
    try {
      const { customers } = await get(`customers?q=${encodeURIComponent(q)}`);
      fill(list, customers.length ? customers.map((c) => customerRow(c, () => attach(c, sheet))) : h("p", { class: "hint" }, "No customer found."));
    } catch (err) {
      showError(err);
    }
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });
  const create = state.features.customerCapture
    ? h("button", { class: "btn btn-primary", type: "button", "data-testid": "customer-new", onclick: () => newCustomer(input.value.trim(), sheet) }, "New customer")
    : null;
  const sheet = openSheet({
    title: "Customers",
    testid: "customer",
    size: "sheet-full",
    body: h(
      "div",
      { class: "sheet-body" },
      h("div", { class: "customer-search" }, input, create),
      list,
      keyboard(input, { locale: state.store.locale, okLabel: "Search", onOk: search }),
    ),
  });
  input.focus();
}

function customerRow(c, pick) {
  return h(
    "button",
    { class: "customer", type: "button", "data-testid": "customer-row", onclick: pick },
    h("span", { class: "line-name" }, c.name, h("small", {}, [c.email, c.phone, c.id].filter(Boolean).join(" · "))),
    h("span", {}, `${c.loyalty_points} points`),
    h("span", { class: c.marketing_consent ? "badge good" : "badge" }, c.marketing_consent ? "Marketing: agreed" : "No marketing"),
  );
}

async function attach(c, sheet) {
  try {
    await serial(async () => {
      const sale = await ensureSale();
      setSale(await put(`sales/${sale.sale_id}/customer`, { customer_id: c.id }, { key: key() }));
    });
    sheet.close();
    toast(`${c.name} is on this sale.`);
  } catch (err) {
    showError(err, "Customer not added");
  }
}

/** What was searched for goes where it belongs: an email, a phone number or a name. */
function prefill(text) {
  if (text.includes("@")) return { email: text };
  if (/^[+\d][\d ()/.-]*$/.test(text)) return { phone: text };
  return { name: text };
}

function newCustomer(searched, lookup) {
  const start = prefill(searched);
  const field = (name, label) =>
    h("input", { class: "text-input", type: "text", inputmode: "none", autocomplete: "off", spellcheck: "false", placeholder: label, "aria-label": label, name, value: start[name] || "", "data-testid": `customer-${name}` });
  const fields = { name: field("name", "Name"), email: field("email", "Email"), phone: field("phone", "Phone") };
  const order = Object.values(fields);
  let active = fields.name;
  for (const input of order) input.addEventListener("focus", () => (active = input));

  // Marketing consent is a no until the customer says yes; the cashier taps to record the yes.
  let consent = false;
  const toggle = h("button", { class: "consent", type: "button", role: "switch", "aria-checked": "false", "data-testid": "consent", onclick: () => setConsent(!consent) });
  const setConsent = (value) => {
    consent = value;
    toggle.setAttribute("aria-checked", String(value));
    toggle.classList.toggle("on", value);
    fill(
      toggle,
      h("strong", {}, value ? "✓ Marketing: yes" : "✕ Marketing: no"),
      h("small", {}, value ? "The customer said yes" : "Tap only if the customer says yes"),
    );
  };
  setConsent(false);

  const message = h("p", { class: "form-message", role: "alert", "data-testid": "customer-message" });
  const save = h("button", { class: "btn btn-primary customer-save", type: "button", "data-testid": "customer-save", onclick: () => submit() }, "Save");
  const showProblem = (text, input) => {
    message.textContent = text;
    for (const f of order) f.removeAttribute("aria-invalid");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  };

  async function submit() {
    if (save.disabled) return;
    const body = { name: fields.name.value, marketing_consent: consent };
    if (fields.email.value.trim()) body.email = fields.email.value;
    if (fields.phone.value.trim()) body.phone = fields.phone.value;
    save.disabled = true;
    try {
      const customer = await serial(async () => {
        const sale = openSale();
        const done = await post("customers", sale ? { ...body, sale_id: sale.sale_id } : body, { key: key() });
        if (done.sale) {
          setSale(done.sale);
        } else {
          const opened = await ensureSale();
          setSale(await put(`sales/${opened.sale_id}/customer`, { customer_id: done.customer.id }, { key: key() }));
        }
        return done.customer;
      });
      sheet.close();
      lookup.close();
      toast(`${customer.name} is saved and on this sale.`);
    } catch (err) {
      if (FIELD_OF[err.code]) showProblem(err.message, fields[FIELD_OF[err.code]]);
      else showError(err, "Customer not saved");
    } finally {
      save.disabled = false;
    }
  }

  const next = () => order[(order.indexOf(active) + 1) % order.length].focus();
  const sheet = openSheet({
    title: "New customer",
    testid: "customer-form",
    size: "sheet-full",
    body: h(
      "div",
      { class: "sheet-body customer-form" },
      h("div", { class: "customer-fields" }, order),
      h("div", { class: "customer-consent" }, toggle, message, save),
      keyboard(() => active, { locale: state.store.locale, okLabel: "Next", onOk: next }),
    ),
  });
  sheet.handleKey = (e) => {
    if (e.key !== "Enter") return false;
    submit();
    return true;
  };
  (start.name ? fields.email : fields.name).focus();
}

// -- the sale's customer in the top bar ----------------------------------------------------

function renderBar() {
  const bar = $("#bar-customer");
  const customer = openSale()?.customer;
  bar.hidden = !customer;
  bar.textContent = customer ? `Customer: ${customer.name}` : "";
}

async function takeOff() {
  const sale = openSale();
  if (!sale?.customer) return;
  const ok = await confirmSheet({
    title: "Take the customer off this sale?",
    text: `${sale.customer.name} stays saved; only this sale forgets them.`,
    okLabel: "Take off",
  });
  if (!ok) return;
  try {
    setSale(await serial(() => del(`sales/${sale.sale_id}/customer`, { key: key() })));
  } catch (err) {
    showError(err, "Customer not taken off");
  }
}

export function startCustomers() {
  $("#bar-customer").addEventListener("click", takeOff);
  on("sale", renderBar);
}
