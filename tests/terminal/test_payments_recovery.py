# purpose: kill -9 after each step of a card payment; after a restart it is paid once or not at all.
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hwsim.zvt import ZvtSimulator

from terminal.demo.run import free_port
from tests.terminal.payment_helpers import Till, new_sim

# Where the daemon dies, and what the terminal and the journal must agree on afterwards.
OUTCOME = {
    "payment.intent": "not_paid",  # journaled, 06 01 never sent
    "payment.result_received": "not_paid",  # result journaled, not acknowledged: reversed
    "payment.acknowledged": "paid",  # the terminal booked it, the till has not recorded it
    "sale.payment_added": "paid",  # recorded: nothing left to do
    "payment.failed": "not_paid",  # a decline, recorded
}
# Every step over TCP; over the pty the step where the terminal is still waiting for our
# acknowledgement when the restarted till calls (the others are the same, in the soak run).
CASES = [pytest.param(step, "tcp", id=f"tcp-{step}") for step in OUTCOME] + [
    pytest.param(
        step,
        "pty",
        id=f"pty-{step}",
        marks=() if step == "payment.result_received" else pytest.mark.soak,
    )
    for step in OUTCOME
]


@pytest.fixture
def sims() -> Iterator[list[ZvtSimulator]]:
    made: list[ZvtSimulator] = []
    yield made
    for sim in made:
        sim.stop()
        assert not sim.card_data_requested


def crash_run(till: Till, step: str, decline: bool = False) -> str:
    """Open a sale and pay it by card on a daemon set to die after `step`; the sale id."""
    sale = till.sale()
    if decline:  # otherwise the simulator approves with its default card, a Visa
        till.sim.decline(0x05)
    with contextlib.suppress(httpx.HTTPError):  # the answer may not make it out
        till.c.post(f"/sales/{sale}/payments/card", json={})
    assert till.wait_exit() == 137
    till.stop()
    return sale


def intent_of(till: Till, sale_id: str) -> str:
    (intent,) = [e for e in till.events(("payment.intent",)) if e["data"]["sale_id"] == sale_id]
    payment_id: str = intent["data"]["payment_id"]
    return payment_id


def sale_bookings(sim: ZvtSimulator, skip: set[int]) -> list[Any]:
    return [b for b in sim.batch if b.kind == "sale" and b.receipt not in skip]


@pytest.mark.parametrize(("step", "mode"), CASES)
def test_kill_after_each_step_pays_once_or_not_at_all(
    tmp_path: Path, sims: list[ZvtSimulator], step: str, mode: str
) -> None:
    sims.append(sim := new_sim(mode, default_card="visa"))
    till = Till(tmp_path, sim)
    # The first payment goes through; the daemon dies after `step` of the second (a decline
    # is the first to fail).
    till.start(crash_after=step if step == "payment.failed" else f"{step}@2")
    try:
        first = till.sale()
        till.wait(till.pay_card(first))
        earlier = {b.receipt for b in sim.batch}
        sale = crash_run(till, step, decline=step == "payment.failed")

        till.start()
        pid = intent_of(till, sale)
        view = till.wait(pid)
        now = till.c.get(f"/sales/{sale}").json()
        added = [e for e in till.events(("sale.payment_added",)) if e["data"]["sale_id"] == sale]
        booked = sale_bookings(sim, earlier)
        if OUTCOME[step] == "paid":
            assert view["state"] == "approved", view
            assert now["status"] == "completed"
            (payment,) = now["payments"]
            (booking,) = booked
            assert (payment["card"]["receipt"], payment["amount"]) == (
                booking.receipt,
                booking.amount,
            )
            assert len(added) == 1
        else:
            assert view["state"] == "failed", view
            assert now["status"] == "open" and now["payments"] == []
            assert booked == [] and added == []
            r = till.c.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 99999})
            assert r.json()["status"] == "completed"
        assert till.journal_ok()
    finally:
        till.stop()


def test_kill_after_review_then_manager_records_it_as_paid(
    tmp_path: Path, sims: list[ZvtSimulator]
) -> None:
    sims.append(sim := new_sim("tcp", default_card="visa"))
    till = Till(tmp_path, sim)
    try:
        till.start(crash_after="payment.acknowledged")
        sale = crash_run(till, "payment.acknowledged")
        booking = sim.last_booking
        assert booking is not None

        # Back up while the terminal cannot be reached: unclear, so a manager must decide;
        # and the daemon dies again right after recording that.
        till.start(
            crash_after="payment.needs_review", port=str(free_port()), recovery_timeout_s="1"
        )
        assert till.wait_exit() == 137
        till.stop()

        till.start()
        pid = intent_of(till, sale)
        (waiting,) = till.c.get("/payments/review").json()["payments"]
        assert waiting["payment_id"] == pid and waiting["state"] == "needs_review"
        assert waiting["review"]["reason"] == "terminal_unreachable"
        blocked = till.c.post(f"/sales/{sale}/payments", json={"method": "cash", "amount": 100})
        assert blocked.status_code == 409
        assert blocked.json()["error"]["code"] == "payment_needs_review"
        assert till.c.post(f"/payments/{pid}/resolve", json={"decision": "paid"}).status_code == 403
        no_data = till.m.post(f"/payments/{pid}/resolve", json={"decision": "paid"})
        assert no_data.json()["error"]["code"] == "bad_resolution"

        r = till.m.post(
            f"/payments/{pid}/resolve",
            json={
                "decision": "paid",
                "card": {"receipt": booking.receipt, "trace": booking.trace},
                "note": "receipt 2 on the terminal's journal",
            },
        )
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["decision"]) == ("resolved", "paid")
        done = till.c.get(f"/sales/{sale}").json()
        assert done["status"] == "completed"
        (payment,) = done["payments"]
        assert payment["card"]["receipt"] == booking.receipt
        assert payment["card"]["masked_pan"] == "476173******0119"  # from the journaled result
        assert [b.receipt for b in sim.batch] == [booking.receipt]
        again = till.m.post(f"/payments/{pid}/resolve", json={"decision": "not_paid"})
        assert again.json()["error"]["code"] == "unknown_payment"
        assert till.journal_ok()
    finally:
        till.stop()


def test_end_of_day_shows_a_payment_the_journal_does_not_have(
    tmp_path: Path, sims: list[ZvtSimulator]
) -> None:
    sims.append(sim := new_sim("tcp", default_card="visa"))
    till = Till(tmp_path, sim)
    try:
        till.start(crash_after="payment.acknowledged@2")
        first = till.sale()
        sim.approve("girocard")
        assert till.wait(till.pay_card(first))["state"] == "approved"
        sale = crash_run(till, "payment.acknowledged")  # the terminal booked a Visa payment

        # The terminal is away: the payment goes to review.
        till.start(port=str(free_port()), recovery_timeout_s="1")
        pid = intent_of(till, sale)
        assert till.wait(pid)["state"] == "needs_review"
        # ...and a manager wrongly decides it was not paid; the customer pays cash.
        r = till.m.post(f"/payments/{pid}/resolve", json={"decision": "not_paid"})
        assert r.status_code == 200
        r = till.c.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 99999})
        assert r.json()["status"] == "completed"
        till.stop()

        till.start()
        r = till.m.post("/payments/end-of-day")
        assert r.status_code == 200, r.text
        settled = r.json()
        assert settled["balanced"] is False
        (diff,) = settled["differences"]
        visa = sim_total = next(b for b in settled["terminal"]["brands"] if b["name"] == "Visa")
        assert diff["brand"] == "Visa"
        assert diff["terminal"] == {"count": 1, "total": sim_total["total"]}
        assert diff["journal"] == {"count": 0, "total": 0}
        assert (diff["count"], diff["total"]) == (1, visa["total"])
        assert settled["receipts_match"] is False
        assert (settled["terminal"]["receipt_from"], settled["terminal"]["receipt_to"]) == (1, 2)
        assert (settled["journal"]["receipt_from"], settled["journal"]["receipt_to"]) == (1, 1)
        assert settled["summary"].startswith("Differences: Visa: terminal 1 for")
        (event,) = till.events(("payment.batch_settled",))
        assert event["data"]["differences"] == settled["differences"]
        assert event["data"]["approved_by"] == "mia"
    finally:
        till.stop()


def test_kill_mid_refund_to_card_refunds_once(tmp_path: Path, sims: list[ZvtSimulator]) -> None:
    sims.append(sim := new_sim("tcp", default_card="visa"))
    till = Till(tmp_path, sim)
    try:
        till.start(crash_after="payment.acknowledged@2")
        sale = till.sale()
        assert till.wait(till.pay_card(sale))["state"] == "approved"
        with contextlib.suppress(httpx.HTTPError):
            till.m.post(f"/sales/{sale}/refunds", json={"reason": "wrong size"})
        assert till.wait_exit() == 137
        till.stop()

        till.start()
        (intent,) = [e for e in till.events(("payment.intent",)) if e["data"]["kind"] == "refund"]
        assert till.wait(intent["data"]["payment_id"])["state"] == "approved"
        (refund,) = till.c.get(f"/sales/{sale}").json()["refunds"]
        assert refund["payments"][0]["card_refund"]["receipt"] == sim.batch[-1].receipt
        assert [b.kind for b in sim.batch] == ["sale", "refund"]
    finally:
        till.stop()


def test_kill_mid_void_reverses_once(tmp_path: Path, sims: list[ZvtSimulator]) -> None:
    sims.append(sim := new_sim("pty"))
    till = Till(tmp_path, sim)
    try:
        till.start(crash_after="payment.acknowledged@2")
        sale = till.sale(skus=2)
        due = till.c.get(f"/sales/{sale}").json()["due"]
        assert till.wait(till.pay_card(sale, amount=due - 1))["state"] == "approved"
        with contextlib.suppress(httpx.HTTPError):
            till.m.post(f"/sales/{sale}/void", json={"reason": "customer left"})
        assert till.wait_exit() == 137
        till.stop()

        till.start()
        (intent,) = [e for e in till.events(("payment.intent",)) if e["data"]["kind"] == "reversal"]
        assert till.wait(intent["data"]["payment_id"])["state"] == "approved"
        assert [(b.kind, b.reversed) for b in sim.batch] == [("sale", True), ("reversal", False)]
        # The reversal is settled; the void itself was never journaled: do it again.
        still = till.c.get(f"/sales/{sale}").json()
        assert still["status"] == "open" and still["payments"] == []
        r = till.m.post(f"/sales/{sale}/void", json={"reason": "customer left"})
        assert r.status_code == 200 and r.json()["status"] == "voided"
        assert r.json()["reversed"][0]["amount"] == due - 1
    finally:
        till.stop()


@pytest.mark.soak
def test_kill_soak_random_steps(tmp_path: Path, sims: list[ZvtSimulator]) -> None:
    """Many rounds of a kill at a random step; every sale ends paid once or not at all."""
    sims.append(sim := new_sim("tcp", default_card="visa"))
    till = Till(tmp_path, sim)
    rng = random.Random(20261127)
    sales: list[str] = []
    try:
        for _ in range(30):
            till.start()  # settles what the last kill left, before the next one
            for sale in sales:
                till.wait(intent_of(till, sale))
            till.stop()
            step = rng.choice(list(OUTCOME))
            till.start(crash_after=step)
            sales.append(crash_run(till, step, decline=step == "payment.failed"))
        till.start()
        receipts = []
        for sale in sales:
            view = till.wait(intent_of(till, sale))
            now = till.c.get(f"/sales/{sale}").json()
            if view["state"] == "approved":
                (payment,) = now["payments"]
                receipts.append(payment["card"]["receipt"])
            else:
                assert view["state"] == "failed" and now["payments"] == []
        assert sorted(receipts) == sorted(b.receipt for b in sim.batch if b.kind == "sale")
        assert till.journal_ok()
    finally:
        till.stop()
