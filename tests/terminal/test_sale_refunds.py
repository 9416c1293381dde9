# purpose: refunds of completed sales: exact amounts and taxes, limits, and which tender pays.
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from terminal.sale import Conflict, Discount, Invalid, Item, NotFound, Till

Run = Callable[[Till, Any], list[Any]]
NewTill = Callable[..., Till]

ODD = Item("odd", "Odd price", 1532, "standard")
ODDER = Item("odder", "Odder price", 1533, "standard")


def refund(
    till: Till,
    run: Run,
    original: dict[str, Any],
    done: list[dict[str, Any]],
    lines: dict[str, Any] | None,
    to: Any = "original",
) -> dict[str, Any]:
    """Decide a refund, fold it in, and remember it for the next one."""
    (ev,) = run(
        till,
        till.refund(
            original, done, f"r{len(done) + 1}", lines, to, "customer returned it", "ann", "mgr"
        ),
    )
    assert ev[0] == "sale.refunded"
    done.append(ev[1])
    return ev[1]


def pay_split(
    till: Till, run: Run, sale_id: str, *tenders: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    events: list[Any] = []
    for n, (method, kwargs) in enumerate(tenders, 1):
        events = run(till, till.add_payment(sale_id, f"{sale_id}-p{n}", method, **kwargs))
    assert events[-1][0] == "sale.completed"
    return events[-1][1]


def wine_and_bread(till: Till, run: Run, items: dict[str, Item], *tenders: Any) -> dict[str, Any]:
    """Wine 11.90 (19 %) and 3 × bread 2.50 with 0.01 off (7 %): 11.90 + 7.49 = 19.39.

    19 %: 1190·19/119 = 190 exactly, net 1000. 7 %: 749·7/107 = 49 exactly, net 700.
    """
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "w", items["wine"], 1))
    run(till, till.add_line("s", "b", items["bread"], 3))
    run(till, till.change_line("s", "b", discount=Discount(amount=1)))
    done = pay_split(till, run, "s", *(tenders or [("card", {})]))
    assert (done["total"], done["tax"]) == (1939, 239)
    return done


def by_method(refund_data: dict[str, Any]) -> list[tuple[str, int]]:
    return [(p["method"], p["amount"]) for p in refund_data["payments"]]


# -- amounts and taxes -----------------------------------------------------------------


def test_whole_refund_equals_the_sale(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items)
    r = refund(till, run, sale, [], None)
    assert r["total"] == 1939
    assert [(t["code"], t["net"], t["tax"], t["gross"]) for t in r["taxes"]] == [
        ("A", 1000, 190, 1190),
        ("B", 700, 49, 749),
    ]
    assert [(t["code"], t["net"], t["tax"], t["gross"]) for t in r["taxes"]] == [
        (t["code"], t["net"], t["tax"], t["gross"]) for t in sale["taxes"]
    ]
    assert {li["line_id"]: li["quantity"] for li in r["lines"]} == {"w": "1", "b": "3"}
    assert by_method(r) == [("card", 1939)]
    assert (r["original_receipt_no"], r["receipt_no"]) == ("s1-t1-000001", "s1-t1-000002")
    assert r["rounding"] == 0


def test_three_partial_refunds_sum_exactly(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items)
    done: list[dict[str, Any]] = []
    steps = [refund(till, run, sale, done, {"b": 1}) for _ in range(3)]
    # Bread line: 7.49 with 0.49 tax, refunded a third at a time on the running share:
    #   1/3: 749/3 = 249.67 -> 250;  49/3 = 16.33 -> 16
    #   2/3: 499.33 -> 499, less 250 = 249;  32.67 -> 33, less 16 = 17
    #   3/3: 749 - 499 = 250;  49 - 33 = 16
    assert [(s["lines"][0]["amount"], s["lines"][0]["tax"]) for s in steps] == [
        (250, 16),
        (249, 17),
        (250, 16),
    ]
    assert sum(s["total"] for s in steps) == 749
    assert sum(s["taxes"][0]["tax"] for s in steps) == 49
    assert [s["receipt_no"][-1] for s in steps] == ["2", "3", "4"]
    # The wine is still there to refund, and nothing of the bread.
    last = refund(till, run, sale, done, None)
    assert [(li["line_id"], li["amount"], li["tax"]) for li in last["lines"]] == [("w", 1190, 190)]


def test_refund_of_a_discounted_line_returns_what_was_paid(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "w", sale_items["wine"], 1))
    run(till, till.add_line("s", "b", sale_items["bread"], 1))
    run(till, till.set_discount("s", Discount(percent=Decimal("10"))))
    sale = pay_split(till, run, "s", ("cash", {"tendered": 2000}))
    # 10 % of 14.40 = 1.44, split 119 (wine) and 25 (bread) exactly; total 12.96.
    assert sale["total"] == 1296
    r = refund(till, run, sale, [], {"b": 1})
    # Bread after discount 2.25; 7 % inside: 225·7/107 = 14.72 -> 15.
    assert (r["total"], r["lines"][0]["tax"]) == (225, 15)
    assert by_method(r) == [("cash", 225)]


def test_weighed_line_refunded_in_part(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "a", sale_items["apples"], "0.452"))
    sale = pay_split(till, run, "s", ("card", {}))
    # 0.452 kg × 2.99 = 1.35, tax 135·7/107 = 8.83 -> 9.
    assert (sale["total"], sale["tax"]) == (135, 9)
    done: list[dict[str, Any]] = []
    with pytest.raises(Invalid) as err:
        till.refund(sale, done, "r1", {"a": "0.2001"}, "original", "x", "ann", "mgr")
    assert err.value.code == "bad_quantity"
    first = refund(till, run, sale, done, {"a": "0.2"})
    # 0.2/0.452 of 135 = 59.73 -> 60; of 9 = 3.98 -> 4.
    assert (first["total"], first["lines"][0]["tax"]) == (60, 4)
    rest = refund(till, run, sale, done, None)
    assert rest["lines"][0]["quantity"] == "0.252"
    assert (rest["total"], rest["lines"][0]["tax"]) == (75, 5)


def test_sales_tax_refund_gross_includes_tax(
    new_till: NewTill, run: Run, us_items: dict[str, Item]
) -> None:
    till = new_till(mode="exclusive")
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "h", us_items["headphones"], 1))
    run(till, till.add_line("s", "c", us_items["cable"], 2))
    sale = pay_split(till, run, "s", ("card", {}))
    # Net 19.99 + 6.98 = 26.97; 8.875 % = 239.36 -> 2.39 (177 + 62 by line); total 29.36.
    assert (sale["total"], sale["tax"]) == (2936, 239)
    done: list[dict[str, Any]] = []
    one = refund(till, run, sale, done, {"c": 1})
    # Half the cable line: net 698/2 = 349, tax 62/2 = 31, so 3.80 back.
    assert [(li["amount"], li["tax"], li["gross"]) for li in one["lines"]] == [(349, 31, 380)]
    assert one["taxes"] == [
        {"tax_class": "general", "code": "T", "rate": "8.875", "net": 349, "tax": 31, "gross": 380}
    ]
    assert one["total"] == 380
    assert by_method(one) == [("card", 380)]
    rest = refund(till, run, sale, done, None)
    # Headphones 19.99 + 1.77 and the other cable 3.49 + 0.31.
    assert rest["total"] == 2176 + 380
    assert one["total"] + rest["total"] == sale["total"]


# -- limits ----------------------------------------------------------------------------


def test_refunding_more_than_sold_is_refused(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items)
    with pytest.raises(Invalid) as err:
        till.refund(sale, [], "r1", {"b": 4}, "original", "x", "ann", "mgr")
    assert err.value.code == "refund_too_much"
    assert "Only 3 of Rye bread" in err.value.message
    done: list[dict[str, Any]] = []
    refund(till, run, sale, done, {"b": 2})
    with pytest.raises(Invalid) as err:
        till.refund(sale, done, "r2", {"b": 2}, "original", "x", "ann", "mgr")
    assert "Only 1 of Rye bread" in err.value.message


def test_refund_after_everything_refunded_is_refused(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items)
    done: list[dict[str, Any]] = []
    refund(till, run, sale, done, {"w": 1})
    refund(till, run, sale, done, None)
    with pytest.raises(Conflict) as err:
        till.refund(sale, done, "r3", None, "original", "x", "ann", "mgr")
    assert err.value.code == "fully_refunded"
    for lines in ({"w": 1}, {"b": 1}):
        with pytest.raises(Invalid) as err2:
            till.refund(sale, done, "r3", lines, "cash", "x", "ann", "mgr")
        assert err2.value.code == "refund_too_much"


@pytest.mark.parametrize(
    ("lines", "to", "reason", "error", "code"),
    [
        ({"zz": 1}, "original", "x", NotFound, "unknown_line"),
        ({}, "original", "x", Invalid, "nothing_to_refund"),
        ({"b": "1.5"}, "original", "x", Invalid, "bad_quantity"),
        ({"b": 0}, "original", "x", Invalid, "bad_quantity"),
        ({"b": 1}, "voucher", "x", Invalid, "bad_refund_tender"),
        ({"b": 1}, "original", "  ", Invalid, "bad_reason"),
    ],
)
def test_bad_refunds_are_refused(
    new_till: NewTill,
    run: Run,
    sale_items: dict[str, Item],
    lines: Any,
    to: Any,
    reason: str,
    error: type[Exception],
    code: str,
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items)
    with pytest.raises(error) as err:
        till.refund(sale, [], "r1", lines, to, reason, "ann", "mgr")
    assert err.value.code == code


def test_refund_needs_an_open_shift(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items)
    run(till, till.close_shift(10_000, "ann"))
    with pytest.raises(Conflict) as err:
        till.refund(sale, [], "r1", None, "original", "x", "ann", "mgr")
    assert err.value.code == "no_shift"


# -- which tender pays -----------------------------------------------------------------


def test_card_first_when_card_was_taken_first(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(
        till, run, sale_items, ("card", {"amount": 1000}), ("cash", {"tendered": 1000})
    )
    assert [(p["method"], p["amount"]) for p in sale["payments"]] == [("card", 1000), ("cash", 939)]
    done: list[dict[str, Any]] = []
    # Wine 11.90 back: the card's 10.00 first, then 1.90 in cash.
    assert by_method(refund(till, run, sale, done, {"w": 1})) == [("card", 1000), ("cash", 190)]
    # Bread 7.49: the card is used up, so cash, and exactly what the cash has left.
    assert by_method(refund(till, run, sale, done, None)) == [("cash", 749)]


def test_card_first_when_cash_was_taken_first(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items, ("cash", {"tendered": 1000}), ("card", {}))
    assert [(p["method"], p["amount"]) for p in sale["payments"]] == [("cash", 1000), ("card", 939)]
    done: list[dict[str, Any]] = []
    assert by_method(refund(till, run, sale, done, {"w": 1})) == [("card", 939), ("cash", 251)]
    assert by_method(refund(till, run, sale, done, None)) == [("cash", 749)]


def test_whole_split_refund_returns_each_tender_in_full(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(
        till, run, sale_items, ("card", {"amount": 1000}), ("cash", {"tendered": 2000})
    )
    r = refund(till, run, sale, [], None)
    assert by_method(r) == [("card", 1000), ("cash", 939)]
    assert [p["payment_id"] for p in r["payments"]] == ["s-p1", "s-p2"]


def test_card_details_travel_with_the_card_refund(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    card = {"brand": "girocard", "masked_pan": "672559******1234", "trace": "000123"}
    sale = wine_and_bread(till, run, sale_items, ("card", {"card": card}))
    r = refund(till, run, sale, [], {"w": 1})
    assert r["payments"] == [{"method": "card", "amount": 1190, "payment_id": "s-p1", "card": card}]


def test_refund_to_cash_from_a_card_sale(
    new_till: NewTill, run: Run, sale_items: dict[str, Item]
) -> None:
    till = new_till()
    sale = wine_and_bread(till, run, sale_items)
    r = refund(till, run, sale, [], None, to="cash")
    assert by_method(r) == [("cash", 1939)]
    totals = till.state.shift.totals
    assert totals.expected_cash == 10_000 - 1939


def test_refund_to_cash_is_cash_rounded(new_till: NewTill, run: Run) -> None:
    till = new_till(cash_increment=5)
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", ODD, 1))
    sale = pay_split(till, run, "s", ("card", {}))
    r = refund(till, run, sale, [], None, to="cash")
    # 15.32 owed, 15.30 paid out in coins that exist.
    assert (r["total"], r["rounding"], by_method(r)) == (1532, -2, [("cash", 1530)])


def test_refund_to_original_cash_never_pays_more_than_was_taken(
    new_till: NewTill, run: Run
) -> None:
    till = new_till(cash_increment=5)
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", ODD, 1))
    sale = pay_split(till, run, "s", ("cash", {"tendered": 2000}))
    assert (sale["total"], sale["paid"], sale["rounding"]) == (1532, 1530, -2)
    r = refund(till, run, sale, [], None)
    # The customer paid 15.30 for 15.32: 15.30 goes back, and the 0.02 is cash rounding.
    assert (r["total"], r["rounding"]) == (1532, -2)
    assert sum(p["amount"] for p in r["payments"]) == 1530


def test_refund_to_original_cash_pays_in_coins_that_exist(new_till: NewTill, run: Run) -> None:
    till = new_till(cash_increment=5)
    run(till, till.open_sale("s", "ann"))
    run(till, till.add_line("s", "l1", ODDER, 1))
    sale = pay_split(till, run, "s", ("cash", {"tendered": 1535}))
    assert (sale["total"], sale["paid"], sale["rounding"]) == (1533, 1535, 2)
    r = refund(till, run, sale, [], None)
    # 15.33 rounds to 15.35 in cash, which is exactly what the customer paid.
    assert (r["total"], r["rounding"], by_method(r)) == (1533, 2, [("cash", 1535)])
