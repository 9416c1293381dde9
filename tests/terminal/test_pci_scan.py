# purpose: a full card scenario with a terminal leaking whole card numbers; nothing we keep has one.
"""PCI check: after a full scenario run (payments, a decline, a refund to card, a void with
reversal, a recovery by repeat receipt, end-of-day) the journal, the daemon's log (with
every ZVT frame logged) and every MQTT payload the relay received hold no Luhn-valid
13-19 digit sequence.

The simulated terminal is made to misbehave: its card sends the *full* number in BMP 22
and prints it on the receipt, so the masking is really exercised. The number is made up
when the test runs; no card number is written in any file.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hwsim.zvt import CARDS, Card, ZvtSimulator

from tests.terminal.mqtt_helpers import Relay, make_ca, uplink_config
from tests.terminal.payment_helpers import Till, new_sim
from tillbox.devbroker import DevBroker, free_port

# Digit runs of 13-19, optionally grouped by single spaces or dashes ("4761 7300 ...").
CANDIDATE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
# Ids and hashes hold long digit runs by chance, not card data: UUIDs (whose all-digit
# groups would join across the dashes) and hex words (hashes, request digests).
NOT_CARDS = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
    r"|\b(?=[0-9a-f]*[a-f])[0-9a-f]{16,}\b"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 else d
    return total % 10 == 0


def card_numbers(text: str) -> list[str]:
    """Every Luhn-valid 13-19 digit sequence in `text`, masked, with its context masked too
    (so a failure never prints a card number)."""
    text = NOT_CARDS.sub("<id>", text)
    found = []
    for m in CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            around = re.sub(r"\d", "#", text[max(0, m.start() - 40) : m.end() + 20])
            found.append(f"{digits[:6]}...{digits[-4:]} in {around!r}")
    return found


def made_up_pan() -> str:
    """A 16-digit Visa-shaped number that passes Luhn, made at run time."""
    body = [4, 7, 6, 1, 7, 3] + [random.randrange(10) for _ in range(9)]
    for check in range(10):
        if luhn_ok("".join(map(str, [*body, check]))):
            return "".join(map(str, [*body, check]))
    raise AssertionError("unreachable")


@dataclass
class Evidence:
    pan: str
    journal: str
    log: str
    mqtt: list[str]
    sim: ZvtSimulator


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evidence]:
    folder = tmp_path_factory.mktemp("pci")
    pan = made_up_pan()
    CARDS["leaky"] = Card("Visa", 10, pan, 4)
    ca = make_ca(folder / "ca")
    broker = DevBroker(folder / "broker", ca, port=free_port())
    broker.start()
    relay = Relay(broker)
    sim = new_sim("tcp", default_card="leaky")
    till = Till(folder, sim, config=uplink_config(folder / "state", ca, broker.port))
    try:
        till.start()
        run_scenario(till, sim)
        events = till.events()
        deadline = time.monotonic() + 20
        while relay.contiguous() < len(events):
            assert time.monotonic() < deadline, "the relay did not get every event"
            time.sleep(0.05)
        journal = "\n".join(json.dumps(e["data"]) + " " + e["type"] for e in events)
        # Hashes are hex: long digit runs there are chance, not card data.
        payloads = [
            json.dumps({k: v for k, v in env.items() if k not in ("hash", "prev_hash")})
            for env in list(relay.arrivals)
        ] + [p.decode("utf-8", "replace") for _, p, _ in list(relay.messages)]
        till.stop()
        yield Evidence(pan, journal, till.log.read_text(errors="replace"), payloads, sim)
    finally:
        till.stop()
        relay.close()
        broker.stop()
        sim.stop()
        CARDS.pop("leaky", None)


def run_scenario(till: Till, sim: ZvtSimulator) -> None:
    paid = till.sale(skus=2)
    assert till.wait(till.pay_card(paid))["state"] == "approved"

    declined = till.sale()
    sim.decline(0x05, card="leaky")
    assert till.wait(till.pay_card(declined))["state"] == "failed"
    till.c.post(f"/sales/{declined}/payments", json={"method": "cash", "tendered": 99999})

    line = till.c.get(f"/sales/{paid}").json()["lines"][0]
    r = till.m.post(
        f"/sales/{paid}/refunds",
        json={"lines": [{"line_id": line["line_id"], "quantity": 1}], "reason": "faulty"},
    )
    assert till.wait(r.json()["payment_id"])["state"] == "approved"

    voided = till.sale(skus=2)
    due = till.c.get(f"/sales/{voided}").json()["due"]
    assert till.wait(till.pay_card(voided, amount=due - 5))["state"] == "approved"
    r = till.m.post(f"/sales/{voided}/void", json={"reason": "customer left"})
    assert till.wait(r.json()["reversals"][0]["payment_id"])["state"] == "approved"

    recovered = till.sale()
    sim.power_loss_after_approval("leaky")
    assert till.wait(till.pay_card(recovered))["state"] == "approved"

    settled = till.m.post("/payments/end-of-day").json()
    assert settled["balanced"], settled["summary"]


def test_the_scan_finds_a_card_number() -> None:
    pan = made_up_pan()
    spaced = " ".join(pan[i : i + 4] for i in range(0, 16, 4))
    assert len(card_numbers(f"paid with {pan}.")) == 1
    assert card_numbers(f"card: {spaced}")[0].startswith(f"{pan[:6]}...{pan[-4:]} in")
    assert len(card_numbers(f"Card{pan}")) == 1  # glued to a word still counts
    assert card_numbers(f"masked {pan[:6]}******{pan[-4:]}") == []
    assert card_numbers(f'"digest": "{pan}ab{pan}"') == []  # a hex digest is not a card
    uuid = f"{pan[:8]}-{pan[8:12]}-4{pan[13:16]}-8{pan[:3]}-{pan[4:16]}"
    assert card_numbers(f'"sale_id": "{uuid}"') == []


def test_the_terminal_really_sent_whole_numbers_and_they_were_masked(evidence: Evidence) -> None:
    masked = f"{evidence.pan[:6]}******{evidence.pan[-4:]}"
    assert masked in evidence.journal  # the leaky card went through, masked
    assert CARDS["leaky"].printed_pan == evidence.pan  # and it printed the whole number
    assert not evidence.sim.card_data_requested
    assert all(raw[:2] != b"\x06\xc0" for raw in evidence.sim.received)


def test_journal_holds_no_card_number(evidence: Evidence) -> None:
    assert evidence.pan not in evidence.journal
    assert card_numbers(evidence.journal) == []
    for kind in ("payment.intent", "payment.reversed", "payment.batch_settled", "sale.refunded"):
        assert kind in evidence.journal


def test_log_holds_no_card_number(evidence: Evidence) -> None:
    assert "zvt: <- 04 0F" in evidence.log  # every frame was logged, redacted
    assert evidence.pan not in evidence.log
    assert card_numbers(evidence.log) == []


def test_mqtt_payloads_hold_no_card_number(evidence: Evidence) -> None:
    text = "\n".join(evidence.mqtt)
    assert '"payment.result_received"' in text and '"sale.payment_added"' in text
    assert evidence.pan not in text
    assert card_numbers(text) == []
