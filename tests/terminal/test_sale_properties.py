# purpose: properties of the sale domain: allocation, pricing invariants, refunds, replay.
from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.sale import (
    Conflict,
    Discount,
    Item,
    Override,
    SaleError,
    TaxClass,
    TaxSetup,
    Till,
    allocate,
    price,
)
from terminal.sale.pricing import LineInput

Run = Callable[[Till, Any], list[Any]]
NewTill = Callable[..., Till]

VAT = {
    "standard": TaxClass("standard", Decimal("19"), "A"),
    "reduced": TaxClass("reduced", Decimal("7"), "B"),
    "zero": TaxClass("zero", Decimal("0"), "C"),
}
SALES_TAX = {
    "general": TaxClass("general", Decimal("8.875"), "T"),
    "food": TaxClass("food", Decimal("2.5"), "F"),
    "grocery": TaxClass("grocery", Decimal("0"), "N"),
}

percents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2)
discounts = st.one_of(
    st.none(),
    percents.map(lambda p: Discount(percent=p)),
    st.integers(1, 200_000).map(lambda a: Discount(amount=a)),
)


# -- allocation ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(-(10**9), 10**9),
    weights=st.lists(st.integers(0, 10**7), min_size=1, max_size=30),
)
def test_allocate_parts_sum_and_stay_near_their_share(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    if sum(weights) == 0:  # nothing to weigh by: an even split
        weights = [1] * len(weights)
    base = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total * weight, base)
        assert abs(part - exact) < 1
        if weight == 0:
            assert part == 0


# -- pricing ---------------------------------------------------------------------------


@st.composite
def carts(draw: st.DrawFn) -> tuple[list[LineInput], Discount | None, TaxSetup]:
    mode = draw(st.sampled_from(["inclusive", "exclusive"]))
    classes = VAT if mode == "inclusive" else SALES_TAX
    setup = TaxSetup(
        mode,
        classes,
        draw(st.sampled_from(["half_up", "half_even", "down"])),
        draw(st.sampled_from(["total", "line"])),
    )
    lines = []
    for i in range(draw(st.integers(1, 20))):
        if draw(st.booleans()):
            qty = Decimal(draw(st.integers(1, 999)))
        else:
            qty = Decimal(draw(st.integers(1, 99_000))).scaleb(-3)  # whole grams up to 99 kg
        lines.append(
            LineInput(
                f"l{i}",
                draw(st.integers(0, 100_000)),
                qty,
                draw(st.sampled_from(sorted(classes))),
                draw(discounts),
            )
        )
    return lines, draw(discounts), setup


@settings(max_examples=300, deadline=None)
@given(cart=carts())
def test_price_totals_equal_the_sum_of_their_parts(
    cart: tuple[list[LineInput], Discount | None, TaxSetup],
) -> None:
    lines, cart_discount, setup = cart
    t = price(lines, cart_discount, setup)
    assert len(t.lines) == len(lines)
    for li, p in zip(lines, t.lines, strict=True):
        assert abs(p.base - li.unit_price * li.quantity) <= Decimal("0.5")
        assert 0 <= p.line_discount <= p.base
        assert p.cart_discount >= 0
        assert p.amount == p.base - p.line_discount - p.cart_discount >= 0
        assert p.tax >= 0
        assert t.by_line[li.line_id] is p
    assert t.subtotal == sum(p.base for p in t.lines)
    assert t.subtotal - t.discount == sum(p.amount for p in t.lines)
    assert t.discount == sum(p.line_discount + p.cart_discount for p in t.lines)
    assert t.total == sum(tt.gross for tt in t.taxes)
    assert t.tax == sum(p.tax for p in t.lines) == sum(tt.tax for tt in t.taxes)
    amounts = sum(p.amount for p in t.lines)
    assert t.total == (amounts if setup.mode == "inclusive" else amounts + t.tax)

    assert len({tt.tax_class for tt in t.taxes}) == len(t.taxes)
    for tt in t.taxes:
        group = [p for p in t.lines if p.tax_class == tt.tax_class]
        amount = sum(p.amount for p in group)
        assert tt.tax == sum(p.tax for p in group)
        assert tt.net + tt.tax == tt.gross
        assert (tt.gross if setup.mode == "inclusive" else tt.net) == amount
        # Rounded once per rate: within a cent of the exact tax; per line: a cent a line.
        rate = Fraction(tt.rate)
        exact = amount * rate / (100 + rate) if setup.mode == "inclusive" else amount * rate / 100
        slack = 1 if setup.level == "total" else len(group)
        assert abs(tt.tax - exact) <= slack


# -- refunds ---------------------------------------------------------------------------

CATALOG = [
    Item("wine", "Wine", 1190, "standard"),
    Item("choc", "Chocolate", 199, "standard"),
    Item("odd", "Odd", 1532, "standard"),
    Item("bread", "Bread", 250, "reduced"),
    Item("milk", "Milk", 119, "reduced"),
    Item("apples", "Apples", 299, "reduced", unit="kg"),
    Item("cheese", "Cheese", 2390, "reduced", unit="kg"),
    Item("stamp", "Stamp", 95, "zero"),
]
US_CATALOG = [
    Item("phones", "Headphones", 1999, "general"),
    Item("cable", "Cable", 349, "general"),
    Item("soda", "Soda", 129, "food"),
    Item("eggs", "Eggs", 500, "grocery"),
    Item("nuts", "Nuts", 1799, "food", unit="kg"),
]


def draw_sale(data: st.DataObject, till: Till, run: Run) -> dict[str, Any]:
    """A completed sale of random lines, discounts and tenders."""
    catalog = CATALOG if till.policy.tax.mode == "inclusive" else US_CATALOG
    run(till, till.open_sale("s", "ann"))
    for i in range(data.draw(st.integers(1, 6), label="lines")):
        item = data.draw(st.sampled_from(catalog))
        qty = (
            str(data.draw(st.integers(1, 6)))
            if item.unit == "each"
            else str(Decimal(data.draw(st.integers(1, 3000))).scaleb(-3))
        )
        run(till, till.add_line("s", f"l{i}", item, qty))
        if data.draw(st.booleans()):
            run(
                till, till.change_line("s", f"l{i}", discount=Discount(percent=data.draw(percents)))
            )
    if data.draw(st.booleans()):
        run(till, till.set_discount("s", Discount(percent=data.draw(percents))))
    sale = till.state.sales["s"]
    events: list[Any] = []
    due = till.due(sale)
    if due <= 0:  # everything discounted away
        return run(till, till.complete("s"))[-1][1]
    tender = data.draw(st.sampled_from(["card", "cash", "split"]))
    if tender == "split" and due > 1:
        part = data.draw(st.integers(1, due - 1))
        first, second = data.draw(st.permutations(["card", "cash"]))
        kw = {"amount": part} if first == "card" else {"tendered": part}
        events = run(till, till.add_payment("s", "p1", first, **kw))
        if events[-1][0] == "sale.completed":  # cash within the coin-rounding window settles
            return events[-1][1]
        tender = second
    if tender == "cash":
        events = run(till, till.add_payment("s", "p2", "cash", tendered=due + 500))
    else:
        events = run(till, till.add_payment("s", "p2", "card"))
    if events[-1][0] != "sale.completed":  # a few cents below the smallest coin remain
        events = run(till, till.complete("s"))
    assert events[-1][0] == "sale.completed"
    return events[-1][1]


@settings(max_examples=120, deadline=None)
@given(
    data=st.data(),
    mode=st.sampled_from(["inclusive", "exclusive"]),
    cash_increment=st.sampled_from([1, 1, 5]),
)
def test_partial_refunds_never_exceed_the_sale(
    data: st.DataObject, mode: str, cash_increment: int, new_till: NewTill, run: Run
) -> None:
    till = new_till(mode=mode, cash_increment=cash_increment)
    sale = draw_sale(data, till, run)
    sold = {li["line_id"]: li for li in sale["lines"]}
    left = {lid: Decimal(li["quantity"]) for lid, li in sold.items()}
    done: list[dict[str, Any]] = []

    def check(r: dict[str, Any]) -> None:
        assert r["total"] == sum(li["gross"] for li in r["lines"])
        assert sum(p["amount"] for p in r["payments"]) == r["total"] + r["rounding"]
        assert abs(r["rounding"]) <= cash_increment // 2
        cash = sum(p["amount"] for p in r["payments"] if p["method"] == "cash")
        assert cash % cash_increment == 0
        for li in r["lines"]:
            assert li["amount"] >= 0 and li["tax"] >= 0
        for lid, li in sold.items():
            back = [x for rr in done for x in rr["lines"] if x["line_id"] == lid]
            assert sum(x["amount"] for x in back) <= li["amount"]
            assert sum(x["tax"] for x in back) <= li["tax"]
        for p in sale["payments"]:
            back_to = sum(
                x["amount"]
                for rr in done
                for x in rr["payments"]
                if x.get("payment_id") == p["payment_id"]
            )
            assert back_to <= p["amount"]

    for n in range(data.draw(st.integers(0, 6), label="partial refunds")):
        open_lines = sorted(lid for lid, q in left.items() if q > 0)
        if not open_lines:
            break
        lid = data.draw(st.sampled_from(open_lines))
        step = Decimal(1) if sold[lid]["unit"] == "each" else Decimal("0.001")
        units = data.draw(st.integers(1, int(left[lid] / step)))
        qty = units * step
        to = data.draw(st.sampled_from(["original", "original", "cash"]))
        (ev,) = run(
            till, till.refund(sale, done, f"r{n}", {lid: str(qty)}, to, "back", "ann", "mgr")
        )
        done.append(ev[1])
        left[lid] -= qty
        check(ev[1])
        assert [x["quantity"] for x in ev[1]["lines"]] == [str(qty)]

    if any(q > 0 for q in left.values()):
        (ev,) = run(till, till.refund(sale, done, "last", None, "original", "back", "ann", "mgr"))
        done.append(ev[1])
        check(ev[1])
    with pytest.raises(Conflict):
        till.refund(sale, done, "again", None, "original", "back", "ann", "mgr")

    # Everything back: amounts and taxes add up to the sale exactly, rate by rate.
    assert sum(r["total"] for r in done) == sale["total"]
    for key in ("net", "tax", "gross"):
        for tx in sale["taxes"]:
            back = sum(
                t[key] for r in done for t in r["taxes"] if t["tax_class"] == tx["tax_class"]
            )
            assert back == tx[key], (key, tx)
    for lid, li in sold.items():
        back = [x for r in done for x in r["lines"] if x["line_id"] == lid]
        assert sum(x["amount"] for x in back) == li["amount"]
        assert sum(x["tax"] for x in back) == li["tax"]
        assert sum(Decimal(x["quantity"]) for x in back) == Decimal(li["quantity"])


@settings(max_examples=80, deadline=None)
@given(data=st.data(), mode=st.sampled_from(["inclusive", "exclusive"]))
def test_full_refund_in_any_order_sums_to_the_sale(
    data: st.DataObject, mode: str, new_till: NewTill, run: Run
) -> None:
    till = new_till(mode=mode)
    sale = draw_sale(data, till, run)
    # Every unit of every line (grams for weighed lines, in chunks), in a random order.
    pieces: list[tuple[str, Decimal]] = []
    for li in sale["lines"]:
        q = Decimal(li["quantity"])
        if li["unit"] == "each":
            pieces += [(li["line_id"], Decimal(1))] * int(q)
        else:
            cut = data.draw(st.integers(1, int(q * 1000)))
            first = Decimal(cut).scaleb(-3)
            pieces += [(li["line_id"], first)] + ([(li["line_id"], q - first)] if q > first else [])
    order = data.draw(st.permutations(pieces))
    done: list[dict[str, Any]] = []
    for n, (lid, qty) in enumerate(order):
        (ev,) = run(
            till,
            till.refund(sale, done, f"r{n}", {lid: str(qty)}, "original", "back", "ann", "mgr"),
        )
        done.append(ev[1])
    assert sum(r["total"] for r in done) == sale["total"]
    assert sum(p["amount"] for r in done for p in r["payments"]) == sale["total"]
    assert sum(t["tax"] for r in done for t in r["taxes"]) == sale["tax"]


# -- the fold is deterministic ---------------------------------------------------------

# Weighted so most scripts get sales completed, paid in parts, refunded and voided.
ACTIONS = (
    ["add_line"] * 5
    + ["pay"] * 4
    + ["refund"] * 3
    + ["open_sale"] * 2
    + [
        "change_line",
        "remove_line",
        "set_discount",
        "complete",
        "void",
        "no_sale",
        "move_cash",
        "close_open",
    ]
)


def decide(
    till: Till,
    data: st.DataObject,
    action: str,
    n: int,
    completed: dict[str, dict[str, Any]],
    refunds: dict[str, list[dict[str, Any]]],
) -> list[Any]:
    # Newest first, as hypothesis favours the first choice; sales with lines for payments.
    open_ids = list(reversed(till.state.sales))
    filled = [i for i in open_ids if till.state.sales[i].lines]
    pick_sale = st.sampled_from((filled if action in ("pay", "complete") else open_ids) or ["nope"])
    if action == "open_sale":
        return till.open_sale(f"s{n}", "ann")
    if action == "add_line":
        item = data.draw(st.sampled_from(CATALOG))
        qty = data.draw(
            st.sampled_from(["1", "2", "7"] if item.unit == "each" else ["0.5", "1.25", "0.003"])
        )
        return till.add_line(data.draw(pick_sale), f"l{n}", item, qty)
    if action in ("change_line", "remove_line"):
        sale_id = data.draw(pick_sale)
        lines = sorted(till.state.sales[sale_id].lines) if sale_id in till.state.sales else []
        line_id = data.draw(st.sampled_from(lines or ["nope"]))
        if action == "remove_line":
            return till.remove_line(sale_id, line_id)
        what = data.draw(st.sampled_from(["quantity", "discount", "override"]))
        if what == "quantity":
            return till.change_line(
                sale_id, line_id, quantity=data.draw(st.sampled_from(["1", "3", "0.75"]))
            )
        if what == "discount":
            return till.change_line(sale_id, line_id, discount=data.draw(discounts))
        return till.change_line(
            sale_id,
            line_id,
            override=data.draw(
                st.one_of(
                    st.none(), st.integers(0, 5000).map(lambda p: Override(p, "manager", "mgr"))
                )
            ),
        )
    if action == "set_discount":
        return till.set_discount(data.draw(pick_sale), data.draw(discounts))
    if action == "pay":
        method = data.draw(st.sampled_from(["cash", "card"]))
        amount = data.draw(st.one_of(st.none(), st.none(), st.integers(1, 3000)))
        if method == "cash":
            return till.add_payment(
                data.draw(pick_sale), f"p{n}", "cash", tendered=amount or 100_000
            )
        return till.add_payment(data.draw(pick_sale), f"p{n}", "card", amount=amount)
    if action == "complete":
        return till.complete(data.draw(pick_sale))
    if action == "void":
        return till.void(data.draw(pick_sale), "changed mind", "ann", "mgr")
    if action == "refund":
        sale_id = data.draw(st.sampled_from(sorted(completed) or ["nope"]))
        if sale_id not in completed:
            return []
        original = completed[sale_id]
        lines = data.draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {
                        data.draw(
                            st.sampled_from([li["line_id"] for li in original["lines"]])
                        ): st.sampled_from(["1", "0.25"])
                    }
                ),
            )
        )
        return till.refund(
            original,
            refunds.get(sale_id, []),
            f"r{n}",
            lines,
            data.draw(st.sampled_from(["original", "cash"])),
            "back",
            "ann",
            "mgr",
        )
    if action == "no_sale":
        return till.no_sale("change", "ann", "mgr")
    if action == "move_cash":
        return till.move_cash(
            data.draw(st.sampled_from([500, -300, -50_000])), "float", "ann", "mgr"
        )
    assert action == "close_open"
    if till.state.shift is None:
        return till.open_shift(f"sh{n}", "ann", 10_000)
    return till.close_shift(data.draw(st.integers(0, 20_000)), "ann")


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    mode=st.sampled_from(["inclusive", "exclusive"]),
    cash_increment=st.sampled_from([1, 5]),
)
def test_replaying_the_journal_rebuilds_the_same_state(
    data: st.DataObject, mode: str, cash_increment: int, new_till: NewTill
) -> None:
    till = new_till(mode=mode, cash_increment=cash_increment)
    journal: list[tuple[str, dict[str, Any], int, str]] = []
    completed: dict[str, dict[str, Any]] = {}
    refunds: dict[str, list[dict[str, Any]]] = {}

    def record(events: list[Any]) -> None:
        for type_, payload in events:
            seq = till.state.seq + 1
            at = f"2026-11-27T11:{seq // 60 % 60:02d}:{seq % 60:02d}Z"
            till.apply(type_, payload, seq, at)
            journal.append((type_, payload, seq, at))
            if type_ == "sale.completed":
                completed[payload["sale_id"]] = payload
            elif type_ == "sale.refunded":
                refunds.setdefault(payload["sale_id"], []).append(payload)

    record([("shift.opened", {"shift_id": "sh0", "cashier": "ann", "opening_float": 10_000})])
    for n in range(data.draw(st.integers(1, 60), label="steps")):
        action = data.draw(st.sampled_from(ACTIONS))
        before = copy.deepcopy(till.state)
        try:
            events = decide(till, data, action, n, completed, refunds)
        except SaleError:
            events = []
        assert till.state == before, f"{action} changed the state while deciding"
        record(events)

    fresh = Till(till.policy)
    for type_, payload, seq, at in journal:
        fresh.apply(type_, payload, seq, at)
    assert fresh.state == till.state

    # As the journal stores it: JSON text, so nothing but JSON types may travel in events.
    from_json = Till(till.policy)
    for type_, payload, seq, at in journal:
        from_json.apply(type_, json.loads(json.dumps(payload)), seq, at)
    assert from_json.state == till.state
    # Unknown event types are kept in the journal and change nothing.
    from_json.apply("customer.captured", {"id": "c1"}, len(journal) + 1, "2026-11-27T12:00:00Z")
    from_json.state.seq = till.state.seq
    assert from_json.state == till.state
