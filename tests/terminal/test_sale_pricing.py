# purpose: pricing by hand-worked examples: VAT and sales tax, rounding, discounts, weights.
from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest

from terminal.sale import (
    Discount,
    Invalid,
    Override,
    TaxClass,
    TaxSetup,
    Till,
    Totals,
    allocate,
    cash_round,
    format_money,
    price,
    round_minor,
)
from terminal.sale.pricing import LineInput

A19 = TaxClass("standard", Decimal("19"), "A")
B7 = TaxClass("reduced", Decimal("7"), "B")
VAT = {"standard": A19, "reduced": B7}
T8875 = TaxClass("general", Decimal("8.875"), "T")
N0 = TaxClass("grocery", Decimal("0"), "N")
SALES_TAX = {"general": T8875, "grocery": N0}


def line(
    line_id: str, unit_price: int, qty: str, tax_class: str, discount: Discount | None = None
) -> LineInput:
    return LineInput(line_id, unit_price, Decimal(qty), tax_class, discount)


def assert_parts_add_up(t: Totals, mode: str) -> None:
    """Totals equal the sum of their parts; a check of structure, not of the numbers."""
    assert t.subtotal == sum(p.base for p in t.lines)
    assert t.subtotal - t.discount == sum(p.amount for p in t.lines)
    assert t.discount == sum(p.line_discount + p.cart_discount for p in t.lines)
    assert t.tax == sum(p.tax for p in t.lines) == sum(tt.tax for tt in t.taxes)
    assert t.total == sum(tt.gross for tt in t.taxes)
    for tt in t.taxes:
        assert tt.net + tt.tax == tt.gross
    if mode == "inclusive":
        assert t.total == sum(p.amount for p in t.lines)
    else:
        assert t.total == sum(p.amount for p in t.lines) + t.tax


# -- VAT-inclusive, two rates on one receipt ------------------------------------------

MIXED = [
    line("coffee", 499, "1", "standard"),
    line("milk", 119, "3", "reduced"),  # 3 × 1.19 = 3.57
    line("choc", 199, "2", "standard"),  # 2 × 1.99 = 3.98
]


def test_vat_two_rates_rounded_once_per_rate() -> None:
    t = price(MIXED, None, TaxSetup("inclusive", VAT, "half_up", "total"))
    # 19 %: gross 4.99 + 3.98 = 8.97; tax 897·19/119 = 143.22 -> 1.43; net 7.54.
    # 7 %: gross 3.57; tax 357·7/107 = 23.36 -> 0.23; net 3.34.
    assert [(x.code, x.net, x.tax, x.gross) for x in t.taxes] == [
        ("A", 754, 143, 897),
        ("B", 334, 23, 357),
    ]
    assert (t.subtotal, t.discount, t.tax, t.total) == (1254, 0, 166, 1254)
    # The 1.43 is spread over the 19 % lines by amount: 143·499/897 = 79.55 and
    # 143·398/897 = 63.45 floor to 79 + 63 = 142; the spare cent goes to the larger
    # remainder (coffee).
    assert {p.line_id: p.tax for p in t.lines} == {"coffee": 80, "milk": 23, "choc": 63}
    assert_parts_add_up(t, "inclusive")


def test_vat_rounded_per_line_differs_by_a_cent() -> None:
    t = price(MIXED, None, TaxSetup("inclusive", VAT, "half_up", "line"))
    # coffee 499·19/119 = 79.67 -> 80; choc 398·19/119 = 63.55 -> 64; so 19 % tax is
    # 1.44 here against 1.43 when rounded once over the total.
    # milk 357·7/107 = 23.36 -> 23.
    assert {p.line_id: p.tax for p in t.lines} == {"coffee": 80, "milk": 23, "choc": 64}
    assert [(x.code, x.net, x.tax, x.gross) for x in t.taxes] == [
        ("A", 753, 144, 897),
        ("B", 334, 23, 357),
    ]
    # Inclusive prices: what the customer pays does not move, only the tax inside it.
    assert (t.tax, t.total) == (167, 1254)
    assert_parts_add_up(t, "inclusive")


def test_tax_totals_sorted_by_code_whatever_the_line_order() -> None:
    t = price(list(reversed(MIXED)), None, TaxSetup("inclusive", VAT))
    assert [x.code for x in t.taxes] == ["A", "B"]
    assert [p.line_id for p in t.lines] == ["choc", "milk", "coffee"]


def test_unknown_tax_class_in_pricing_is_refused() -> None:
    with pytest.raises(Invalid) as err:
        price([line("x", 100, "1", "luxury")], None, TaxSetup("inclusive", VAT))
    assert err.value.code == "unknown_tax_class"


def test_empty_cart_prices_to_zero() -> None:
    t = price([], None, TaxSetup("inclusive", VAT))
    assert (t.subtotal, t.discount, t.tax, t.total, t.taxes) == (0, 0, 0, 0, ())


# -- sales tax added on top ------------------------------------------------------------

US_CART = [
    line("headphones", 1999, "1", "general"),
    line("cable", 349, "2", "general"),  # 6.98
    line("eggs", 500, "1", "grocery"),
]


@pytest.mark.parametrize("level", ["total", "line"])
def test_sales_tax_is_added_on_top(level: Any) -> None:
    t = price(US_CART, None, TaxSetup("exclusive", SALES_TAX, "half_up", level))
    # total level: (19.99 + 6.98) · 8.875 % = 2697 · 0.08875 = 239.36 -> 2.39
    # line level: 1999 · 0.08875 = 177.41 -> 177; 698 · 0.08875 = 61.95 -> 62; = 2.39 too.
    # Groceries: 0 %.
    assert [(x.code, x.net, x.tax, x.gross) for x in t.taxes] == [
        ("N", 500, 0, 500),
        ("T", 2697, 239, 2936),
    ]
    assert (t.subtotal, t.tax, t.total) == (3197, 239, 3436)
    # Line amounts stay net in an exclusive store.
    assert [p.amount for p in t.lines] == [1999, 698, 500]
    # Line level: 177 and 62 directly. Total level: 239·1999/2697 = 177.15 and
    # 239·698/2697 = 61.85 floor to 177 + 61, the spare cent goes to the cable.
    assert [p.tax for p in t.lines] == [177, 62, 0]
    assert_parts_add_up(t, "exclusive")


def test_sales_tax_per_line_can_differ_from_total() -> None:
    cart = [line(f"h{i}", 1999, "1", "general") for i in range(3)]
    per_total = price(cart, None, TaxSetup("exclusive", SALES_TAX, "half_up", "total"))
    per_line = price(cart, None, TaxSetup("exclusive", SALES_TAX, "half_up", "line"))
    # total: 5997 · 0.08875 = 532.23 -> 5.32; line: 3 × (177.41 -> 177) = 5.31.
    assert (per_total.tax, per_total.total) == (532, 6529)
    assert (per_line.tax, per_line.total) == (531, 6528)
    # 532 spread over three equal lines: 177.33 each, floors 531, first line gets the cent.
    assert [p.tax for p in per_total.lines] == [178, 177, 177]


# -- rounding modes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        # 150 · 19 % = 28.5 and 250 · 19 % = 47.5
        ("half_up", (29, 48)),
        ("half_even", (28, 48)),
        ("down", (28, 47)),
    ],
)
def test_rounding_mode_on_a_half_cent(rounding: Any, expected: tuple[int, int]) -> None:
    setup = TaxSetup("exclusive", {"standard": A19}, rounding, "line")
    t = price([line("a", 150, "1", "standard"), line("b", 250, "1", "standard")], None, setup)
    assert tuple(p.tax for p in t.lines) == expected
    assert t.total == 400 + sum(expected)


def test_rounding_mode_in_a_vat_store() -> None:
    # 499 · 19/119 = 79.67: half_up and half_even give 80, down gives 79.
    for rounding, tax in [("half_up", 80), ("half_even", 80), ("down", 79)]:
        t = price(
            [line("a", 499, "1", "standard")], None, TaxSetup("inclusive", VAT, rounding, "total")
        )
        assert (t.tax, t.total, t.taxes[0].net) == (tax, 499, 499 - tax)


@pytest.mark.parametrize(
    ("value", "half_up", "half_even", "down"),
    [
        ("2.5", 3, 2, 2),
        ("3.5", 4, 4, 3),
        ("-2.5", -3, -2, -2),
        ("2.4999", 2, 2, 2),
        ("7.9", 8, 8, 7),
    ],
)
def test_round_minor(value: str, half_up: int, half_even: int, down: int) -> None:
    assert round_minor(Decimal(value), "half_up") == half_up
    assert round_minor(Decimal(value), "half_even") == half_even
    assert round_minor(Decimal(value), "down") == down


# -- discounts -------------------------------------------------------------------------


def test_line_percent_and_amount_discounts() -> None:
    cart = [
        line("coffee", 499, "1", "standard", Discount(percent=Decimal("10"))),
        line("choc", 199, "2", "standard", Discount(amount=50)),
    ]
    t = price(cart, None, TaxSetup("inclusive", VAT))
    # coffee: 10 % of 4.99 = 0.499 -> 0.50 off -> 4.49; choc: 3.98 - 0.50 = 3.48.
    assert [(p.base, p.line_discount, p.cart_discount, p.amount) for p in t.lines] == [
        (499, 50, 0, 449),
        (398, 50, 0, 348),
    ]
    # 19 % over 7.97: 797·19/119 = 127.25 -> 1.27; by line 127·449/797 = 71.55 and
    # 127·348/797 = 55.45 floor to 71 + 55, the spare cent to the coffee.
    assert [p.tax for p in t.lines] == [72, 55]
    assert (t.subtotal, t.discount, t.tax, t.total) == (897, 100, 127, 797)
    assert_parts_add_up(t, "inclusive")


def test_discount_never_takes_a_line_below_zero() -> None:
    cart = [
        line("a", 199, "1", "standard", Discount(amount=500)),
        line("b", 250, "1", "reduced", Discount(percent=Decimal("100"))),
    ]
    t = price(cart, None, TaxSetup("inclusive", VAT))
    assert [(p.line_discount, p.amount, p.tax) for p in t.lines] == [(199, 0, 0), (250, 0, 0)]
    assert (t.discount, t.total, t.tax) == (449, 0, 0)


def test_cart_amount_discount_is_split_exactly() -> None:
    cart = [line(n, 100, "1", "standard") for n in ("a", "b", "c")]
    t = price(cart, Discount(amount=100), TaxSetup("inclusive", VAT))
    # 1.00 off over three equal lines: 33.33 each, floors 99, the first line takes the cent.
    assert [p.cart_discount for p in t.lines] == [34, 33, 33]
    assert [p.amount for p in t.lines] == [66, 67, 67]
    # 19 % of 2.00 gross: 200·19/119 = 31.93 -> 32; by line 10.56, 10.72, 10.72 floor to
    # 30, the two larger remainders take a cent each.
    assert [p.tax for p in t.lines] == [10, 11, 11]
    assert (t.subtotal, t.discount, t.tax, t.total) == (300, 100, 32, 200)
    assert_parts_add_up(t, "inclusive")


def test_cart_percent_discount_after_line_discount() -> None:
    cart = [
        line("milk", 299, "1", "reduced", Discount(percent=Decimal("10"))),
        line("wine", 1190, "1", "standard"),
    ]
    t = price(cart, Discount(percent=Decimal("10")), TaxSetup("inclusive", VAT))
    # milk: 29.9 -> 30 off -> 269. Cart: 10 % of (269 + 1190 = 1459) = 145.9 -> 146,
    # split 146·269/1459 = 26.92 and 146·1190/1459 = 119.08: floors 26 + 119 = 145, the
    # spare cent to the milk -> 27 and 119.
    assert [(p.line_discount, p.cart_discount, p.amount) for p in t.lines] == [
        (30, 27, 242),
        (0, 119, 1071),
    ]
    # 7 %: 242·7/107 = 15.83 -> 16; 19 %: 1071·19/119 = 171 exactly.
    assert [(x.code, x.tax, x.gross) for x in t.taxes] == [("A", 171, 1071), ("B", 16, 242)]
    assert (t.subtotal, t.discount, t.tax, t.total) == (1489, 176, 187, 1313)
    assert_parts_add_up(t, "inclusive")


def test_cart_discount_larger_than_the_cart_is_capped() -> None:
    cart = [line("a", 120, "1", "standard"), line("b", 180, "1", "reduced")]
    t = price(cart, Discount(amount=5000), TaxSetup("inclusive", VAT))
    assert [p.cart_discount for p in t.lines] == [120, 180]
    assert (t.discount, t.total, t.tax) == (300, 0, 0)


def test_cart_discount_in_sales_tax_store_comes_off_before_tax() -> None:
    cart = [line("headphones", 1999, "1", "general"), line("eggs", 500, "1", "grocery")]
    t = price(cart, Discount(amount=499), TaxSetup("exclusive", SALES_TAX))
    # 4.99 over 19.99 and 5.00: 499·1999/2499 = 399.16 and 499·500/2499 = 99.84, floors
    # 399 + 99 = 498, the cent to the eggs (.84) -> 399 and 100.
    assert [p.amount for p in t.lines] == [1600, 400]
    # 16.00 · 8.875 % = 142.0 exactly.
    assert (t.tax, t.total) == (142, 2142)
    assert_parts_add_up(t, "exclusive")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"percent": Decimal("10"), "amount": 5},
        {"percent": Decimal("0")},
        {"percent": Decimal("100.01")},
        {"percent": Decimal("-5")},
        {"amount": 0},
        {"amount": -100},
    ],
)
def test_bad_discounts_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(Invalid) as err:
        Discount(**kwargs)
    assert err.value.code == "bad_discount"


def test_discount_data_round_trip() -> None:
    d = Discount(percent=Decimal("12.5"))
    assert d.to_data() == {"percent": "12.5"}
    assert Discount.from_data(d.to_data()) == d
    assert Discount.from_data({"amount": 40}) == Discount(amount=40)
    assert Discount.from_data(None) is None


# -- weights, overrides, money helpers ------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "base"),
    [
        ("0.452", 135),  # 0.452 × 2.99 = 1.35148
        ("1.5", 449),  # 4.485 -> half up
        ("0.005", 1),  # 0.01495
        ("2.000", 598),
    ],
)
def test_weighed_line_base(qty: str, base: int) -> None:
    t = price([line("apples", 299, qty, "reduced")], None, TaxSetup("inclusive", VAT))
    assert t.lines[0].base == base
    assert t.total == base


def test_weighed_line_through_the_till(
    new_till: Callable[..., Till], run: Any, sale_items: dict[str, Any]
) -> None:
    till = new_till()
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", sale_items["apples"], "0.452"))
    line_ = till.state.sales["s"].lines["l1"]
    assert line_.quantity == Decimal("0.452")
    t = till.totals(till.state.sales["s"])
    # 0.452 kg × 2.99 €/kg = 1.35148 -> 1.35; 7 % inside: 135·7/107 = 8.83 -> 0.09.
    assert (t.total, t.tax, t.taxes[0].net) == (135, 9, 126)


def test_manager_price_override(
    new_till: Callable[..., Till], run: Any, sale_items: dict[str, Any]
) -> None:
    till = new_till()
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", sale_items["wine"], 2))
    sale = till.state.sales["s"]
    assert till.totals(sale).total == 2380
    run(till, till.change_line("s", "l1", override=Override(990, "damaged label", "mgr")))
    t = till.totals(sale)
    # 2 × 9.90 = 19.80; 19 % inside: 1980·19/119 = 316.13 -> 3.16.
    assert (t.subtotal, t.total, t.tax) == (1980, 1980, 316)
    done = run(till, till.add_payment("s", "p1", "card"))[-1][1]
    (sold,) = done["lines"]
    assert (sold["unit_price"], sold["catalog_price"], sold["base"]) == (990, 1190, 1980)
    assert sold["override"] == {"reason": "damaged label", "approved_by": "mgr"}
    assert done["total"] == 1980


def test_override_can_be_taken_back_and_is_checked(
    new_till: Callable[..., Till], run: Any, sale_items: dict[str, Any]
) -> None:
    till = new_till()
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", sale_items["wine"], 1))
    run(till, till.change_line("s", "l1", override=Override(0, "free sample", "mgr")))
    assert till.due(till.state.sales["s"]) == 0
    run(till, till.change_line("s", "l1", override=None))
    assert till.due(till.state.sales["s"]) == 1190
    with pytest.raises(Invalid) as err:
        till.change_line("s", "l1", override=Override(-1, "oops", "mgr"))
    assert err.value.code == "bad_amount"
    with pytest.raises(Invalid) as err:
        till.change_line("s", "l1", override=Override(500, "  ", "mgr"))
    assert err.value.code == "bad_reason"


def test_line_discount_through_the_till(
    new_till: Callable[..., Till], run: Any, sale_items: dict[str, Any]
) -> None:
    till = new_till()
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", sale_items["choc"], 2))
    with pytest.raises(Invalid) as err:
        till.change_line("s", "l1", discount=Discount(amount=399))  # base is 3.98
    assert err.value.code == "bad_discount"
    # With the quantity raised in the same change, 3 × 1.99 = 5.97 takes 3.99 off.
    run(till, till.change_line("s", "l1", quantity="3", discount=Discount(amount=399)))
    assert till.due(till.state.sales["s"]) == 198
    run(till, till.change_line("s", "l1", discount=None))
    assert till.due(till.state.sales["s"]) == 597
    with pytest.raises(Invalid) as err:
        till.change_line("s", "l1")
    assert err.value.code == "nothing_to_change"


def test_cart_discount_through_the_till(
    new_till: Callable[..., Till], run: Any, sale_items: dict[str, Any]
) -> None:
    till = new_till()
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", sale_items["wine"], 1))
    with pytest.raises(Invalid):
        till.set_discount("s", Discount(amount=1191))
    run(till, till.set_discount("s", Discount(percent=Decimal("25"))))
    # 25 % of 11.90 = 2.975 -> 2.98 off -> 8.92.
    assert till.due(till.state.sales["s"]) == 892
    run(till, till.set_discount("s", None))
    assert till.due(till.state.sales["s"]) == 1190


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),  # ties go to the earlier weight
        (10, [1, 2, 3, 4], [1, 2, 3, 4]),  # exact
        (7, [5, 5], [4, 3]),  # 3.5 each
        (5, [0, 0, 1], [0, 0, 5]),
        (5, [0, 0], [3, 2]),  # nothing to weigh by: an even split, the extra cent first
        (-100, [1, 1, 1], [-34, -33, -33]),
        (101, [10, 20, 70], [10, 20, 71]),  # 10.1, 20.2, 70.7
        (0, [3, 4], [0, 0]),
    ],
)
def test_allocate_examples(total: int, weights: Sequence[int], parts: list[int]) -> None:
    assert allocate(total, weights) == parts


@pytest.mark.parametrize(
    ("amount", "increment", "expected"),
    [
        (1532, 5, 1530),
        (1533, 5, 1535),
        (1535, 5, 1535),
        (1537, 5, 1535),
        (1538, 5, 1540),
        (2, 5, 0),
        (3, 5, 5),
        (1532, 1, 1532),
        (149, 10, 150),
        (144, 10, 140),
    ],
)
def test_cash_round(amount: int, increment: int, expected: int) -> None:
    assert cash_round(amount, increment) == expected


def test_format_money() -> None:
    assert format_money(123456, 2, "€", ",", ".", symbol_after=True) == "1.234,56 €"
    assert format_money(-5, 2, "$") == "-$0.05"
    assert format_money(1500, 0, "¥") == "¥1,500"


# -- the worked examples of docs/tax-and-rounding.md, worked again by hand -------------


def test_docs_cart_discount_example() -> None:
    cart = [
        line("rolls", 45, "3", "reduced", Discount(percent=Decimal("10"))),
        line("apples", 299, "0.452", "reduced"),
        line("wine", 1190, "1", "standard"),
    ]
    t = price(cart, Discount(amount=100), TaxSetup("inclusive", VAT))
    # Bases 135, 135 (135.148), 1190; rolls 10 % = 13.5 -> 14 off, so 121, 135, 1190 = 1446.
    # 1.00 off in shares 8.37, 9.34, 82.30: floors 99, the cent to the rolls (.37).
    assert [(p.base, p.line_discount, p.cart_discount, p.amount) for p in t.lines] == [
        (135, 14, 9, 112),
        (135, 0, 9, 126),
        (1190, 0, 82, 1108),
    ]
    # 7 %: 238·7/107 = 15.57 -> 16, split 7.53 / 8.47 -> 8 and 8.
    # 19 %: 1108·19/119 = 176.91 -> 177.
    assert [p.tax for p in t.lines] == [8, 8, 177]
    assert (t.subtotal, t.discount, t.tax, t.total) == (1460, 114, 193, 1346)


@pytest.mark.parametrize(
    ("level", "rounding", "line_taxes"),
    [
        # 597·19/119 = 95.32 -> 95 in every mode, spread 31.77 each: 31·3 = 93, two spare
        # cents to the first two lines.
        ("total", "half_up", [32, 32, 31]),
        ("total", "half_even", [32, 32, 31]),
        ("total", "down", [32, 32, 31]),
        # 199·19/119 = 31.77 per line.
        ("line", "half_up", [32, 32, 32]),
        ("line", "half_even", [32, 32, 32]),
        ("line", "down", [31, 31, 31]),
    ],
)
def test_docs_chocolate_table(level: Any, rounding: Any, line_taxes: list[int]) -> None:
    cart = [line(f"c{i}", 199, "1", "standard") for i in range(3)]
    t = price(cart, None, TaxSetup("inclusive", VAT, rounding, level))
    assert [p.tax for p in t.lines] == line_taxes
    assert (t.total, t.tax, t.taxes[0].net) == (597, sum(line_taxes), 597 - sum(line_taxes))


@pytest.mark.parametrize(
    ("rounding", "total"), [("half_up", 1307), ("half_even", 1306), ("down", 1306)]
)
def test_docs_sales_tax_half_cent(rounding: Any, total: int) -> None:
    # 1200 · 8.875 % = 106.5 cents of tax.
    t = price(
        [line("x", 1200, "1", "general")], None, TaxSetup("exclusive", SALES_TAX, rounding, "total")
    )
    assert t.total == total
