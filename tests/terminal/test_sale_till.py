# purpose: the till state machine: quantities, tenders, completion, voids, shifts, Z report.
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from terminal.sale import (
    Conflict,
    Discount,
    Invalid,
    Item,
    NotFound,
    Till,
    parse_quantity,
)

Run = Callable[[Till, Any], list[Any]]
NewTill = Callable[..., Till]

ODD = Item("odd", "Odd price", 1532, "standard")
ODDER = Item("odder", "Odder price", 1533, "standard")


@pytest.fixture
def till(new_till: NewTill) -> Till:
    return new_till()


def open_with(till: Till, run: Run, sale_id: str, *lines: tuple[Item, Any]) -> None:
    run(till, till.open_sale(sale_id, "ann"))
    for n, (item, qty) in enumerate(lines, 1):
        run(till, till.add_line(sale_id, f"l{n}", item, qty))


# -- quantities ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "needle"),
    [
        ("0", "each", "more than zero"),
        (0, "kg", "more than zero"),
        ("-1", "each", "more than zero"),
        ("-0.25", "kg", "more than zero"),
        ("abc", "each", "not a number"),
        ("", "kg", "not a number"),
        (None, "each", "not a number"),
        ("1,5", "kg", "not a number"),
        ("NaN", "each", "more than zero"),
        ("Infinity", "kg", "more than zero"),
        ("1.5", "each", "whole number"),
        ("0.5", "each", "whole number"),
        ("1000", "each", "At most 999 pieces"),
        ("1E+3", "each", "At most 999 pieces"),
        ("99.001", "kg", "At most 99 kg"),
        ("150", "kg", "At most 99 kg"),
        ("0.4525", "kg", "3 decimals"),
        ("1E-4", "kg", "3 decimals"),
    ],
)
def test_bad_quantities_are_refused(value: Any, unit: Any, needle: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_quantity(value, unit)
    assert err.value.code == "bad_quantity"
    assert needle in err.value.message


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("1", "each", "1"),
        (3, "each", "3"),
        ("999", "each", "999"),
        ("2.0", "each", "2"),
        (Decimal("7"), "each", "7"),
        ("0.452", "kg", "0.452"),
        ("99", "kg", "99.000"),
        ("0.001", "kg", "0.001"),
        ("1.5", "kg", "1.500"),
    ],
)
def test_good_quantities(value: Any, unit: Any, expected: str) -> None:
    assert str(parse_quantity(value, unit)) == expected


def test_add_line_refuses_bad_quantity(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    run(till, till.open_sale("s", "ann"))
    for item, qty in [
        (sale_items["wine"], "0"),
        (sale_items["wine"], "1.5"),
        (sale_items["wine"], "1000"),
        (sale_items["apples"], "99.5"),
        (sale_items["apples"], "0.1234"),
        (sale_items["wine"], "x"),
    ]:
        with pytest.raises(Invalid) as err:
            till.add_line("s", "l1", item, qty)
        assert err.value.code == "bad_quantity"
        assert err.value.message
    assert till.state.sales["s"].lines == {}
    run(till, till.add_line("s", "l1", sale_items["wine"], 1))
    with pytest.raises(Invalid) as err:
        till.change_line("s", "l1", quantity="2.5")
    assert err.value.code == "bad_quantity"


def test_add_line_refuses_unknown_tax_class(till: Till, run: Run) -> None:
    run(till, till.open_sale("s", "ann"))
    with pytest.raises(Invalid) as err:
        till.add_line("s", "l1", Item("x", "X", 100, "luxury"), 1)
    assert err.value.code == "unknown_tax_class"


def test_change_and_remove_lines(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1), (sale_items["bread"], 1))
    run(till, till.change_line("s", "l2", quantity="4"))
    assert till.due(till.state.sales["s"]) == 1190 + 4 * 250
    run(till, till.remove_line("s", "l1"))
    assert list(till.state.sales["s"].lines) == ["l2"]
    assert till.due(till.state.sales["s"]) == 1000
    with pytest.raises(NotFound) as err:
        till.remove_line("s", "l1")
    assert err.value.code == "unknown_line"


# -- tenders ---------------------------------------------------------------------------


def test_exact_cash(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    events = run(till, till.add_payment("s", "p1", "cash", tendered=1190))
    assert [t for t, _ in events] == ["sale.payment_added", "sale.completed"]
    done = events[-1][1]
    assert (done["total"], done["paid"], done["change"], done["rounding"]) == (1190, 1190, 0, 0)
    assert done["receipt_no"] == "s1-t1-000001"
    assert "s" not in till.state.sales


def test_cash_with_change(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1), (sale_items["bread"], 2))
    events = run(till, till.add_payment("s", "p1", "cash", tendered=2000))
    pay = events[0][1]
    # 11.90 + 2 × 2.50 = 16.90; 20.00 given, 3.10 back.
    assert (pay["amount"], pay["tendered"], pay["change"]) == (1690, 2000, 310)
    done = events[-1][1]
    assert (done["total"], done["paid"], done["change"]) == (1690, 1690, 310)
    assert [(p["method"], p["amount"]) for p in done["payments"]] == [("cash", 1690)]


def test_cash_rounding_down_to_five(new_till: NewTill, run: Run) -> None:
    till = new_till(cash_increment=5)
    open_with(till, run, "s", (ODD, 1))
    events = run(till, till.add_payment("s", "p1", "cash", tendered=2000))
    pay, done = events[0][1], events[-1][1]
    # 15.32 due in cash rounds to 15.30 (rounding -0.02); 20.00 given, 4.70 back.
    assert (pay["amount"], pay["rounding"], pay["change"]) == (1530, -2, 470)
    assert (done["total"], done["rounding"], done["paid"], done["change"]) == (1532, -2, 1530, 470)
    assert done["total"] + done["rounding"] == done["paid"]


def test_cash_rounding_up_to_five(new_till: NewTill, run: Run) -> None:
    till = new_till(cash_increment=5)
    open_with(till, run, "s", (ODDER, 1))
    events = run(till, till.add_payment("s", "p1", "cash", tendered=1535))
    done = events[-1][1]
    # 15.33 rounds to 15.35 (+0.02); exactly that given, nothing back.
    assert (done["total"], done["rounding"], done["paid"], done["change"]) == (1533, 2, 1535, 0)


def test_too_little_cash_under_rounding_is_a_part_payment(new_till: NewTill, run: Run) -> None:
    till = new_till(cash_increment=5)
    open_with(till, run, "s", (ODDER, 1))
    # 15.30 is below the 15.35 cash due: taken as a part payment, 0.03 still due.
    events = run(till, till.add_payment("s", "p1", "cash", tendered=1530))
    assert [t for t, _ in events] == ["sale.payment_added"]
    assert till.due(till.state.sales["s"]) == 3
    with pytest.raises(Conflict) as err:
        till.complete("s")  # 0.03 rounds to 0.05 in cash, so it is still owed
    assert err.value.code == "not_paid"


def test_card_pays_exactly_in_a_cash_rounding_store(new_till: NewTill, run: Run) -> None:
    till = new_till(cash_increment=5)
    open_with(till, run, "s", (ODD, 1))
    done = run(till, till.add_payment("s", "p1", "card"))[-1][1]
    assert (done["total"], done["rounding"], done["paid"]) == (1532, 0, 1532)


def test_leftover_below_smallest_coin_completes_by_rounding(new_till: NewTill, run: Run) -> None:
    till = new_till(cash_increment=5)
    open_with(till, run, "s", (ODD, 1))
    events = run(till, till.add_payment("s", "p1", "card", amount=1530))
    assert [t for t, _ in events] == ["sale.payment_added"]
    # 0.02 left rounds to 0.00 in cash: the sale can be completed without more money.
    done = run(till, till.complete("s"))[-1][1]
    assert (done["total"], done["rounding"], done["paid"]) == (1532, -2, 1530)


def test_split_card_then_cash(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1), (sale_items["bread"], 2))
    first = run(
        till,
        till.add_payment(
            "s", "p1", "card", amount=1000, card={"brand": "visa", "masked_pan": "4111********1111"}
        ),
    )
    assert [t for t, _ in first] == ["sale.payment_added"]
    assert till.due(till.state.sales["s"]) == 690
    done = run(till, till.add_payment("s", "p2", "cash", tendered=700))[-1][1]
    assert [(p["method"], p["amount"], p["change"]) for p in done["payments"]] == [
        ("card", 1000, 0),
        ("cash", 690, 10),
    ]
    assert (done["paid"], done["change"]) == (1690, 10)
    assert done["payments"][0]["card"] == {"brand": "visa", "masked_pan": "4111********1111"}


def test_partial_cash_then_card(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1), (sale_items["bread"], 2))
    events = run(till, till.add_payment("s", "p1", "cash", tendered=1000))
    assert [t for t, _ in events] == ["sale.payment_added"]
    assert events[0][1]["change"] == 0
    with pytest.raises(Invalid) as err:
        till.add_payment("s", "p2", "card", amount=691)
    assert err.value.code == "card_over_due"
    assert "690" in err.value.message
    done = run(till, till.add_payment("s", "p2", "card"))[-1][1]  # card takes what is due
    assert [(p["method"], p["amount"]) for p in done["payments"]] == [("cash", 1000), ("card", 690)]


def test_card_over_the_due_is_refused(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    with pytest.raises(Invalid) as err:
        till.add_payment("s", "p1", "card", amount=1191)
    assert err.value.code == "card_over_due"
    assert till.state.sales["s"].payments == []


def test_receipt_numbers_are_gap_free(
    till: Till, run: Run, sell: Any, sale_items: dict[str, Item]
) -> None:
    first = sell(till, "a", {"l1": (sale_items["wine"], 1)}, [("card", {})])
    # A voided sale takes no receipt number.
    open_with(till, run, "v", (sale_items["bread"], 1))
    run(till, till.void("v", "customer left", "ann", "mgr"))
    second = sell(till, "b", {"l1": (sale_items["bread"], 1)}, [("cash", {"tendered": 250})])
    assert [first["receipt_no"], second["receipt_no"]] == ["s1-t1-000001", "s1-t1-000002"]
    assert till.state.receipt_counter == 2


def test_cart_is_locked_once_paid_into(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    run(till, till.add_payment("s", "p1", "cash", tendered=500))
    attempts = [
        lambda: till.add_line("s", "l2", sale_items["bread"], 1),
        lambda: till.change_line("s", "l1", quantity="2"),
        lambda: till.remove_line("s", "l1"),
        lambda: till.set_discount("s", Discount(amount=100)),
    ]
    for attempt in attempts:
        with pytest.raises(Conflict) as err:
            attempt()
        assert err.value.code == "payment_taken"


def test_empty_sale_cannot_be_paid(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    run(till, till.open_sale("s", "ann"))
    for attempt in (
        lambda: till.add_payment("s", "p1", "cash", tendered=100),
        lambda: till.add_payment("s", "p1", "card"),
        lambda: till.complete("s"),
    ):
        with pytest.raises(Conflict) as err:
            attempt()
        assert err.value.code == "empty_sale"
    # Emptied again after adding: same refusal.
    run(till, till.add_line("s", "l1", sale_items["wine"], 1))
    run(till, till.remove_line("s", "l1"))
    with pytest.raises(Conflict):
        till.add_payment("s", "p1", "card")


def test_actions_on_a_completed_sale_are_refused(
    till: Till, run: Run, sell: Any, sale_items: dict[str, Item]
) -> None:
    sell(till, "s", {"l1": (sale_items["wine"], 1)}, [("card", {})])
    attempts = [
        lambda: till.add_line("s", "l2", sale_items["bread"], 1),
        lambda: till.change_line("s", "l1", quantity="2"),
        lambda: till.remove_line("s", "l1"),
        lambda: till.set_discount("s", None),
        lambda: till.add_payment("s", "p9", "cash", tendered=100),
        lambda: till.complete("s"),
        lambda: till.void("s", "oops", "ann", "mgr"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as err:
            attempt()
        assert err.value.code == "sale_not_open"


@pytest.mark.parametrize(
    ("method", "kwargs", "code"),
    [
        ("voucher", {"amount": 100}, "bad_method"),
        ("cash", {}, "bad_amount"),
        ("cash", {"tendered": 0}, "bad_amount"),
        ("cash", {"tendered": -500}, "bad_amount"),
        ("cash", {"tendered": 12.5}, "bad_amount"),
        ("card", {"amount": 0}, "bad_amount"),
        ("card", {"amount": 10_000_001}, "bad_amount"),
    ],
)
def test_bad_tenders_are_refused(
    till: Till,
    run: Run,
    sale_items: dict[str, Item],
    method: str,
    kwargs: dict[str, Any],
    code: str,
) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    with pytest.raises(Invalid) as err:
        till.add_payment("s", "p1", method, **kwargs)
    assert err.value.code == code


def test_card_data_is_masked(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    full = "4" + "1" * 14 + "2"  # built at run time: no card number in any file
    with pytest.raises(Invalid) as err:
        till.add_payment("s", "p1", "card", card={"masked_pan": full})
    assert err.value.code == "pan_not_masked"
    events = till.add_payment(
        "s",
        "p1",
        "card",
        card={
            "brand": "visa",
            "masked_pan": "411111******1111",
            "auth_code": "A1B2",
            "track2": full + "=2512",
            "cvv": "123",
        },
    )
    assert events[0][1]["card"] == {
        "brand": "visa",
        "masked_pan": "411111******1111",
        "auth_code": "A1B2",
    }


# -- voids -----------------------------------------------------------------------------


def test_void_lists_cash_to_give_back(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1), (sale_items["bread"], 2))
    run(till, till.add_payment("s", "p1", "cash", tendered=1000))
    (ev,) = run(till, till.void("s", "customer changed mind", "ann", "mgr"))
    assert ev[0] == "sale.voided"
    data = ev[1]
    assert data["returned"] == [{"method": "cash", "amount": 1000}]
    assert (data["total"], data["lines"], data["approved_by"]) == (1690, 2, "mgr")
    assert "s" not in till.state.sales
    totals = till.state.shift.totals
    assert (totals.voids_count, totals.voids_total) == (1, 1690)
    assert totals.expected_cash == 10_000  # the 10.00 came in and went back out


def test_void_refused_after_a_card_payment(
    till: Till, run: Run, sale_items: dict[str, Item]
) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    run(till, till.add_payment("s", "p1", "card", amount=500))
    with pytest.raises(Conflict) as err:
        till.void("s", "customer left", "ann", "mgr")
    assert err.value.code == "card_paid"
    with pytest.raises(Invalid) as err2:
        till.void("s", " ", "ann", "mgr")
    assert err2.value.code == "bad_reason"


# -- shifts ----------------------------------------------------------------------------


def test_no_shift_no_sale(new_till: NewTill) -> None:
    till = new_till(opening_float=None)
    for attempt in (
        lambda: till.open_sale("s", "ann"),
        lambda: till.no_sale("change", "ann", "mgr"),
        lambda: till.move_cash(100, "float", "ann", "mgr"),
        lambda: till.close_shift(0, "ann"),
    ):
        with pytest.raises(Conflict) as err:
            attempt()
        assert err.value.code == "no_shift"
    with pytest.raises(Invalid):
        till.open_shift("sh", "ann", -1)


def test_shift_cannot_be_opened_twice(till: Till) -> None:
    with pytest.raises(Conflict) as err:
        till.open_shift("shift-2", "bob", 5000)
    assert err.value.code == "shift_open"


def test_close_with_open_sales_refused(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    run(till, till.open_sale("t", "ann"))
    with pytest.raises(Conflict) as err:
        till.close_shift(10_000, "ann")
    assert err.value.code == "sales_open"
    assert "2 sale(s)" in err.value.message
    run(till, till.void("s", "test", "ann", "mgr"))
    run(till, till.void("t", "test", "ann", "mgr"))
    run(till, till.close_shift(10_000, "ann"))
    assert till.state.shift is None
    run(till, till.open_shift("shift-2", "bob", 5000))  # a new shift starts from its float
    assert till.state.shift.totals.expected_cash == 5000


def test_no_sale_is_counted(till: Till, run: Run) -> None:
    (ev,) = run(till, till.no_sale("change for a 50", "ann", "mgr"))
    assert ev[0] == "drawer.opened"
    assert (ev[1]["reason"], ev[1]["note"], ev[1]["approved_by"]) == (
        "no_sale",
        "change for a 50",
        "mgr",
    )
    run(till, till.no_sale("check float", "ann", "mgr"))
    assert till.state.shift.totals.no_sales == 2
    with pytest.raises(Invalid):
        till.no_sale("", "ann", "mgr")


def test_cash_in_and_out(till: Till, run: Run) -> None:
    run(till, till.move_cash(500, "coins from bank", "ann", "mgr"))
    run(till, till.move_cash(-2000, "safe drop", "mgr", "mgr"))
    totals = till.state.shift.totals
    # 100.00 float + 5.00 in - 20.00 out = 85.00
    assert (totals.cash_in, totals.cash_out, totals.expected_cash) == (500, 2000, 8500)
    with pytest.raises(Invalid) as err:
        till.move_cash(-8501, "too much", "mgr", "mgr")
    assert err.value.code == "not_enough_cash"
    run(till, till.move_cash(-8500, "empty the drawer", "mgr", "mgr"))  # everything is allowed
    for amount, reason, code in [
        (0, "x", "bad_amount"),
        (10_000_001, "x", "bad_amount"),
        (100, "", "bad_reason"),
        (100, "x" * 201, "bad_reason"),
    ]:
        with pytest.raises(Invalid) as err:
            till.move_cash(amount, reason, "ann", "mgr")
        assert err.value.code == code


@pytest.mark.parametrize(("counted", "over_short"), [(10_000, 0), (9_950, -50), (10_020, 20)])
def test_over_short_on_close(till: Till, run: Run, counted: int, over_short: int) -> None:
    (ev,) = run(till, till.close_shift(counted, "ann"))
    assert ev[1]["report"]["cash"]["expected"] == 10_000
    assert ev[1]["report"]["cash"]["over_short"] == over_short
    assert ev[1]["counted"] == counted


def test_z_report_for_a_scripted_shift(
    till: Till, run: Run, sell: Any, sale_items: dict[str, Item]
) -> None:
    wine, bread = sale_items["wine"], sale_items["bread"]
    # Sale 1: wine 11.90 (19 %) + 2 × bread 2.50 (7 %) = 16.90, cash 20.00, 3.10 back.
    #   19 %: 1190·19/119 = 190 exactly; 7 %: 500·7/107 = 32.71 -> 33.
    one = sell(till, "one", {"w": (wine, 1), "b": (bread, 2)}, [("cash", {"tendered": 2000})])
    # Sale 2: wine 11.90 by card.
    two = sell(till, "two", {"w": (wine, 1)}, [("card", {})])
    # Sale 3: bread, voided before payment.
    open_with(till, run, "three", (bread, 1))
    run(till, till.void("three", "wrong item", "ann", "mgr"))
    run(till, till.no_sale("change for a 50", "ann", "mgr"))
    run(till, till.move_cash(500, "coins from bank", "ann", "mgr"))
    run(till, till.move_cash(-200, "paid window cleaner", "mgr", "mgr"))
    # Refund one bread from sale 1 to its cash: 500·1/2 = 250; tax 33·1/2 = 16.5 -> 17.
    (refund,) = run(till, till.refund(one, [], "r1", {"b": 1}, "original", "stale", "ann", "mgr"))
    assert (refund[1]["total"], refund[1]["receipt_no"]) == (250, "s1-t1-000003")
    assert [one["receipt_no"], two["receipt_no"]] == ["s1-t1-000001", "s1-t1-000002"]

    # Expected cash: 100.00 + 16.90 - 2.50 + 5.00 - 2.00 = 117.40; counted 117.35.
    (closed,) = run(till, till.close_shift(11_735, "ann"))
    report = closed[1]["report"]
    assert report["sales"] == {
        "count": 2,
        "total": 2880,
        "tax": 190 + 33 + 190,
        "discounts": 0,
        "rounding": 0,
    }
    assert report["refunds"] == {"count": 1, "total": 250}
    assert report["voids"] == {"count": 1, "total": 250}
    assert report["no_sales"] == 1
    assert report["net_total"] == 2880 - 250
    assert report["tenders"] == {
        "card": {"sales": 1190, "refunds": 0, "net": 1190, "count": 1},
        "cash": {"sales": 1690, "refunds": 250, "net": 1440, "count": 1},
    }
    assert report["taxes"] == [
        # 19 %: 2 × 11.90 = 23.80 gross, 2 × 1.90 tax.
        {
            "tax_class": "standard",
            "code": "A",
            "rate": "19",
            "net": 2000,
            "tax": 380,
            "gross": 2380,
            "refund_net": 0,
            "refund_tax": 0,
            "refund_gross": 0,
        },
        # 7 %: 5.00 gross, 0.33 tax; refunded 2.50 with 0.17 tax.
        {
            "tax_class": "reduced",
            "code": "B",
            "rate": "7",
            "net": 467,
            "tax": 33,
            "gross": 500,
            "refund_net": 233,
            "refund_tax": 17,
            "refund_gross": 250,
        },
    ]
    assert report["cash"] == {
        "opening_float": 10_000,
        "sales": 1690,
        "refunds": 250,
        "cash_in": 500,
        "cash_out": 200,
        "expected": 11_740,
        "counted": 11_735,
        "over_short": -5,
    }
    assert closed[1]["opened_at"] == "2026-11-27T10:00:01Z"  # the shift.opened event (seq 1)


def test_shift_report_counts_cash_rounding(new_till: NewTill, sell: Any) -> None:
    till = new_till(cash_increment=5)
    sell(till, "a", {"l1": (ODD, 1)}, [("cash", {"tendered": 2000})])  # 15.32 -> 15.30
    sell(till, "b", {"l1": (ODDER, 1)}, [("cash", {"tendered": 1600})])  # 15.33 -> 15.35
    sell(till, "c", {"l1": (ODD, 1)}, [("cash", {"tendered": 1530})])  # 15.32 -> 15.30
    report = till.close_shift(13_000, "ann")[0][1]["report"]
    # Sold 45.97 at shelf prices; rounding -2 + 2 - 2 = -2; cash 45.95 in the drawer.
    assert report["sales"]["total"] == 4597
    assert report["sales"]["rounding"] == -2
    assert report["cash"]["sales"] == 4595
    assert report["cash"]["expected"] == 10_000 + 4595
    assert report["cash"]["over_short"] == 13_000 - 14_595


def test_a_sale_holds_at_most_500_lines(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    run(till, till.open_sale("s", "ann"))
    for n in range(500):
        run(till, till.add_line("s", f"l{n}", sale_items["stamp"], 1))
    with pytest.raises(Conflict) as err:
        till.add_line("s", "l500", sale_items["stamp"], 1)
    assert err.value.code == "too_many_lines"
    assert till.due(till.state.sales["s"]) == 500 * 95


def test_an_odd_cash_amount_inside_the_rounding_window_settles_exactly(
    new_till: Callable[..., Till], sell: Callable[..., dict[str, Any]]
) -> None:
    # CHF-style till: coins of 5. Due 15.33 (cash due 15.35); the cashier keys 15.34.
    till = new_till(cash_increment=5)
    item = Item("odd", "Odd price", 1533, "standard")
    done = sell(till, "s-odd", {"l1": (item, 1)}, [("cash", {"tendered": 1534})])
    assert (done["paid"], done["rounding"], done["change"]) == (1534, 1, 0)
    assert done["paid"] == done["total"] + done["rounding"]


def test_weights_with_trailing_zeros_are_accepted() -> None:
    # A scale that always sends 4 decimals: 0.4520 kg is 452 g.
    assert parse_quantity("0.4520", "kg") == Decimal("0.452")
    with pytest.raises(Invalid):
        parse_quantity("0.4521", "kg")


def test_card_receipt_lines_are_kept_with_card_numbers_masked(
    till: Till, run: Run, sale_items: dict[str, Item]
) -> None:
    open_with(till, run, "s", (sale_items["wine"], 1))
    full = "6" + "7" * 16 + "3"  # 18 digits, built at run time
    card = {"masked_pan": "############1234", "receipt_lines": ["girocard", f"PAN {full}"]}
    events = till.add_payment("s", "p1", "card", card=card)
    kept = events[0][1]["card"]["receipt_lines"]
    assert kept == ["girocard", "PAN 677777********7773"]
