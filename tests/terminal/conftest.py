# purpose: shared builders for the sale-domain tests: tax setups, a policy, items and `run`.
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from terminal.sale import Item, Policy, TaxClass, TaxSetup, Till
from terminal.sale.money import RoundingMode
from terminal.sale.pricing import TaxLevel, TaxMode
from terminal.sale.till import Event

# German VAT: 19 % standard ("A") and 7 % reduced ("B"), plus a zero rate ("C").
VAT_CLASSES = {
    "standard": TaxClass("standard", Decimal("19"), "A"),
    "reduced": TaxClass("reduced", Decimal("7"), "B"),
    "zero": TaxClass("zero", Decimal("0"), "C"),
}
# New York City sales tax 8.875 % on general goods ("T"), a made-up 2.5 % on prepared
# food ("F"); groceries untaxed ("N").
SALES_TAX_CLASSES = {
    "general": TaxClass("general", Decimal("8.875"), "T"),
    "food": TaxClass("food", Decimal("2.5"), "F"),
    "grocery": TaxClass("grocery", Decimal("0"), "N"),
}

ITEMS = {
    "wine": Item("wine", "Riesling 0.75 l", 1190, "standard", barcodes=("4006381333931",)),
    "coffee": Item("coffee", "Coffee beans 500 g", 499, "standard"),
    "choc": Item("choc", "Chocolate bar", 199, "standard"),
    "bread": Item("bread", "Rye bread", 250, "reduced", barcodes=("96385074",)),
    "milk": Item("milk", "Milk 1 l", 119, "reduced"),
    "apples": Item("apples", "Apples", 299, "reduced", unit="kg"),
    "stamp": Item("stamp", "Postage stamp", 95, "zero"),
}
US_ITEMS = {
    "headphones": Item("headphones", "Headphones", 1999, "general"),
    "cable": Item("cable", "USB cable", 349, "general"),
    "eggs": Item("eggs", "Eggs, dozen", 500, "grocery"),
}

AT = "2026-11-27T10:00:00Z"


def tax_setup(
    mode: TaxMode = "inclusive", level: TaxLevel = "total", rounding: RoundingMode = "half_up"
) -> TaxSetup:
    classes = VAT_CLASSES if mode == "inclusive" else SALES_TAX_CLASSES
    return TaxSetup(mode, classes, rounding, level)


def _run(till: Till, events: Sequence[Event]) -> list[Event]:
    """Fold decided events into the till, as the journal would, with the next seq numbers."""
    for type_, data in events:
        seq = till.state.seq + 1
        till.apply(type_, data, seq, f"2026-11-27T10:{seq // 60 % 60:02d}:{seq % 60:02d}Z")
    return list(events)


def _new_till(
    *,
    mode: TaxMode = "inclusive",
    level: TaxLevel = "total",
    rounding: RoundingMode = "half_up",
    cash_increment: int = 1,
    opening_float: int | None = 10_000,
) -> Till:
    """A till for store s1, terminal t1; a shift is open unless `opening_float` is None."""
    policy = Policy(
        "s1",
        "t1",
        "EUR" if mode == "inclusive" else "USD",
        tax_setup(mode, level, rounding),
        cash_increment,
    )
    till = Till(policy)
    if opening_float is not None:
        _run(till, till.open_shift("shift-1", "ann", opening_float))
    return till


def _sell(
    till: Till,
    sale_id: str,
    lines: Mapping[str, tuple[Item, Any]],
    payments: Sequence[tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    """Open a sale, add `lines` (line id -> (item, quantity)), take payments; the
    sale.completed data, which the last payment must produce."""
    _run(till, till.open_sale(sale_id, "ann"))
    for line_id, (item, qty) in lines.items():
        _run(till, till.add_line(sale_id, line_id, item, qty))
    events: list[Event] = []
    for n, (method, kwargs) in enumerate(payments, 1):
        events = _run(till, till.add_payment(sale_id, f"{sale_id}-p{n}", method, **kwargs))
    assert events and events[-1][0] == "sale.completed"
    return events[-1][1]


@pytest.fixture(scope="session")
def run() -> Callable[[Till, Sequence[Event]], list[Event]]:
    return _run


@pytest.fixture(scope="session")
def new_till() -> Callable[..., Till]:
    return _new_till


@pytest.fixture(scope="session")
def sell() -> Callable[..., dict[str, Any]]:
    return _sell


@pytest.fixture(scope="session")
def sale_items() -> dict[str, Item]:
    return ITEMS


@pytest.fixture(scope="session")
def us_items() -> dict[str, Item]:
    return US_ITEMS
