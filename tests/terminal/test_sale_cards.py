# purpose: the card-terminal decisions of the pure sale domain and the recovery matching rules.
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from terminal.payments import Booking, Seen, judge
from terminal.sale import Conflict, Invalid, Item, Till
from terminal.sale.till import CardOp, Event

Run = Callable[[Till, Sequence[Event]], list[Event]]
TERMINAL = {"terminal_id": "52500001", "last": {"receipt": 7, "trace": 20, "amount": 500}}
TERMINAL |= {"expected_receipt": 8}
CARD = {
    "brand": "Visa",
    "card_type": 10,
    "masked_pan": "476173******0119",
    "auth_code": "123456",
    "trace": 21,
    "receipt": 8,
    "terminal_id": "52500001",
    "offline": False,
}


def luhn_number(length: int = 16) -> str:
    """A card-number-shaped digit string that passes Luhn, made up at run time."""
    digits = [4] + [random.randrange(10) for _ in range(length - 2)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c)
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d
    return total % 10 == 0


@pytest.fixture
def till(new_till: Callable[..., Till]) -> Till:
    return new_till()


def open_sale(till: Till, run: Run, items: dict[str, Item], sale_id: str = "s1") -> str:
    run(till, till.open_sale(sale_id, "ann"))
    run(till, till.add_line(sale_id, "l1", items["wine"], 1))
    run(till, till.add_line(sale_id, "l2", items["bread"], 2))
    return sale_id


def code_of(call: Callable[[], Any]) -> str:
    with pytest.raises((Conflict, Invalid)) as err:
        call()
    return err.value.code


def test_intent_then_result_then_booking_completes_the_sale(
    till: Till, run: Run, sale_items: dict[str, Item]
) -> None:
    sale = open_sale(till, run, sale_items)
    due = till.due(till.sale(sale))
    (intent,) = run(till, till.card_payment_intent(sale, "p1", None, TERMINAL))
    assert intent == (
        "payment.intent",
        {
            "payment_id": "p1",
            "kind": "payment",
            "sale_id": sale,
            "amount": due,
            "currency": "EUR",
            "terminal": TERMINAL,
        },
    )
    run(till, till.card_result("p1", {"outcome": "approved", "result_code": 0, "card": CARD}))
    assert till.state.card_ops["p1"].state == "result_received"
    lines = ["PAYMENT", f"Card {luhn_number()}", "APPROVED"]
    events = run(till, till.card_done("p1", CARD | {"receipt_lines": lines}))
    assert [t for t, _ in events] == ["sale.payment_added", "sale.completed"]
    kept = events[0][1]["card"]
    assert kept["receipt"] == 8 and kept["card_type"] == 10
    # A full card number in the terminal's receipt text is masked to first 6 / last 4.
    assert not any(
        luhn_ok(w) for line in kept["receipt_lines"] for w in line.split() if w.isdigit()
    )
    assert "*" in kept["receipt_lines"][1]
    assert till.state.card_ops == {} and sale not in till.state.sales


def test_a_running_payment_locks_the_sale(
    till: Till, run: Run, sale_items: dict[str, Item]
) -> None:
    sale = open_sale(till, run, sale_items)
    run(till, till.card_payment_intent(sale, "p1", 100, TERMINAL))
    locked = [
        lambda: till.add_line(sale, "l3", sale_items["milk"], 1),
        lambda: till.add_payment(sale, "cash-1", "cash", tendered=10_000),
        lambda: till.complete(sale),
        lambda: till.void(sale, "gone", "ann", "mgr"),
        lambda: till.card_payment_intent(sale, "p2", None, TERMINAL),
    ]
    assert {code_of(c) for c in locked} == {"payment_in_progress"}
    assert code_of(lambda: till.close_shift(0, "ann")) == "card_ops_pending"
    run(till, till.card_failed("p1", "declined", 5, "Card declined.", "terminal"))
    assert till.state.card_ops == {}
    run(till, till.add_payment(sale, "cash-1", "cash", tendered=100_000))
    assert sale not in till.state.sales


def test_intent_checks_the_amount(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    run(till, till.open_sale("empty", "ann"))
    assert code_of(lambda: till.card_payment_intent("empty", "p", None, TERMINAL)) == "empty_sale"
    sale = open_sale(till, run, sale_items)
    due = till.due(till.sale(sale))
    over = code_of(lambda: till.card_payment_intent(sale, "p", due + 1, TERMINAL))
    assert over == "card_over_due"
    assert code_of(lambda: till.card_payment_intent(sale, "p", 0, TERMINAL)) == "bad_amount"


def test_review_blocks_until_a_manager_resolves(
    till: Till, run: Run, sale_items: dict[str, Item]
) -> None:
    sale = open_sale(till, run, sale_items)
    run(till, till.card_payment_intent(sale, "p1", None, TERMINAL))
    run(till, till.card_needs_review("p1", "mismatch", "unclear", {"amount": 1, **CARD}))
    op = till.state.card_ops["p1"]
    assert op.state == "needs_review" and op.review is not None
    assert op.review["terminal"]["receipt"] == 8
    assert code_of(lambda: till.add_payment(sale, "c", "cash", amount=1)) == "payment_needs_review"
    no_card = code_of(lambda: till.resolve_card_op("p1", "paid", "mgr", ""))
    assert no_card == "bad_resolution"
    assert code_of(lambda: till.resolve_card_op("p1", "maybe", "mgr", "")) == "bad_resolution"
    events = run(till, till.resolve_card_op("p1", "paid", "mgr", "checked", CARD))
    assert [t for t, _ in events] == ["payment.resolved", "sale.payment_added", "sale.completed"]
    assert events[0][1]["decision"] == "paid" and events[0][1]["approved_by"] == "mgr"
    assert till.state.card_ops == {}


def test_only_a_review_can_be_resolved(till: Till, run: Run, sale_items: dict[str, Item]) -> None:
    sale = open_sale(till, run, sale_items)
    run(till, till.card_payment_intent(sale, "p1", None, TERMINAL))
    assert code_of(lambda: till.resolve_card_op("p1", "not_paid", "m", "")) == "not_in_review"


def test_reversal_gives_the_card_payment_back_before_the_void(
    till: Till, run: Run, sale_items: dict[str, Item]
) -> None:
    sale = open_sale(till, run, sale_items)
    run(till, till.card_payment_intent(sale, "p1", 100, TERMINAL))
    run(till, till.card_done("p1", CARD))
    assert code_of(lambda: till.void(sale, "gone", "ann", "mgr")) == "card_paid"
    (intent,) = run(till, till.card_reversal_intent(sale, "r1", "p1", TERMINAL))
    assert intent[1]["reversal"] == {"original_payment_id": "p1", "receipt": 8}
    reversal_card = CARD | {"receipt": 9, "trace": 22}
    (reversed_,) = run(till, till.card_done("r1", reversal_card))
    assert reversed_[0] == "payment.reversed"
    assert till.sale(sale).payments == []
    ((kind, data),) = run(till, till.void(sale, "gone", "ann", "mgr"))
    assert kind == "sale.voided"
    assert data["reversed"] == [{"payment_id": "p1", "amount": 100, "card": reversal_card}]


def test_reversal_needs_the_terminals_receipt(
    till: Till, run: Run, sale_items: dict[str, Item]
) -> None:
    sale = open_sale(till, run, sale_items)
    run(till, till.add_payment(sale, "p0", "card", amount=100, card={"brand": "Visa"}))
    no_receipt = code_of(lambda: till.card_reversal_intent(sale, "r", "p0", TERMINAL))
    assert no_receipt == "no_card_receipt"


def test_refund_to_card_through_the_terminal(
    till: Till, run: Run, sell: Callable[..., dict[str, Any]], sale_items: dict[str, Item]
) -> None:
    lines = {"l1": (sale_items["wine"], 1), "l2": (sale_items["coffee"], 1)}
    original = sell(till, "s9", lines, [("card", {"card": CARD})])
    (intent,) = run(
        till,
        till.card_refund_intent(original, [], "rf1", "op1", {"l1": 1}, "broken", "ann", "mgr", {}),
    )
    assert intent[1]["kind"] == "refund" and intent[1]["amount"] == 1190
    assert intent[1]["refund"]["original_payment_id"] == "s9-p1"
    again = code_of(lambda: till.refund(original, [], "rf2", None, "cash", "x", "ann", "mgr"))
    assert again == "payment_in_progress"
    refund_card = CARD | {"receipt": 10, "receipt_lines": ["REFUND"]}
    ((kind, data),) = run(till, till.card_done("op1", refund_card, original, []))
    assert kind == "sale.refunded" and data["payment_op"] == "op1"
    (tender,) = data["payments"]
    assert tender["card_refund"]["receipt"] == 10 and tender["amount"] == 1190
    assert till.state.card_ops == {}


def test_refund_to_two_cards_is_refused(
    till: Till, run: Run, sell: Callable[..., dict[str, Any]], sale_items: dict[str, Item]
) -> None:
    original = sell(
        till,
        "s8",
        {"l1": (sale_items["wine"], 2)},
        [("card", {"amount": 1190, "card": CARD}), ("card", {"card": CARD | {"receipt": 9}})],
    )
    refused = code_of(
        lambda: till.card_refund_intent(original, [], "r", "op", None, "x", "ann", "m", {})
    )
    assert refused == "refund_several_cards"


def test_settlement_lists_each_difference(till: Till) -> None:
    def side(visa: tuple[int, int], giro: tuple[int, int], last: int) -> dict[str, Any]:
        return {
            "receipt_from": 1,
            "receipt_to": last,
            "brands": [
                {"name": "girocard", "count": giro[0], "total": giro[1]},
                {"name": "Visa", "count": visa[0], "total": visa[1]},
            ],
        }

    ((_, even),) = till.settle_batch(
        "b1", side((2, 300), (1, 50), 3), side((2, 300), (1, 50), 3), "m"
    )
    assert even["balanced"] and even["differences"] == [] and even["receipts_match"]
    ((_, odd),) = till.settle_batch(
        "b2", side((3, 450), (1, 50), 4), side((2, 300), (1, 50), 3), "m"
    )
    assert not odd["balanced"] and not odd["receipts_match"]
    assert odd["differences"] == [
        {
            "brand": "Visa",
            "terminal": {"count": 3, "total": 450},
            "journal": {"count": 2, "total": 300},
            "count": 1,
            "total": 150,
        }
    ]


# -- recovery matching (terminal/payments.py `judge`) ---------------------------------------


def op(result: dict[str, Any] | None = None, terminal: dict[str, Any] = TERMINAL) -> CardOp:
    intent = {"payment_id": "p", "kind": "payment", "sale_id": "s", "amount": 1190}
    card_op = CardOp("p", "payment", "s", 1190, intent | {"terminal": terminal})
    if result is not None:
        card_op.state, card_op.result = "result_received", result
    return card_op


def booking(receipt: int, trace: int, amount: int = 1190, tid: str = "52500001") -> Seen:
    card = CARD | {"receipt": receipt, "trace": trace, "receipt_lines": ["*** COPY ***"]}
    return Seen("booking", Booking(receipt, trace, amount, tid, card))


APPROVED = {"outcome": "approved", "result_code": 0, "card": CARD}


@pytest.mark.parametrize(
    ("card_op", "seen", "decision"),
    [
        (op(), booking(7, 20, 500), "not_paid"),  # still the booking from before
        (op(), booking(8, 21), "paid"),  # the very next receipt, our amount
        (op(), booking(8, 21, amount=1191), "review"),
        (op(), booking(9, 22), "review"),  # one more booking than expected
        (op(), booking(8, 21, tid="99999999"), "review"),  # another terminal
        (op(), Seen("none"), "review"),  # it had a booking before
        (op(terminal=TERMINAL | {"last": None}), Seen("none"), "not_paid"),
        (op(terminal=TERMINAL | {"last": None}), booking(1, 1), "paid"),
        (op(terminal={"terminal_id": None}), booking(8, 21), "review"),  # last never known
        (op(APPROVED), booking(8, 21), "paid"),
        (op(APPROVED), booking(7, 20, 500), "not_paid"),  # reversed: result unacknowledged
        (op(APPROVED), booking(8, 99), "review"),  # same receipt, other trace
        (op({"outcome": "declined", "result_code": 5, "message": "No."}), Seen("none"), "not_paid"),
        (op(), Seen("unclear", detail="cannot connect"), "review"),
        (op(APPROVED), Seen("unclear"), "review"),
    ],
)
def test_recovery_rules(card_op: CardOp, seen: Seen, decision: str) -> None:
    verdict = judge(card_op, seen)
    assert verdict.decision == decision, verdict
    if decision == "paid":
        assert verdict.card is not None and verdict.card["receipt_lines"] == ["*** COPY ***"]
        assert verdict.card["receipt"] == (seen.booking.receipt if seen.booking else None)
