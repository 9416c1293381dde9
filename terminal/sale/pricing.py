# Prices, discounts and tax for a cart; totals always equal the sum of their parts.
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from .errors import Invalid
from .money import RoundingMode, allocate, round_minor

TaxMode = Literal["inclusive", "exclusive"]
TaxLevel = Literal["total", "line"]


@dataclass(frozen=True, slots=True)
class TaxClass:
    name: str
    rate: Decimal  # percent, e.g. Decimal("19")
    code: str  # short letter printed beside a line, e.g. "A"


@dataclass(frozen=True, slots=True)
class TaxSetup:
    """How a store prices: VAT-inclusive or sales-tax-exclusive, and how tax is rounded.

    `level="total"` rounds the tax once per rate over the whole receipt (EU VAT practice);
    `level="line"` rounds each line's tax and adds them up (common for US sales tax).
    """

    mode: TaxMode
    classes: Mapping[str, TaxClass]
    rounding: RoundingMode = "half_up"
    level: TaxLevel = "total"

    def tax_class(self, name: str) -> TaxClass:
        try:
            return self.classes[name]
        except KeyError:
            raise Invalid(
                "unknown_tax_class",
                f"Tax class {name!r} is not set up for this "
                "store. Ask a manager to fix the item's tax class.",
            ) from None

    def tax_of(self, amount: int, rate: Decimal) -> int:
        """Tax contained in (inclusive) or added to (exclusive) an amount."""
        if self.mode == "inclusive":
            return round_minor(Decimal(amount) * rate / (100 + rate), self.rounding)
        return round_minor(Decimal(amount) * rate / 100, self.rounding)


@dataclass(frozen=True, slots=True)
class Discount:
    """Money off: a percentage or a fixed amount in minor units."""

    percent: Decimal | None = None
    amount: int | None = None

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.amount is None):
            raise Invalid("bad_discount", "Give a discount either as a percent or as an amount.")
        if self.percent is not None and not Decimal(0) < self.percent <= 100:
            raise Invalid("bad_discount", "A percent discount must be above 0 and at most 100.")
        if self.amount is not None and self.amount <= 0:
            raise Invalid("bad_discount", "A discount amount must be above zero.")

    def off(self, base: int) -> int:
        if self.percent is not None:
            return round_minor(Decimal(base) * self.percent / 100)
        assert self.amount is not None
        return self.amount

    def to_data(self) -> dict[str, Any]:
        if self.percent is not None:
            return {"percent": str(self.percent)}
        return {"amount": self.amount}

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Discount | None:
        if not data:
            return None
        if "percent" in data:
            return cls(percent=Decimal(str(data["percent"])))
        return cls(amount=int(data["amount"]))


@dataclass(frozen=True, slots=True)
class PricedLine:
    line_id: str
    base: int  # unit price × quantity, rounded
    line_discount: int
    cart_discount: int
    amount: int  # after all discounts: gross in inclusive stores, net in exclusive ones
    tax: int
    tax_class: str
    rate: Decimal


@dataclass(frozen=True, slots=True)
class TaxTotal:
    tax_class: str
    code: str
    rate: Decimal
    net: int
    tax: int
    gross: int

    def to_data(self) -> dict[str, Any]:
        return {
            "tax_class": self.tax_class,
            "code": self.code,
            "rate": str(self.rate),
            "net": self.net,
            "tax": self.tax,
            "gross": self.gross,
        }


@dataclass(frozen=True, slots=True)
class Totals:
    lines: tuple[PricedLine, ...]
    subtotal: int  # sum of bases
    discount: int  # all discounts
    taxes: tuple[TaxTotal, ...]
    tax: int
    total: int  # what the customer owes
    by_line: Mapping[str, PricedLine] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LineInput:
    line_id: str
    unit_price: int
    quantity: Decimal
    tax_class: str
    discount: Discount | None = None


def line_base(unit_price: int, quantity: Decimal) -> int:
    return round_minor(Decimal(unit_price) * quantity)


def price(lines: Sequence[LineInput], cart_discount: Discount | None, tax: TaxSetup) -> Totals:
    """Price a cart: line discounts, then the cart discount spread over lines, then tax."""
    bases = [line_base(li.unit_price, li.quantity) for li in lines]
    line_off = [min(li.discount.off(b), b) if li.discount else 0 for li, b in zip(lines, bases)]
    after = [b - o for b, o in zip(bases, line_off)]
    cart_off_total = min(cart_discount.off(sum(after)), sum(after)) if cart_discount else 0
    cart_off = allocate(cart_off_total, after)
    amounts = [a - c for a, c in zip(after, cart_off)]

    classes = [tax.tax_class(li.tax_class) for li in lines]
    line_tax = [0] * len(lines)
    groups: dict[str, list[int]] = {}
    for i, li in enumerate(lines):
        groups.setdefault(li.tax_class, []).append(i)
    tax_totals: list[TaxTotal] = []
    for name in sorted(groups, key=lambda n: (tax.classes[n].code, n)):
        idx = groups[name]
        tc = classes[idx[0]]
        if tax.level == "line":
            for i in idx:
                line_tax[i] = tax.tax_of(amounts[i], tc.rate)
        else:
            group_tax = tax.tax_of(sum(amounts[i] for i in idx), tc.rate)
            for i, part in zip(idx, allocate(group_tax, [amounts[i] for i in idx])):
                line_tax[i] = part
        amount = sum(amounts[i] for i in idx)
        t = sum(line_tax[i] for i in idx)
        net, gross = (amount - t, amount) if tax.mode == "inclusive" else (amount, amount + t)
        tax_totals.append(TaxTotal(name, tc.code, tc.rate, net, t, gross))

    priced = tuple(
        PricedLine(li.line_id, b, lo, co, a, t, li.tax_class, tc.rate)
        for li, b, lo, co, a, t, tc in zip(
            lines, bases, line_off, cart_off, amounts, line_tax, classes
        )
    )
    total = sum(tt.gross for tt in tax_totals)
    return Totals(
        lines=priced,
        subtotal=sum(bases),
        discount=sum(line_off) + cart_off_total,
        taxes=tuple(tax_totals),
        tax=sum(tt.tax for tt in tax_totals),
        total=total,
        by_line={p.line_id: p for p in priced},
    )
