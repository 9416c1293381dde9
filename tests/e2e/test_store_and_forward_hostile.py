# purpose: duplicates, reordering, impostors and garbage around a real till: its stream stays whole.
"""Traffic the real till would never send, mixed into its real stream.

Unit-level versions exist and are not repeated here: `tests/relay/test_store_ingest.py`
(the store: duplicates, reordering, topic/envelope mismatch, garbage) and
`tests/relay/test_ingest_relay.py` (an in-process relay fed by a test client). What these add
is the whole chain: a `tillbox terminal` draining its journal into a `tillbox relay run`
process while the odd messages arrive, on the shipped broker or, for what its access rules
refuse, on a broker without them; the till's stream must still be stored exactly once.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.e2e.conftest import STORE, Shop, wait_for
from tests.relay.conftest import Probe
from tillbox.contract import ack_topic, event_hash, events_topic

NOT_AUTHORIZED = 0x87


def raw(env: dict[str, Any]) -> bytes:
    return json.dumps(env, separators=(",", ":")).encode()


def test_events_replayed_early_out_of_order_and_twice_are_stored_once(shop: Shop) -> None:
    """Another client with this till's certificate (a cloned box, a replay) sends some of
    its events ahead of the till, out of order and twice; later the till sends them all,
    and after that the first ten come once more."""
    relay = shop.relay()
    till = shop.terminal(backlog=100, start=False)
    journal = till.journal()
    ahead = [journal[i] for i in (300, 120, 200, 121)]  # seqs 301, 121, 201, 122
    probe = Probe(shop.broker.settings(shop.pki.terminal(STORE, "t1")), "t1-replay")
    assert probe.connect() is not None
    try:
        topic = events_topic(STORE, "t1")
        for env in ahead + ahead:
            assert not probe.publish(topic, raw(env)).is_failure
        wait_for("the early events waiting", lambda: waiting(shop) == len(ahead))
        assert shop.relay_head(till) == 0  # nothing joins the chain before seq 1 is there
        till.start()
        head = shop.wait_drained(till)
        assert not probe.subscribe(ack_topic(STORE, "t1")).is_failure
        for env in journal[:10]:
            assert not probe.publish(topic, raw(env)).is_failure
        # A duplicate is acked like anything else: the relay has dealt with the replays.
        while json.loads(probe.next_message().payload)["upto"] != head:
            pass
    finally:
        probe.disconnect()
    counts = relay.stop()
    assert head == len(journal)
    # Second copies of the early ones and the ten replays; the till's own copy of an early
    # one too, unless the relay's ack already covered it when the till got there.
    assert counts["duplicates"] >= len(ahead) + 10, counts
    assert counts["received"] == counts["stored"] + counts["duplicates"], counts
    assert counts["pending"] == len(ahead), counts
    shop.check(till)


def waiting(shop: Shop) -> int:
    return sum(h.pending for h in shop.store.status().heads if h.terminal == "t1")


def test_a_till_with_another_tills_certificate_is_refused_and_loses_nothing(shop: Shop) -> None:
    """The broker pins each certificate to its own topics: PUBACK 0x87, nothing reaches the
    relay, and the refused till keeps every event until it is given the right certificate."""
    shop.relay()
    honest = shop.terminal("t1")
    wrong = shop.terminal("t2", cert_of="t1")
    honest.sell(5)
    wrong.sell(5)
    error = wait_for("the refusal", lambda: wrong.uplink()["error"])
    assert "refused" in error and "Not authorized" in error, error
    # The same refusal seen by a plain MQTT 5 client with t1's certificate on t2's topic.
    probe = Probe(shop.broker.settings(shop.pki.terminal(STORE, "t1")), "t1-probe")
    assert probe.connect() is not None
    try:
        reason = probe.publish(events_topic(STORE, "t2"), raw(wrong.journal()[0]))
        assert reason.value == NOT_AUTHORIZED
    finally:
        probe.disconnect()
    shop.wait_drained(honest)
    assert shop.relay_head(wrong) == 0
    assert wrong.uplink()["outbox_depth"] == len(wrong.journal())
    # Given its own certificate, the till sends everything it kept.
    wrong.stop()
    text = wrong.config_path.read_text(encoding="utf-8").replace("/t1.", "/t2.")
    wrong.config_path.write_text(text, encoding="utf-8")
    wrong.start()
    wrong.sell(2)
    shop.wait_drained(wrong)
    shop.check(honest)
    shop.check(wrong)


def test_impostors_and_garbage_on_an_open_broker_become_dead_letters(shop: Shop) -> None:
    """Without access rules (a misconfigured broker) anyone can publish anywhere: the relay
    itself refuses an envelope whose store/terminal disagrees with its topic, and garbage,
    as dead letters, while the real till's stream goes on untouched."""
    shop.relay(open_broker=True)
    till = shop.terminal(backlog=200, open_broker=True)
    journal = till.journal()
    foreign = dict(journal[4], id=str(uuid.uuid4()), terminal="t2", prev_hash="0" * 64, seq=1)
    foreign["hash"] = event_hash(foreign)
    bad_hash = dict(journal[7], hash="b" * 64)
    injected = [
        (events_topic(STORE, "t2"), raw(journal[5])),  # t1's real event under t2's topic
        (events_topic(STORE, "t1"), raw(foreign)),  # an event of "t2" under t1's topic
        (events_topic(STORE, "t1"), b"not json"),
        (events_topic(STORE, "t1"), b"[1]"),
        (events_topic(STORE, "t1"), b'{"schema": "tillbox.event/1"}'),
        (events_topic(STORE, "t1"), raw(bad_hash)),
    ]
    open_broker = shop.open()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, "impostor", protocol=mqtt.MQTTv5)
    client.connect(open_broker.host, open_broker.port)
    client.loop_start()
    try:
        wait_for("the drain under way", lambda: shop.relay_head(till) > 0)
        for topic, payload in injected:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
    shop.wait_drained(till)
    wait_for("every injection recorded", lambda: shop.store.status().dead_letters == 6)
    reasons = [r["reason"] for r in shop.store.dead_letter_rows()]
    assert any("topic is demo/t2 but the envelope says demo/t1" in r for r in reasons), reasons
    assert any("topic is demo/t1 but the envelope says demo/t2" in r for r in reasons), reasons
    assert sum(r.startswith("not JSON") for r in reasons) == 1, reasons
    assert any("hash does not match" in r for r in reasons), reasons
    assert shop.store.head(STORE, "t2")[0] == 0  # nothing was stored in t2's name
    shop.check(till, dead_letters=6)
