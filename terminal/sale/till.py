# The till's state as a fold over journal events, and the decisions that produce new events.
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from .catalog import Item, Unit
from .customers import check_new_customer
from .errors import Conflict, Invalid, NotFound
from .money import cash_round, round_minor
from .pricing import Discount, LineInput, TaxSetup, Totals, price
from .report import ShiftTotals

Event = tuple[str, dict[str, Any]]
Method = Literal["cash", "card"]
MAX_EACH_QUANTITY = Decimal(999)
MAX_WEIGHT_KG = Decimal(99)
MAX_LINES = 500


@dataclass(frozen=True, slots=True)
class Policy:
    """Store rules the domain needs; built from configuration at the edge."""

    store: str
    terminal: str
    currency: str
    tax: TaxSetup
    cash_increment: int = 1  # smallest coin, e.g. 5 for CHF; 1 means no cash rounding

    def receipt_no(self, number: int) -> str:
        return f"{self.store}-{self.terminal}-{number:06d}"


@dataclass(frozen=True, slots=True)
class Override:
    unit_price: int
    reason: str
    approved_by: str


@dataclass(slots=True)
class Line:
    line_id: str
    sku: str
    name: str
    tax_class: str
    unit: Unit
    catalog_price: int
    quantity: Decimal
    barcode: str | None = None
    discount: Discount | None = None
    override: Override | None = None

    @property
    def unit_price(self) -> int:
        return self.override.unit_price if self.override else self.catalog_price


@dataclass(slots=True)
class Payment:
    payment_id: str
    method: str
    amount: int  # applied to the sale, change already taken off
    tendered: int | None = None
    change: int = 0
    rounding: int = 0
    card: dict[str, Any] | None = None

    def to_data(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "method": self.method,
            "amount": self.amount,
            "tendered": self.tendered,
            "change": self.change,
            "rounding": self.rounding,
            "card": self.card,
        }


@dataclass(slots=True)
class Sale:
    sale_id: str
    shift_id: str
    cashier: str
    opened_at: str
    opened_seq: int
    lines: dict[str, Line] = field(default_factory=dict)
    discount: Discount | None = None
    payments: list[Payment] = field(default_factory=list)
    reversed: list[dict[str, Any]] = field(default_factory=list)  # card payments given back
    customer: dict[str, Any] | None = None  # {"id", "name"} once one is attached

    def totals(self, tax: TaxSetup) -> Totals:
        inputs = [
            LineInput(li.line_id, li.unit_price, li.quantity, li.tax_class, li.discount)
            for li in self.lines.values()
        ]
        return price(inputs, self.discount, tax)

    @property
    def paid(self) -> int:
        return sum(p.amount for p in self.payments)

    @property
    def rounding(self) -> int:
        return sum(p.rounding for p in self.payments)


@dataclass(slots=True)
class Shift:
    shift_id: str
    cashier: str
    opened_at: str
    opened_seq: int
    totals: ShiftTotals


@dataclass(slots=True)
class CardOp:
    """A card-terminal operation journaled as intended and not finished yet (payments.md)."""

    payment_id: str
    kind: str  # "payment", "refund" or "reversal"
    sale_id: str
    amount: int
    intent: dict[str, Any]  # the payment.intent data
    state: str = "started"  # then "result_received"; "needs_review" waits for a manager
    result: dict[str, Any] | None = None
    review: dict[str, Any] | None = None


@dataclass(slots=True)
class TillState:
    shift: Shift | None = None
    sales: dict[str, Sale] = field(default_factory=dict)
    receipt_counter: int = 0
    seq: int = 0
    card_ops: dict[str, CardOp] = field(default_factory=dict)


def parse_quantity(value: str | int | Decimal, unit: Unit) -> Decimal:
    """A positive, bounded quantity: whole pieces, or kilograms to the gram."""
    try:
        qty = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Invalid("bad_quantity", f"Quantity {value!r} is not a number.") from None
    if not qty.is_finite() or qty <= 0:
        raise Invalid(
            "bad_quantity", "Quantity must be more than zero. To take an item off, remove the line."
        )
    if unit == "each":
        if qty != qty.to_integral_value():
            raise Invalid("bad_quantity", "This item is sold by the piece: use a whole number.")
        if qty > MAX_EACH_QUANTITY:
            raise Invalid(
                "bad_quantity",
                f"At most {MAX_EACH_QUANTITY} pieces on one line. Check the quantity.",
            )
        return qty.quantize(Decimal(1))
    if qty.normalize().as_tuple().exponent < -3:  # type: ignore[operator]
        raise Invalid("bad_quantity", "Weights are kept to the gram (3 decimals in kg).")
    if qty > MAX_WEIGHT_KG:
        raise Invalid(
            "bad_quantity", f"At most {MAX_WEIGHT_KG} kg on one line. Check the scale reading."
        )
    return qty.quantize(Decimal("0.001"))


class Till:
    """Pure state machine of one terminal. Decisions return events; `apply` folds them in.

    Nothing here reads a clock, draws a random number or touches I/O: ids and times come in
    as arguments from the edge, so replaying the journal rebuilds exactly the same state.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.state = TillState()

    # -- lookups -----------------------------------------------------------------------

    def shift(self) -> Shift:
        if self.state.shift is None:
            raise Conflict(
                "no_shift",
                "No shift is open. Open a shift with the opening float "
                "counted into the drawer first.",
            )
        return self.state.shift

    def sale(self, sale_id: str) -> Sale:
        try:
            return self.state.sales[sale_id]
        except KeyError:
            raise NotFound(
                "sale_not_open",
                "That sale is not open: it was completed or "
                "voided, or never existed. Start a new sale.",
            ) from None

    def totals(self, sale: Sale) -> Totals:
        return sale.totals(self.policy.tax)

    def due(self, sale: Sale) -> int:
        """What is still owed on an open sale (negative means overpaid)."""
        return self.totals(sale).total + sale.rounding - sale.paid

    # -- decisions ---------------------------------------------------------------------

    def open_shift(self, shift_id: str, cashier: str, opening_float: int) -> list[Event]:
        if self.state.shift is not None:
            raise Conflict(
                "shift_open",
                "A shift is already open on this till. Close it before opening a new one.",
            )
        _check_amount(opening_float, "opening float", allow_zero=True)
        return [
            (
                "shift.opened",
                {"shift_id": shift_id, "cashier": cashier, "opening_float": opening_float},
            )
        ]

    def move_cash(self, amount: int, reason: str, user: str, approved_by: str) -> list[Event]:
        shift = self.shift()
        if amount == 0 or abs(amount) > 10_000_000:
            raise Invalid(
                "bad_amount",
                "Cash in is a positive amount, cash out a negative one, and neither can be zero.",
            )
        if amount < 0 and -amount > shift.totals.expected_cash:
            raise Invalid(
                "not_enough_cash",
                "The drawer does not hold that much cash. Count it and try a smaller amount.",
            )
        _check_reason(reason)
        return [
            (
                "shift.cash_moved",
                {
                    "shift_id": shift.shift_id,
                    "amount": amount,
                    "reason": reason,
                    "user": user,
                    "approved_by": approved_by,
                },
            )
        ]

    def close_shift(self, counted: int, user: str) -> list[Event]:
        shift = self.shift()
        _check_amount(counted, "counted cash", allow_zero=True)
        self._no_card_ops()
        if self.state.sales:
            raise Conflict(
                "sales_open",
                f"{len(self.state.sales)} sale(s) are still open. "
                "Complete or void them before closing the shift.",
            )
        report = shift.totals.to_data()
        report["cash"]["counted"] = counted
        report["cash"]["over_short"] = counted - shift.totals.expected_cash
        return [
            (
                "shift.closed",
                {
                    "shift_id": shift.shift_id,
                    "user": user,
                    "counted": counted,
                    "opened_at": shift.opened_at,
                    "report": report,
                },
            )
        ]

    def no_sale(self, reason: str, user: str, approved_by: str) -> list[Event]:
        shift = self.shift()
        _check_reason(reason)
        return [
            (
                "drawer.opened",
                {
                    "shift_id": shift.shift_id,
                    "reason": "no_sale",
                    "note": reason,
                    "user": user,
                    "approved_by": approved_by,
                },
            )
        ]

    def drawer_kicked(
        self,
        reason: Literal["sale", "refund", "cash_movement"],
        opened: bool | None,
        *,
        user: str | None = None,
        sale_id: str | None = None,
        receipt_no: str | None = None,
    ) -> list[Event]:
        """The drawer was kicked by itself after a cash tender or cash movement.

        `opened` is what the drawer's sensor saw (False: it stayed shut, a jam; None: no
        sensor). Unlike a no-sale this needs no approval and is not counted in the report.
        """
        if reason not in ("sale", "refund", "cash_movement"):
            raise Invalid("bad_reason", f"Unknown drawer kick reason {reason!r}.")
        shift = self.state.shift
        data: dict[str, Any] = {
            "shift_id": shift.shift_id if shift else None,
            "reason": reason,
            "opened": opened,
            "user": user,
        }
        if sale_id is not None:
            data["sale_id"] = sale_id
        if receipt_no is not None:
            # Not "receipt_no": the journal finds receipts by that field.
            data["for_receipt"] = receipt_no
        return [("drawer.opened", data)]

    def capture_customer(
        self,
        customer_id: str,
        name: str,
        email: str | None,
        phone: str | None,
        marketing_consent: bool,
        answered_at: str,
        cashier: str,
        sale_id: str | None = None,
    ) -> list[Event]:
        """A new customer typed in at the counter; attached to `sale_id` in the same step.

        Marketing consent is what the customer said (no when not asked), with when and who
        recorded it: the proof a shop needs before sending them anything.
        """
        if not isinstance(marketing_consent, bool):
            raise Invalid("bad_consent", "Marketing consent is a yes or a no.")
        if sale_id is not None:
            self.sale(sale_id)
        found = check_new_customer(name, email, phone)
        events: list[Event] = [
            (
                "customer.captured",
                {
                    "customer_id": customer_id,
                    "name": found.name,
                    "email": found.email,
                    "phone": found.phone,
                    "marketing_consent": marketing_consent,
                    "marketing_consent_at": answered_at,
                    "captured_by": cashier,
                },
            )
        ]
        if sale_id is not None:
            events += self.set_customer(sale_id, {"id": customer_id, "name": found.name})
        return events

    def set_customer(self, sale_id: str, customer: Mapping[str, Any] | None) -> list[Event]:
        """Attach a customer (`{"id", "name"}`) to an open sale, or take it off with None."""
        self.sale(sale_id)
        return [
            (
                "sale.customer_set",
                {
                    "sale_id": sale_id,
                    "customer": None
                    if customer is None
                    else {"id": customer["id"], "name": customer["name"]},
                },
            )
        ]

    def open_sale(self, sale_id: str, cashier: str) -> list[Event]:
        shift = self.shift()
        return [
            ("sale.opened", {"sale_id": sale_id, "shift_id": shift.shift_id, "cashier": cashier})
        ]

    def add_line(
        self,
        sale_id: str,
        line_id: str,
        item: Item,
        quantity: str | Decimal | int,
        barcode: str | None = None,
    ) -> list[Event]:
        sale = self._editable(sale_id)
        if len(sale.lines) >= MAX_LINES:
            raise Conflict(
                "too_many_lines",
                f"A sale holds at most {MAX_LINES} lines. Complete this one and start another.",
            )
        self.policy.tax.tax_class(item.tax_class)
        qty = parse_quantity(quantity, item.unit)
        return [
            (
                "sale.line_added",
                {
                    "sale_id": sale_id,
                    "line_id": line_id,
                    "sku": item.sku,
                    "name": item.name,
                    "tax_class": item.tax_class,
                    "unit": item.unit,
                    "unit_price": item.price,
                    "quantity": str(qty),
                    "barcode": barcode,
                },
            )
        ]

    def change_line(
        self,
        sale_id: str,
        line_id: str,
        *,
        quantity: str | None = None,
        discount: Discount | Literal["keep"] | None = "keep",
        override: Override | Literal["keep"] | None = "keep",
        approved_by: str | None = None,
    ) -> list[Event]:
        """Change quantity, discount or price; `approved_by` names the manager who allowed it."""
        sale = self._editable(sale_id)
        line = self._line(sale, line_id)
        data: dict[str, Any] = {"sale_id": sale_id, "line_id": line_id}
        if quantity is not None:
            data["quantity"] = str(parse_quantity(quantity, line.unit))
        if discount != "keep":
            base = round_minor(
                Decimal(line.unit_price) * Decimal(data.get("quantity", line.quantity))
            )
            if discount is not None and discount.amount is not None and discount.amount > base:
                raise Invalid("bad_discount", "The discount is larger than the line's price.")
            data["discount"] = discount.to_data() if discount else None
            if approved_by is not None:
                data["approved_by"] = approved_by
        if override != "keep":
            if override is not None:
                _check_amount(override.unit_price, "new price", allow_zero=True)
                _check_reason(override.reason)
            data["override"] = (
                None
                if override is None
                else {
                    "unit_price": override.unit_price,
                    "reason": override.reason,
                    "approved_by": override.approved_by,
                }
            )
        if len(data) == 2:
            raise Invalid("nothing_to_change", "Say what to change: quantity, discount or price.")
        return [("sale.line_changed", data)]

    def remove_line(self, sale_id: str, line_id: str) -> list[Event]:
        sale = self._editable(sale_id)
        self._line(sale, line_id)
        return [("sale.line_removed", {"sale_id": sale_id, "line_id": line_id})]

    def set_discount(
        self, sale_id: str, discount: Discount | None, approved_by: str | None = None
    ) -> list[Event]:
        sale = self._editable(sale_id)
        amount = discount.amount if discount is not None else None
        lines = self.totals(sale).lines
        if amount is not None and amount > sum(pl.base - pl.line_discount for pl in lines):
            raise Invalid("bad_discount", "The discount is larger than the sale.")
        data: dict[str, Any] = {
            "sale_id": sale_id,
            "discount": discount.to_data() if discount else None,
        }
        if approved_by is not None:
            data["approved_by"] = approved_by
        return [("sale.discount_set", data)]

    def add_payment(
        self,
        sale_id: str,
        payment_id: str,
        method: str,
        *,
        amount: int | None = None,
        tendered: int | None = None,
        card: Mapping[str, Any] | None = None,
    ) -> list[Event]:
        """Take a tender; the sale completes in the same step when it is fully paid."""
        sale = self.sale(sale_id)
        self._no_card_op(sale_id, payment_id)
        if not sale.lines:
            raise Conflict("empty_sale", "Add an item before taking payment.")
        due = self.due(sale)
        if due <= 0:
            raise Conflict("already_paid", "This sale is already paid. Complete it.")
        pay: dict[str, Any]
        if method == "cash":
            given = tendered if tendered is not None else amount
            if given is None:
                raise Invalid("bad_amount", "Say how much cash the customer gave.")
            _check_amount(given, "cash tendered")
            cash_due = cash_round(due, self.policy.cash_increment)
            if given >= min(cash_due, due):
                # Settled; an odd amount between the exact and the coin-rounded due is
                # taken as given, and the difference is the sale's cash rounding.
                applied = cash_due if given >= cash_due else given
                pay = {
                    "amount": applied,
                    "tendered": given,
                    "change": given - applied,
                    "rounding": applied - due,
                }
            else:
                pay = {"amount": given, "tendered": given, "change": 0, "rounding": 0}
        elif method == "card":
            pay = {
                "amount": _card_amount(due, amount),
                "tendered": None,
                "change": 0,
                "rounding": 0,
                "card": _masked_card(card),
            }
        else:
            raise Invalid("bad_method", f"Unknown payment method {method!r}: use cash or card.")
        events: list[Event] = [
            (
                "sale.payment_added",
                {"sale_id": sale_id, "payment_id": payment_id, "method": method, **pay},
            )
        ]
        if pay["amount"] - pay["rounding"] >= due:
            events += self._complete(sale, extra=[_payment_from(events[0][1])])
        return events

    def complete(self, sale_id: str) -> list[Event]:
        sale = self.sale(sale_id)
        self._no_card_op(sale_id)
        if not sale.lines:
            raise Conflict("empty_sale", "Add an item before completing the sale.")
        due = self.due(sale)
        if due > 0 and cash_round(due, self.policy.cash_increment) != 0:
            raise Conflict("not_paid", f"{due} is still due. Take payment first.")
        return self._complete(sale, extra=[])

    def void(self, sale_id: str, reason: str, user: str, approved_by: str) -> list[Event]:
        sale = self.sale(sale_id)
        self._no_card_op(sale_id)
        _check_reason(reason)
        if any(p.method != "cash" for p in sale.payments):
            raise Conflict(
                "card_paid",
                "A card payment was taken on this sale. Complete it "
                "and refund it instead of voiding.",
            )
        return [
            (
                "sale.voided",
                {
                    "sale_id": sale_id,
                    "shift_id": sale.shift_id,
                    "reason": reason,
                    "user": user,
                    "approved_by": approved_by,
                    "total": self.totals(sale).total,
                    "lines": len(sale.lines),
                    "returned": [{"method": p.method, "amount": p.amount} for p in sale.payments],
                }
                | ({"reversed": list(sale.reversed)} if sale.reversed else {}),
            )
        ]

    def refund(
        self,
        original: Mapping[str, Any],
        refunds: Sequence[Mapping[str, Any]],
        refund_id: str,
        lines: Mapping[str, str | Decimal | int] | None,
        to: Literal["original", "cash"],
        reason: str,
        user: str,
        approved_by: str,
        *,
        card_refund: Mapping[str, Any] | None = None,
        op_id: str | None = None,
    ) -> list[Event]:
        """Refund some or all of a completed sale, never more than was sold or paid.

        `original` is the sale.completed data and `refunds` the sale.refunded data already
        journaled for it; `lines` maps line ids to quantities (None: everything left).
        `card_refund` is what the card terminal reported for the card part, when the card
        operation `op_id` paid it back.
        """
        shift = self.shift()
        self._no_card_op(original["sale_id"], op_id)
        _check_reason(reason)
        sold = {li["line_id"]: li for li in original["lines"]}
        done_qty: dict[str, Decimal] = {}
        done_amount: dict[str, int] = {}
        done_tax: dict[str, int] = {}
        for r in refunds:
            for li in r["lines"]:
                done_qty[li["line_id"]] = done_qty.get(li["line_id"], Decimal(0)) + Decimal(
                    li["quantity"]
                )
                done_amount[li["line_id"]] = done_amount.get(li["line_id"], 0) + li["amount"]
                done_tax[li["line_id"]] = done_tax.get(li["line_id"], 0) + li["tax"]
        wanted: dict[str, Decimal] = {}
        if lines is None:
            wanted = {
                lid: Decimal(li["quantity"]) - done_qty.get(lid, Decimal(0))
                for lid, li in sold.items()
            }
            wanted = {k: v for k, v in wanted.items() if v > 0}
            if not wanted:
                raise Conflict("fully_refunded", "Everything on this sale was already refunded.")
        else:
            for lid, qty in lines.items():
                if lid not in sold:
                    raise NotFound("unknown_line", f"The sale has no line {lid!r}.")
                q = parse_quantity(qty, sold[lid]["unit"])
                left = Decimal(sold[lid]["quantity"]) - done_qty.get(lid, Decimal(0))
                if q > left:
                    raise Invalid(
                        "refund_too_much",
                        f"Only {left} of {sold[lid]['name']} can still be refunded.",
                    )
                wanted[lid] = q
            if not wanted:
                raise Invalid("nothing_to_refund", "Choose at least one line to refund.")

        exclusive = self.policy.tax.mode == "exclusive"
        out_lines: list[dict[str, Any]] = []
        for lid, q in wanted.items():
            li = sold[lid]
            full_qty = Decimal(li["quantity"])
            share = (done_qty.get(lid, Decimal(0)) + q) / full_qty
            amount = round_minor(li["amount"] * share) - done_amount.get(lid, 0)
            tax = round_minor(li["tax"] * share) - done_tax.get(lid, 0)
            out_lines.append(
                {
                    "line_id": lid,
                    "sku": li["sku"],
                    "name": li["name"],
                    "unit": li["unit"],
                    "quantity": str(q),
                    "amount": amount,
                    "tax": tax,
                    "gross": amount + tax if exclusive else amount,
                    "tax_class": li["tax_class"],
                    "code": li["code"],
                    "rate": li["rate"],
                }
            )
        taxes: dict[str, dict[str, Any]] = {}
        for ol in out_lines:
            t = taxes.setdefault(
                ol["tax_class"],
                {
                    "tax_class": ol["tax_class"],
                    "code": ol["code"],
                    "rate": ol["rate"],
                    "net": 0,
                    "tax": 0,
                    "gross": 0,
                },
            )
            t["tax"] += ol["tax"]
            t["gross"] += ol["gross"]
            t["net"] += ol["gross"] - ol["tax"]
        total = sum(ol["gross"] for ol in out_lines)
        payments, rounding = self._refund_tenders(original, refunds, total, to)
        extra: dict[str, Any] = {}
        if op_id is not None:
            extra["payment_op"] = op_id
            for p in payments:
                if p["method"] == "card":
                    p["card_refund"] = _masked_card(card_refund)
        number = self.state.receipt_counter + 1
        return [
            (
                "sale.refunded",
                extra
                | {
                    "sale_id": original["sale_id"],
                    "refund_id": refund_id,
                    "receipt_no": self.policy.receipt_no(number),
                    "original_receipt_no": original["receipt_no"],
                    "shift_id": shift.shift_id,
                    "user": user,
                    "approved_by": approved_by,
                    "reason": reason,
                    "currency": self.policy.currency,
                    "lines": out_lines,
                    "taxes": sorted(taxes.values(), key=lambda t: t["code"]),
                    "total": total,
                    "rounding": rounding,
                    "payments": payments,
                },
            )
        ]

    # -- card-terminal operations (terminal/payments.py drives them; docs/payments.md) ---

    def card_op(self, payment_id: str) -> CardOp:
        try:
            return self.state.card_ops[payment_id]
        except KeyError:
            raise NotFound(
                "unknown_payment", "No unfinished card payment with that id is on this till."
            ) from None

    def card_payment_intent(
        self, sale_id: str, payment_id: str, amount: int | None, terminal: Mapping[str, Any]
    ) -> list[Event]:
        """Journal a card payment before the terminal is asked for it (06 01)."""
        sale = self.sale(sale_id)
        self._no_card_op(sale_id)
        if not sale.lines:
            raise Conflict("empty_sale", "Add an item before taking payment.")
        due = self.due(sale)
        if due <= 0:
            raise Conflict("already_paid", "This sale is already paid. Complete it.")
        value = _card_amount(due, amount)
        return [self._intent(payment_id, "payment", sale_id, value, terminal, {})]

    def card_refund_intent(
        self,
        original: Mapping[str, Any],
        refunds: Sequence[Mapping[str, Any]],
        refund_id: str,
        payment_id: str,
        lines: Mapping[str, str | Decimal | int] | None,
        reason: str,
        user: str,
        approved_by: str,
        terminal: Mapping[str, Any],
    ) -> list[Event]:
        """Journal a refund whose card part goes back through the terminal (06 31).

        A refund without a card part needs no terminal: its events are returned as they are.
        """
        events = self.refund(
            original, refunds, refund_id, lines, "original", reason, user, approved_by
        )
        cards = [p for p in events[0][1]["payments"] if p["method"] == "card"]
        if not cards:
            return events
        if len(cards) > 1:
            raise Conflict(
                "refund_several_cards",
                "This refund goes back to more than one card. Refund the lines of each card "
                "payment separately, or refund to cash.",
            )
        detail = {
            "refund": {
                "refund_id": refund_id,
                "lines": None if lines is None else {k: str(v) for k, v in lines.items()},
                "reason": reason,
                "user": user,
                "approved_by": approved_by,
                "original_payment_id": cards[0]["payment_id"],
            }
        }
        sale_id = original["sale_id"]
        return [self._intent(payment_id, "refund", sale_id, cards[0]["amount"], terminal, detail)]

    def card_reversal_intent(
        self, sale_id: str, payment_id: str, original_payment_id: str, terminal: Mapping[str, Any]
    ) -> list[Event]:
        """Journal the reversal (06 30) of a card payment on an open sale, before sending it."""
        sale = self.sale(sale_id)
        self._no_card_op(sale_id)
        pay = next(
            (p for p in sale.payments if p.payment_id == original_payment_id and p.card),
            None,
        )
        if pay is None or pay.card is None:
            raise NotFound("unknown_payment", "That sale has no card payment with this id.")
        receipt = pay.card.get("receipt")
        if receipt is None:
            raise Conflict(
                "no_card_receipt",
                "This card payment has no terminal receipt number, so the terminal cannot "
                "reverse it. Complete the sale and refund it instead.",
            )
        detail = {"reversal": {"original_payment_id": original_payment_id, "receipt": receipt}}
        return [self._intent(payment_id, "reversal", sale_id, pay.amount, terminal, detail)]

    def _intent(
        self,
        payment_id: str,
        kind: str,
        sale_id: str,
        amount: int,
        terminal: Mapping[str, Any],
        detail: Mapping[str, Any],
    ) -> Event:
        data = {
            "payment_id": payment_id,
            "kind": kind,
            "sale_id": sale_id,
            "amount": amount,
            "currency": self.policy.currency,
            "terminal": dict(terminal),
        }
        return ("payment.intent", data | dict(detail))

    def card_result(self, payment_id: str, result: Mapping[str, Any]) -> list[Event]:
        """The terminal's result, journaled before the terminal gets our acknowledgement."""
        op = self.card_op(payment_id)
        return [
            (
                "payment.result_received",
                {
                    "payment_id": payment_id,
                    "sale_id": op.sale_id,
                    "kind": op.kind,
                    "outcome": result["outcome"],
                    "result_code": result.get("result_code"),
                    "message": result.get("message", ""),
                    "amount": result.get("amount"),
                    "card": _masked_card(result.get("card")),
                },
            )
        ]

    def card_done(
        self,
        payment_id: str,
        card: Mapping[str, Any],
        original: Mapping[str, Any] | None = None,
        refunds: Sequence[Mapping[str, Any]] = (),
    ) -> list[Event]:
        """The terminal booked it: the sale is paid, the refund or the reversal recorded.

        A refund needs its original sale's `sale.completed` data and earlier refunds.
        """
        return self._card_booked(self.card_op(payment_id), card, original, refunds)

    def _card_booked(
        self,
        op: CardOp,
        card: Mapping[str, Any],
        original: Mapping[str, Any] | None,
        refunds: Sequence[Mapping[str, Any]],
    ) -> list[Event]:
        if op.kind == "payment":
            return self.add_payment(op.sale_id, op.payment_id, "card", amount=op.amount, card=card)
        if op.kind == "refund":
            if original is None:
                raise NotFound("unknown_sale", "The refunded sale is not on this till.")
            r = op.intent["refund"]
            return self.refund(
                original,
                refunds,
                r["refund_id"],
                r["lines"],
                "original",
                r["reason"],
                r["user"],
                r["approved_by"],
                card_refund=card,
                op_id=op.payment_id,
            )
        return [
            (
                "payment.reversed",
                {
                    "payment_id": op.payment_id,
                    "sale_id": op.sale_id,
                    "original_payment_id": op.intent["reversal"]["original_payment_id"],
                    "amount": op.amount,
                    "card": _masked_card(card),
                },
            )
        ]

    def card_failed(
        self, payment_id: str, outcome: str, result_code: int | None, message: str, reason: str
    ) -> list[Event]:
        """Not paid: declined, cancelled, timed out, or found not booked after a restart."""
        op = self.card_op(payment_id)
        return [
            (
                "payment.failed",
                {
                    "payment_id": payment_id,
                    "sale_id": op.sale_id,
                    "kind": op.kind,
                    "amount": op.amount,
                    "outcome": outcome,
                    "result_code": result_code,
                    "message": message,
                    "reason": reason,
                },
            )
        ]

    def card_needs_review(
        self, payment_id: str, reason: str, message: str, seen: Mapping[str, Any] | None
    ) -> list[Event]:
        """Unclear whether the terminal booked it: block the sale for a manager's decision."""
        op = self.card_op(payment_id)
        terminal = None
        if seen is not None:
            terminal = {"amount": seen.get("amount"), **(_masked_card(seen) or {})}
        return [
            (
                "payment.needs_review",
                {
                    "payment_id": payment_id,
                    "sale_id": op.sale_id,
                    "kind": op.kind,
                    "amount": op.amount,
                    "reason": reason,
                    "message": message,
                    "terminal": terminal,
                },
            )
        ]

    def resolve_card_op(
        self,
        payment_id: str,
        decision: str,
        approved_by: str,
        note: str,
        card: Mapping[str, Any] | None = None,
        original: Mapping[str, Any] | None = None,
        refunds: Sequence[Mapping[str, Any]] = (),
    ) -> list[Event]:
        """A manager's decision on a payment in review, from the terminal's own records."""
        op = self.card_op(payment_id)
        if op.state != "needs_review":
            raise Conflict(
                "not_in_review", "This card payment is not waiting for a manager's decision."
            )
        if len(note) > 200:
            raise Invalid("bad_reason", "Give a short note (at most 200 characters).")
        booked: list[Event] = []
        if decision == "paid":
            if not card or card.get("receipt") is None or card.get("trace") is None:
                raise Invalid(
                    "bad_resolution",
                    "To record it as paid, give the receipt and trace numbers printed on the "
                    "terminal's receipt.",
                )
            booked = self._card_booked(op, card, original, refunds)
        elif decision != "not_paid":
            raise Invalid("bad_resolution", "Decide 'paid' or 'not_paid'.")
        resolved = {
            "payment_id": payment_id,
            "sale_id": op.sale_id,
            "kind": op.kind,
            "amount": op.amount,
            "decision": decision,
            "approved_by": approved_by,
            "note": note,
        }
        return [("payment.resolved", resolved), *booked]

    def settle_batch(
        self,
        settlement_id: str,
        terminal: Mapping[str, Any],
        journal: Mapping[str, Any],
        approved_by: str,
    ) -> list[Event]:
        """Journal an end-of-day: the terminal's and the journal's totals and every difference.

        Each side is {`receipt_from`, `receipt_to`, `brands`: [{`name`, `count`, `total`}]}.
        """
        self._no_card_ops()
        differences = _batch_differences(terminal["brands"], journal["brands"])
        receipts_match = (terminal["receipt_from"], terminal["receipt_to"]) == (
            journal["receipt_from"],
            journal["receipt_to"],
        )
        return [
            (
                "payment.batch_settled",
                {
                    "settlement_id": settlement_id,
                    "approved_by": approved_by,
                    "currency": self.policy.currency,
                    "terminal": dict(terminal),
                    "journal": dict(journal),
                    "differences": differences,
                    "receipts_match": receipts_match,
                    "balanced": not differences and receipts_match,
                },
            )
        ]

    # -- fold --------------------------------------------------------------------------

    def apply(self, type_: str, data: Mapping[str, Any], seq: int, at: str) -> None:
        """Fold one journaled event into the state. Unknown types change nothing."""
        st = self.state
        st.seq = seq
        if type_ == "shift.opened":
            st.shift = Shift(
                data["shift_id"],
                data["cashier"],
                at,
                seq,
                ShiftTotals(opening_float=data["opening_float"]),
            )
        elif type_ == "shift.cash_moved" and st.shift:
            if data["amount"] > 0:
                st.shift.totals.cash_in += data["amount"]
            else:
                st.shift.totals.cash_out -= data["amount"]
        elif type_ == "shift.closed":
            st.shift = None
        elif type_ == "drawer.opened" and st.shift and data.get("reason") == "no_sale":
            st.shift.totals.no_sales += 1
        elif type_ == "sale.opened":
            st.sales[data["sale_id"]] = Sale(
                data["sale_id"], data["shift_id"], data["cashier"], at, seq
            )
        elif type_ == "sale.line_added":
            sale = st.sales[data["sale_id"]]
            sale.lines[data["line_id"]] = Line(
                data["line_id"],
                data["sku"],
                data["name"],
                data["tax_class"],
                data["unit"],
                data["unit_price"],
                Decimal(data["quantity"]),
                data.get("barcode"),
            )
        elif type_ == "sale.line_changed":
            line = st.sales[data["sale_id"]].lines[data["line_id"]]
            if "quantity" in data:
                line.quantity = Decimal(data["quantity"])
            if "discount" in data:
                line.discount = Discount.from_data(data["discount"])
            if "override" in data:
                ov = data["override"]
                line.override = (
                    None
                    if ov is None
                    else Override(ov["unit_price"], ov["reason"], ov["approved_by"])
                )
        elif type_ == "sale.line_removed":
            del st.sales[data["sale_id"]].lines[data["line_id"]]
        elif type_ == "sale.discount_set":
            st.sales[data["sale_id"]].discount = Discount.from_data(data["discount"])
        elif type_ == "sale.customer_set":
            st.sales[data["sale_id"]].customer = data["customer"]
        elif type_ == "sale.payment_added":
            st.sales[data["sale_id"]].payments.append(_payment_from(data))
            st.card_ops.pop(data["payment_id"], None)
        elif type_ == "sale.completed":
            st.sales.pop(data["sale_id"], None)
            st.receipt_counter = max(st.receipt_counter, receipt_number(data["receipt_no"]))
            if st.shift:
                st.shift.totals.add_sale(data)
        elif type_ == "sale.voided":
            st.sales.pop(data["sale_id"], None)
            if st.shift:
                st.shift.totals.voids_count += 1
                st.shift.totals.voids_total += data["total"]
        elif type_ == "sale.refunded":
            st.receipt_counter = max(st.receipt_counter, receipt_number(data["receipt_no"]))
            st.card_ops.pop(data.get("payment_op", ""), None)
            if st.shift:
                st.shift.totals.add_refund(data)
        elif type_ == "payment.intent":
            pid, kind = data["payment_id"], data["kind"]
            st.card_ops[pid] = CardOp(pid, kind, data["sale_id"], data["amount"], dict(data))
        elif type_ in ("payment.result_received", "payment.needs_review"):
            op = st.card_ops.get(data["payment_id"])
            if op is not None and type_ == "payment.result_received":
                op.state, op.result = "result_received", dict(data)
            elif op is not None:
                op.state, op.review = "needs_review", dict(data)
        elif type_ in ("payment.failed", "payment.resolved"):
            st.card_ops.pop(data["payment_id"], None)
        elif type_ == "payment.reversed":
            st.card_ops.pop(data["payment_id"], None)
            sale = st.sales[data["sale_id"]]
            gone = data["original_payment_id"]
            sale.payments = [p for p in sale.payments if p.payment_id != gone]
            sale.reversed.append(
                {"payment_id": gone, "amount": data["amount"], "card": data.get("card")}
            )

    # -- helpers -----------------------------------------------------------------------

    def _no_card_op(self, sale_id: str, mine: str | None = None) -> None:
        """Refuse to touch a sale while a card operation on it is unfinished."""
        for op in self.state.card_ops.values():
            if op.sale_id != sale_id or op.payment_id == mine:
                continue
            if op.state == "needs_review":
                raise Conflict(
                    "payment_needs_review",
                    "A card payment on this sale needs a manager's decision first: ask a "
                    "manager to check it under payments to review.",
                )
            raise Conflict(
                "payment_in_progress",
                "A card payment is running on this sale. Wait for its result, or abort it.",
            )

    def _no_card_ops(self) -> None:
        if self.state.card_ops:
            raise Conflict(
                "card_ops_pending",
                f"{len(self.state.card_ops)} card payment(s) are unfinished or wait for a "
                "manager's decision. Finish or resolve them first.",
            )

    def _editable(self, sale_id: str) -> Sale:
        sale = self.sale(sale_id)
        self._no_card_op(sale_id)
        if sale.payments:
            raise Conflict(
                "payment_taken",
                "Payment was already taken on this sale, so its "
                "items are locked. Finish the payment, or void the sale.",
            )
        return sale

    @staticmethod
    def _line(sale: Sale, line_id: str) -> Line:
        try:
            return sale.lines[line_id]
        except KeyError:
            raise NotFound("unknown_line", f"The sale has no line {line_id!r}.") from None

    def _complete(self, sale: Sale, extra: list[Payment]) -> list[Event]:
        totals = self.totals(sale)
        payments = sale.payments + extra
        paid = sum(p.amount for p in payments)
        rounding = sum(p.rounding for p in payments)
        if paid < totals.total + rounding:
            rounding = paid - totals.total  # settled by cash rounding alone
        lines = []
        for li in sale.lines.values():
            pl = totals.by_line[li.line_id]
            lines.append(
                {
                    "line_id": li.line_id,
                    "sku": li.sku,
                    "name": li.name,
                    "barcode": li.barcode,
                    "unit": li.unit,
                    "quantity": str(li.quantity),
                    "unit_price": li.unit_price,
                    "catalog_price": li.catalog_price,
                    "override": None
                    if li.override is None
                    else {"reason": li.override.reason, "approved_by": li.override.approved_by},
                    "base": pl.base,
                    "line_discount": pl.line_discount,
                    "discount": pl.line_discount + pl.cart_discount,
                    "amount": pl.amount,
                    "tax": pl.tax,
                    "tax_class": li.tax_class,
                    "code": self.policy.tax.classes[li.tax_class].code,
                    "rate": str(pl.rate),
                }
            )
        number = self.state.receipt_counter + 1
        return [
            (
                "sale.completed",
                {
                    "sale_id": sale.sale_id,
                    "shift_id": sale.shift_id,
                    "cashier": sale.cashier,
                    "receipt_no": self.policy.receipt_no(number),
                    "currency": self.policy.currency,
                    "tax_mode": self.policy.tax.mode,
                    "opened_at": sale.opened_at,
                    "lines": lines,
                    "subtotal": totals.subtotal,
                    "discount": totals.discount,
                    "taxes": [t.to_data() for t in totals.taxes],
                    "tax": totals.tax,
                    "total": totals.total,
                    "rounding": rounding,
                    "paid": paid,
                    "change": sum(p.change for p in payments),
                    "payments": [p.to_data() for p in payments],
                }
                | ({"customer": sale.customer} if sale.customer else {}),
            )
        ]

    def _refund_tenders(
        self, original: Mapping[str, Any], refunds: Sequence[Mapping[str, Any]], total: int, to: str
    ) -> tuple[list[dict[str, Any]], int]:
        """The tenders a refund is paid back to, and its cash rounding (paid out - total)."""
        if to == "cash":
            payout = cash_round(total, self.policy.cash_increment)
            return [{"method": "cash", "amount": payout}], payout - total
        if to != "original":
            raise Invalid("bad_refund_tender", "Refund to 'original' or to 'cash'.")
        taken: dict[str, int] = {}
        for r in refunds:
            for p in r["payments"]:
                if p.get("payment_id"):
                    taken[p["payment_id"]] = taken.get(p["payment_id"], 0) + p["amount"]
        out: list[dict[str, Any]] = []

        def pay_back(payments: list[Mapping[str, Any]], left: int) -> int:
            for p in payments:
                room = p["amount"] - taken.get(p["payment_id"], 0)
                part = min(room, left)
                if part > 0:
                    entry: dict[str, Any] = {
                        "method": p["method"],
                        "amount": part,
                        "payment_id": p["payment_id"],
                    }
                    if p.get("card"):
                        entry["card"] = p["card"]
                    out.append(entry)
                    left -= part
            return left

        # Cards first, newest first: a split of card + cash gives the card back before the
        # cash, whichever was taken first. The rest leaves the drawer in coins that exist, so
        # a sale paid 15.30 in cash for 15.32 gets 15.30 back, not 15.30 + 0.02.
        newest = list(reversed(original["payments"]))
        owed = pay_back([p for p in newest if p["method"] == "card"], total)
        payout = cash_round(owed, self.policy.cash_increment)
        left = pay_back([p for p in newest if p["method"] != "card"], payout)
        if left > 0:
            # Cash rounding on the original can leave a coin or so: pay it in cash.
            out.append({"method": "cash", "amount": left})
        return out, payout - owed


def receipt_number(receipt_no: str) -> int:
    return int(receipt_no.rsplit("-", 1)[1])


def _payment_from(data: Mapping[str, Any]) -> Payment:
    return Payment(
        data["payment_id"],
        data["method"],
        data["amount"],
        data.get("tendered"),
        data.get("change", 0),
        data.get("rounding", 0),
        data.get("card"),
    )


def _check_amount(value: int, what: str, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid("bad_amount", f"The {what} must be a whole number of cents.")
    if value < 0 or (value == 0 and not allow_zero):
        raise Invalid("bad_amount", f"The {what} must be more than zero.")
    if value > 10_000_000:
        raise Invalid("bad_amount", f"The {what} is implausibly large. Check the amount.")


def _card_amount(due: int, amount: int | None) -> int:
    value = due if amount is None else amount
    _check_amount(value, "card amount")
    if value > due:
        raise Invalid(
            "card_over_due",
            f"A card payment cannot be more than the {due} still due. Lower the amount.",
        )
    return value


def _batch_differences(
    terminal: Sequence[Mapping[str, Any]], journal: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per brand where the two sides disagree: both sides and terminal minus journal."""
    sides: dict[str, dict[str, dict[str, int]]] = {}
    for side, brands in (("terminal", terminal), ("journal", journal)):
        for b in brands:
            entry = sides.setdefault(b["name"], {})
            entry[side] = {"count": b["count"], "total": b["total"]}
    out = []
    zero = {"count": 0, "total": 0}
    for name, entry in sides.items():
        t, j = entry.get("terminal", zero), entry.get("journal", zero)
        if t != j:
            out.append(
                {
                    "brand": name,
                    "terminal": t,
                    "journal": j,
                    "count": t["count"] - j["count"],
                    "total": t["total"] - j["total"],
                }
            )
    return out


def _check_reason(reason: str) -> None:
    if not reason.strip() or len(reason) > 200:
        raise Invalid("bad_reason", "Give a short reason (1 to 200 characters).")


_CARD_FIELDS = (
    "brand",
    "card_type",
    "batch_brand",  # the terminal's end-of-day totals group the card counts in
    "masked_pan",
    "auth_code",
    "trace",
    "receipt",
    "terminal_id",
    "offline",
    "receipt_lines",
)
_DIGIT_RUN = re.compile(r"\d{13,19}")


def _scrub(text: str) -> str:
    """Mask any card-number-length digit run in free text to first 6 / last 4."""
    return _DIGIT_RUN.sub(lambda m: m[0][:6] + "*" * (len(m[0]) - 10) + m[0][-4:], text)


def _masked_card(card: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Keep only masked card data: at most the first 6 and last 4 digits of a PAN."""
    if not card:
        return None
    out = {k: card[k] for k in _CARD_FIELDS if card.get(k) is not None}
    if "receipt_lines" in out:
        out["receipt_lines"] = [_scrub(str(line)) for line in out["receipt_lines"]][:80]
    pan = str(out.get("masked_pan", ""))
    digits = [c for c in pan if c.isdigit()]
    if len(digits) > 10:
        raise Invalid(
            "pan_not_masked",
            "Only a masked card number may be recorded (at most the first 6 and last 4 digits).",
        )
    return out
