# purpose: card payments end to end: the real daemon driving the ZVT simulator over TCP and a pty.
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hwsim.zvt import ZvtSimulator

from tests.conftest import Daemon
from tests.terminal.payment_helpers import Till, new_sim, running

VISA_PAN = "476173******0119"


@pytest.fixture(scope="module", params=["tcp", "pty"])
def sim(request: pytest.FixtureRequest) -> Iterator[ZvtSimulator]:
    simulator = new_sim(request.param)
    yield simulator
    simulator.stop()
    # Whatever happened, the till never asked for card data (06 C0, track data, CVV).
    assert not simulator.card_data_requested
    assert all(raw[:2] != b"\x06\xc0" for raw in simulator.received)


@pytest.fixture(scope="module")
def till(sim: ZvtSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Till]:
    with running(tmp_path_factory.mktemp(f"pay-{sim.mode}"), sim) as t:
        yield t


def by_receipt(sim: ZvtSimulator, receipt: int) -> list[Any]:
    return [b for b in sim.batch if b.receipt == receipt]


def types_of(till: Till, payment_id: str) -> list[str]:
    return [
        e["type"]
        for e in till.events()
        if payment_id in (e["data"].get("payment_id"), e["data"].get("payment_op"))
    ]


def test_approval_completes_the_sale_with_the_terminals_receipt(till: Till) -> None:
    sale = till.sale(skus=2)
    due = till.c.get(f"/sales/{sale}").json()["due"]
    till.sim.approve("visa")
    pid = till.pay_card(sale)
    view = till.wait(pid)
    assert view["state"] == "approved", view
    assert view["card"]["masked_pan"] == VISA_PAN

    done = till.c.get(f"/sales/{sale}").json()
    assert done["status"] == "completed" and done["paid"] == due
    (payment,) = done["payments"]
    card = payment["card"]
    assert (payment["method"], payment["amount"], payment["payment_id"]) == ("card", due, pid)
    assert (card["brand"], card["masked_pan"], card["card_type"]) == ("Visa", VISA_PAN, 10)
    assert card["terminal_id"] == "52500001" and card["offline"] is False
    assert card["auth_code"].isdigit() and isinstance(card["trace"], int)
    (booking,) = by_receipt(till.sim, card["receipt"])
    assert (booking.kind, booking.amount, booking.trace) == ("sale", due, card["trace"])

    receipt = till.c.get(f"/sales/{sale}/receipt").json()
    lines = receipt["card_receipt_lines"]
    assert lines[0] == "Tillbox Simulated Terminal" and lines[-1] == "APPROVED"
    assert f"Card {VISA_PAN}" in lines
    # Each step was journaled before the next: intent, result, then the payment and sale.
    assert types_of(till, pid) == [
        "payment.intent",
        "payment.result_received",
        "sale.payment_added",
    ]
    assert till.journal_ok()


def test_decline_shows_the_reason_and_leaves_the_sale_open_for_cash(till: Till) -> None:
    sale = till.sale()
    till.sim.decline(0x33)
    pid = till.pay_card(sale)
    view = till.wait(pid)
    assert view["state"] == "failed"
    assert (view["outcome"], view["result_code"]) == ("declined", 0x33)
    assert view["message"] == (
        "Card declined: not enough funds. Ask for another card or payment method."
    )
    assert types_of(till, pid) == ["payment.intent", "payment.result_received", "payment.failed"]
    open_sale = till.c.get(f"/sales/{sale}").json()
    assert open_sale["status"] == "open" and open_sale["payments"] == []
    r = till.c.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 100000})
    assert r.status_code == 201 and r.json()["status"] == "completed"


def test_customer_cancel_at_the_terminal(till: Till) -> None:
    sale = till.sale()
    till.sim.customer_cancel()
    view = till.wait(till.pay_card(sale))
    assert (view["state"], view["outcome"], view["result_code"]) == ("failed", "aborted", 0x6C)
    assert "cancelled" in view["message"]
    assert till.c.get(f"/sales/{sale}").json()["status"] == "open"


def test_terminal_that_stops_answering_is_checked_then_not_charged(till: Till) -> None:
    sale = till.sale()
    booked = len(till.sim.batch)
    till.sim.stop_answering()
    view = till.wait(till.pay_card(sale))
    assert view["state"] == "failed"
    assert view["message"].startswith("The terminal stopped answering.")
    assert "nothing was charged" in view["message"]
    assert len(till.sim.batch) == booked
    till.sim.approve()
    assert till.wait(till.pay_card(sale))["state"] == "approved"  # the link came back


def test_terminal_power_loss_before_approval_charges_nothing(till: Till) -> None:
    sale = till.sale()
    booked = len(till.sim.batch)
    till.sim.power_loss_before_approval()
    view = till.wait(till.pay_card(sale))
    assert view["state"] == "failed" and "nothing was charged" in view["message"]
    assert len(till.sim.batch) == booked
    assert till.c.get(f"/sales/{sale}").json()["payments"] == []


def test_terminal_power_loss_after_approval_is_found_by_repeat_receipt(till: Till) -> None:
    sale = till.sale()
    till.sim.power_loss_after_approval("mastercard")
    pid = till.pay_card(sale)
    view = till.wait(pid)
    assert view["state"] == "approved", view
    booking = till.sim.last_booking
    assert booking is not None
    done = till.c.get(f"/sales/{sale}").json()
    assert done["status"] == "completed"
    card = done["payments"][0]["card"]
    assert (card["receipt"], card["trace"], card["brand"]) == (
        booking.receipt,
        booking.trace,
        "Mastercard",
    )
    assert card["receipt_lines"][0] == "*** COPY ***"
    # Recovered without a result: intent, then the payment as the terminal booked it.
    assert types_of(till, pid) == ["payment.intent", "sale.payment_added"]
    assert len(by_receipt(till.sim, booking.receipt)) == 1


def test_offline_approval_is_marked(till: Till) -> None:
    sale = till.sale()
    till.sim.offline_approval()
    till.wait(till.pay_card(sale))
    card = till.c.get(f"/sales/{sale}").json()["payments"][0]["card"]
    assert card["offline"] is True and "OFFLINE APPROVED" in card["receipt_lines"]


def test_cashier_aborts_a_running_payment(till: Till) -> None:
    sale = till.sale()
    till.sim.step_delay = 0.3
    try:
        pid = till.pay_card(sale)
        till.wait(pid, ("in_progress",))
        r = till.c.post(f"/payments/{pid}/abort")
        assert r.status_code == 202 and r.json()["abort_requested"] is True
        view = till.wait(pid)
    finally:
        till.sim.step_delay = 0.005
    assert (view["state"], view["outcome"]) == ("failed", "aborted")
    again = till.c.post(f"/payments/{pid}/abort")
    assert again.status_code == 409 and again.json()["error"]["code"] == "payment_not_running"


def test_sale_is_locked_and_terminal_busy_while_a_payment_runs(till: Till) -> None:
    sale, other = till.sale(), till.sale()
    till.sim.step_delay = 0.3
    try:
        pid = till.pay_card(sale)
        till.wait(pid, ("in_progress",))
        items = till.c.get("/catalog/items").json()["items"]
        line = till.c.post(f"/sales/{sale}/lines", json={"sku": items[0]["sku"]})
        assert line.json()["error"]["code"] == "payment_in_progress"
        cash = till.c.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 99999})
        assert cash.json()["error"]["code"] == "payment_in_progress"
        busy = till.c.post(f"/sales/{other}/payments/card", json={})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "terminal_busy"
        assert till.wait(pid)["state"] == "approved"
    finally:
        till.sim.step_delay = 0.005


def test_idempotency_key_starts_one_payment(till: Till) -> None:
    sale = till.sale()
    first = till.pay_card(sale, key="card-once")
    again = till.pay_card(sale, key="card-once")
    assert first == again
    assert till.wait(first)["state"] == "approved"
    assert till.pay_card(sale, key="card-once") == first  # also once it is done
    intents = [e for e in till.events(("payment.intent",)) if e["data"]["sale_id"] == sale]
    assert len(intents) == 1


def test_refund_goes_back_to_the_card(till: Till) -> None:
    sale = till.sale(skus=2)
    till.sim.approve("girocard")
    till.wait(till.pay_card(sale))
    lines = till.c.get(f"/sales/{sale}").json()["lines"]
    one = lines[0]
    r = till.m.post(
        f"/sales/{sale}/refunds",
        json={"lines": [{"line_id": one["line_id"], "quantity": 1}], "reason": "broken"},
    )
    assert r.status_code == 202, r.text
    refund_pid = r.json()["payment_id"]
    assert r.json()["kind"] == "refund"
    assert till.wait(refund_pid)["state"] == "approved"
    (refund,) = till.c.get(f"/sales/{sale}").json()["refunds"]
    (pay_back,) = refund["payments"]
    assert pay_back["method"] == "card" and pay_back["amount"] == one["amount"]
    back = pay_back["card_refund"]
    assert back["masked_pan"] == "672559********4711"
    assert "REFUND" in back["receipt_lines"]
    (booking,) = by_receipt(till.sim, back["receipt"])
    assert (booking.kind, booking.amount) == ("refund", one["amount"])
    assert refund["payment_op"] == refund_pid


def test_void_reverses_the_card_part_payment(till: Till) -> None:
    sale = till.sale(skus=2)
    due = till.c.get(f"/sales/{sale}").json()["due"]
    till.sim.approve("visa")
    card_pid = till.pay_card(sale, amount=due - 10)
    assert till.wait(card_pid)["state"] == "approved"
    receipt = till.c.get(f"/sales/{sale}").json()["payments"][0]["card"]["receipt"]
    r = till.m.post(f"/sales/{sale}/void", json={"reason": "customer changed their mind"})
    assert r.status_code == 202, r.text
    (reversal,) = r.json()["reversals"]
    assert till.wait(reversal["payment_id"])["state"] == "approved"
    deadline = time.monotonic() + 10
    while (view := till.c.get(f"/sales/{sale}").json())["status"] != "voided":
        assert time.monotonic() < deadline, view
        time.sleep(0.05)
    (back,) = view["reversed"]
    assert (back["payment_id"], back["amount"]) == (card_pid, due - 10)
    (original,) = by_receipt(till.sim, receipt)
    assert original.reversed
    assert [b.kind for b in till.sim.batch if b.receipt == back["card"]["receipt"]] == ["reversal"]


def test_events_stream_shows_the_terminals_prompts(till: Till) -> None:
    assert till.daemon is not None
    token = till.c.headers["Authorization"].removeprefix("Bearer ")
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream(
            "GET", f"{till.daemon.url}/api/v1/events", params={"token": token}, timeout=10
        ) as stream:
            ready.set()
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:]))
                    if seen[-1].get("state") == "approved":
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    sale = till.sale()
    till.wait(till.pay_card(sale))
    thread.join(10)
    prompts = [m for m in seen if m["type"] == "payment"]
    texts = [m["text"] for m in prompts if m["state"] == "in_progress"]
    assert "Insert card" in texts and "Please watch PIN pad" in texts
    assert prompts[0]["state"] == "started"
    assert prompts[-1]["state"] == "approved"


def test_end_of_day_balanced_per_brand(till: Till) -> None:
    till.m.post("/payments/end-of-day")  # start from an empty batch
    for card in ("visa", "girocard", "visa"):
        till.sim.approve(card)
        till.wait(till.pay_card(till.sale()))
    r = till.m.post("/payments/end-of-day")
    assert r.status_code == 200, r.text
    settled = r.json()
    assert settled["balanced"] is True and settled["differences"] == []
    brands = {b["name"]: (b["count"], b["total"]) for b in settled["terminal"]["brands"]}
    assert brands["Visa"][0] == 2 and brands["girocard"][0] == 1
    assert settled["journal"]["brands"] == settled["terminal"]["brands"]
    assert settled["summary"].startswith("Balanced: the terminal and the till agree on 3")
    (event,) = [
        e
        for e in till.events(("payment.batch_settled",))
        if e["data"]["settlement_id"] == settled["settlement_id"]
    ]
    assert event["data"]["terminal"] == settled["terminal"]
    assert till.sim.batch == []


def test_end_of_day_needs_a_manager(till: Till) -> None:
    r = till.c.post("/payments/end-of-day")
    assert r.status_code == 403 and r.json()["error"]["code"] == "manager_required"


def test_unreadable_result_is_refused_and_not_charged(till: Till) -> None:
    sale = till.sale()
    booked = len(till.sim.batch)
    till.sim.garble_next_status()
    view = till.wait(till.pay_card(sale))
    assert view["state"] == "failed" and "nothing was charged" in view["message"]
    assert len(till.sim.batch) == booked
    assert any("auto-reversal" in e for e in till.sim.events)


def test_corrupt_frames_and_nak_storms_do_not_stop_the_till(till: Till) -> None:
    if till.sim.mode != "pty":
        pytest.skip("CRC, NAK and stray bytes exist only on the serial line")
    sale = till.sale()
    till.sim.corrupt_next(2)
    till.sim.garbage_next(b"\x00\xff\x10\x99junk\x10")
    assert till.wait(till.pay_card(sale))["state"] == "approved"
    assert till.sim.pending_faults["corrupt"] == 0

    sale = till.sale()
    till.sim.nak_next(3)  # the authorisation itself is refused three times
    view = till.wait(till.pay_card(sale))
    assert view["state"] == "failed" and "did not reach the card terminal" in view["message"]
    assert till.daemon is not None and till.daemon.proc is not None
    assert till.daemon.proc.poll() is None
    assert httpx.get(f"{till.daemon.url}/healthz").status_code == 200
    assert till.wait(till.pay_card(sale))["state"] == "approved"


def test_disconnect_mid_transaction_over_tcp_is_checked_and_not_charged(till: Till) -> None:
    if till.sim.mode != "tcp":
        pytest.skip("the pty variant pulls the device for good: test_serial_disconnect")
    sale = till.sale()
    booked = len(till.sim.batch)
    till.sim.disconnect()
    view = till.wait(till.pay_card(sale))
    assert view["state"] == "failed"
    assert view["message"].startswith("The connection to the terminal was lost.")
    assert len(till.sim.batch) == booked


# -- tills of their own -----------------------------------------------------------------


def test_serial_disconnect_goes_to_a_manager(tmp_path: Path) -> None:
    sim = new_sim("pty")
    try:
        with running(tmp_path, sim, recovery_timeout_s="1") as till:
            sale = till.sale()
            sim.disconnect()  # the device disappears: nobody can say what it booked
            pid = till.pay_card(sale)
            view = till.wait(pid)
            assert view["state"] == "needs_review"
            assert view["review"]["reason"] == "terminal_unreachable"
            (listed,) = till.c.get("/payments/review").json()["payments"]
            assert listed["payment_id"] == pid
            blocked = till.c.post(f"/sales/{sale}/payments", json={"method": "cash", "amount": 1})
            assert blocked.json()["error"]["code"] == "payment_needs_review"
            r = till.m.post(f"/payments/{pid}/resolve", json={"decision": "not_paid"})
            assert r.status_code == 200 and r.json()["state"] == "resolved"
            assert till.c.get("/payments/review").json()["payments"] == []
            r = till.c.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 99999})
            assert r.json()["status"] == "completed"
    finally:
        sim.stop()


def test_unreachable_terminal_refuses_before_journaling(tmp_path: Path) -> None:
    sim = new_sim("tcp")
    sim.stop()  # its port is free again: nothing listens there
    with running(tmp_path, sim) as till:
        sale = till.sale()
        r = till.c.post(f"/sales/{sale}/payments/card", json={})
        assert r.status_code == 503 and r.json()["error"]["code"] == "terminal_unavailable"
        assert till.events(("payment.intent",)) == []
        assert till.c.get(f"/sales/{sale}").json()["status"] == "open"


def test_switched_off_by_default(daemon: Daemon) -> None:
    c = daemon.client()
    c.post("/shifts", json={"opening_float": 0})
    sale = c.post("/sales").json()["sale_id"]
    r = c.post(f"/sales/{sale}/payments/card", json={})
    assert r.status_code == 409 and r.json()["error"]["code"] == "payments_disabled"
    assert c.get("/payments/review").json() == {"payments": []}
    assert c.get("/payments/nope").json()["error"]["code"] == "unknown_payment"
