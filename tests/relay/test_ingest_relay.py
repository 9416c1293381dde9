# The relay on a real broker: acks, duplicates, gaps, garbage, shared subscription, SIGKILL.
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from relay import ingest
from relay.connectors.state import cursors
from relay.ingest import Relay
from relay.store import Store
from tests.relay.pg import db_url_fixture, pg_cluster_fixture  # noqa: F401
from tests.relay.plainbroker import (
    TIMEOUT,
    PlainBroker,
    Till,
    chain,
    plain_broker_fixture,  # noqa: F401
    wait_for,
)
from tillbox.contract import event_hash


class Relays:
    """Relay instances started by a test, all stopped after it."""

    def __init__(self, broker: PlainBroker, db_url: str) -> None:
        self.broker, self.db_url = broker, db_url
        self.running: list[Relay] = []
        self.tills: list[Till] = []

    def start(self, client_id: str = "relay-a", **ingest: object) -> Relay:
        relay = Relay(self.broker.relay_config(self.db_url, client_id, **ingest))
        self.running.append(relay)
        relay.start()
        assert relay.link.subscribed.wait(TIMEOUT), "relay did not subscribe"
        return relay

    def till(self, store: str = "s1", terminal: str = "t1") -> Till:
        till = Till(self.broker.host, self.broker.port, store, terminal)
        self.tills.append(till)
        return till

    def close(self) -> None:
        for till in self.tills:
            till.close()
        for relay in self.running:
            relay.stop()
            relay.store.close()


@pytest.fixture
def relays(plain_broker: PlainBroker, db_url: str) -> Iterator[Relays]:
    r = Relays(plain_broker, db_url)
    try:
        yield r
    finally:
        r.close()


def test_stream_is_stored_once_and_acked_upto_the_last_seq(relays: Relays) -> None:
    relay = relays.start()
    till = relays.till()
    envs = chain("s1", "t1", 40)
    till.send(*envs)
    assert till.wait_upto(40) == 40
    assert relay.store.events_of("s1", "t1") == envs
    assert till.acks == sorted(till.acks)  # one relay: acks only move forward


def test_duplicate_is_ignored_but_acked(relays: Relays) -> None:
    relay = relays.start()
    till = relays.till()
    envs = chain("s1", "t1", 3)
    till.send(*envs)
    assert till.wait_upto(3) == 3
    n = len(till.acks)
    till.send(envs[2])  # the terminal missed the ack and sends again
    assert len(till.wait_acks(n + 1)) == n + 1 and till.acks[-1] == 3
    assert len(relay.store.events_of("s1", "t1")) == 3
    assert relay.stats.duplicates == 1


def test_out_of_order_acks_stay_at_the_gap_until_it_fills(relays: Relays) -> None:
    relay = relays.start()
    till = relays.till()
    e1, e2, e3 = chain("s1", "t1", 3)
    till.send(e1, e3)
    assert wait_for(lambda: relay.stats.pending == 1 and till.upto == 1)
    assert not wait_for(lambda: till.upto > 1, timeout=0.3)
    till.send(e2)
    assert till.wait_upto(3) == 3


def test_gap_that_never_fills_alerts_and_ack_stays(relays: Relays) -> None:
    relay = relays.start(gap_alert_after_s=0.2)
    till = relays.till()
    e1, _e2, e3 = chain("s1", "t1", 3)
    till.send(e1, e3)
    assert wait_for(lambda: [a.kind for a in relay.store.status().alerts] == ["gap"])
    assert wait_for(lambda: till.upto == 1)


def test_broken_chain_alerts_dead_letters_and_stops_the_ack(relays: Relays) -> None:
    relay = relays.start()
    till = relays.till()
    e1, e2, e3 = chain("s1", "t1", 3)
    forged = dict(e2, prev_hash="a" * 64)
    forged["hash"] = event_hash(forged)
    till.send(e1, forged, e3)
    assert wait_for(lambda: relay.stats.received == 3 and relay.stats.dead == 1)
    assert wait_for(lambda: till.upto == 1)  # the ack goes out after the commit
    assert not wait_for(lambda: till.upto > 1, timeout=0.3)
    assert [a.kind for a in relay.store.status().alerts] == ["broken_chain"]
    assert "broken chain at seq 2" in relay.store.dead_letter_rows()[0]["reason"]


def test_topic_envelope_mismatch_and_garbage_are_dead_letters(relays: Relays) -> None:
    relay = relays.start()
    t1 = relays.till("s1", "t1")
    (as_t2,) = chain("s1", "t2", 1)
    t1.send(as_t2)  # t1 publishing as t2
    t1.send_raw(b"not json", b"[1]", b'{"schema": "tillbox.event/1"}')
    good = chain("s1", "t1", 2)
    bad_hash = dict(good[0], hash="b" * 64)
    t1.send(bad_hash)
    t1.send(*good)
    assert t1.wait_upto(2) == 2  # alive and well after all that
    assert relay.stats.dead == 5
    reasons = [r["reason"] for r in relay.store.dead_letter_rows()]
    assert "topic is s1/t1 but the envelope says s1/t2" in reasons[0]
    assert any("hash does not match" in r for r in reasons)
    assert relay.store.head("s1", "t2") == (0, "0" * 64)


def test_two_relays_share_the_stream_and_store_each_event_once(relays: Relays) -> None:
    a = relays.start("relay-a", batch_size=20)
    b = relays.start("relay-b", batch_size=20)
    tills = [relays.till("s1", f"t{i}") for i in range(3)]
    streams = [chain("s1", f"t{i}", 150) for i in range(3)]
    senders = [threading.Thread(target=t.send, args=s) for t, s in zip(tills, streams)]
    for s in senders:
        s.start()
    for s in senders:
        s.join(TIMEOUT)
    for till in tills:
        assert till.wait_upto(150) == 150
    assert a.stats.received > 50 and b.stats.received > 50  # the broker split the stream
    assert a.stats.received + b.stats.received == 450
    assert a.stats.stored + b.stats.stored == 450
    for envs in streams:
        assert a.store.events_of("s1", envs[0]["terminal"]) == envs
    assert a.store.status().dead_letters == 0


def test_a_burst_makes_the_ledger_give_way_and_it_catches_up(relays: Relays) -> None:
    relay = relays.start("relay-burst")
    till = relays.till()
    envs = chain("s1", "t1", 300)
    till.send(envs[0])
    assert till.wait_upto(1) == 1
    assert relay.stats.bursts == 0  # one sale at a time never holds the connectors back
    relay.stop()  # its persistent session keeps the rest for it: a backlog, as after an outage
    till.send(*envs[1:])
    relay = relays.start("relay-burst")
    assert till.wait_upto(300) == 300
    assert relay.stats.bursts >= 1
    assert wait_for(lambda: _ledger_position(relay) == 300), _ledger_position(relay)


def _ledger_position(relay: Relay) -> int:
    with relay.store.engine.connect() as conn:
        rows = conn.execute(select(cursors.c.position).where(cursors.c.connector == "ledger")).all()
    return sum(int(r.position) for r in rows)


def test_give_way_waits_out_a_burst_but_never_long(
    relays: Relays, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = Relay(relays.broker.relay_config(relays.db_url))  # not started: no thread races us
    stop = threading.Event()
    t0 = time.monotonic()
    relay.give_way(stop)
    assert time.monotonic() - t0 < 0.05  # no burst: no wait
    relay._burst_until = time.monotonic() + 0.3
    relay.give_way(stop)
    assert time.monotonic() - t0 >= 0.25
    monkeypatch.setattr(ingest, "GIVE_WAY_MAX_S", 0.2)
    relay._burst_until = time.monotonic() + 60
    t0 = time.monotonic()
    relay.give_way(stop)
    assert 0.15 <= time.monotonic() - t0 < 2
    stop.set()
    t0 = time.monotonic()
    relay.give_way(stop)  # stopping: at once
    assert time.monotonic() - t0 < 0.05
    relay.store.close()


def test_sigkilled_relay_loses_nothing(
    plain_broker: PlainBroker,
    db_url: str,
    tmp_path: Path,
) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        f"""version = 1
[broker]
host = "127.0.0.1"
port = {plain_broker.port}
client_id = "relay-kill"
[database]
url = "{db_url}"
[ingest]
batch_size = 50
max_batch_delay_ms = 2
""",
        encoding="utf-8",
    )
    log = tmp_path / "relay.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}

    def start() -> subprocess.Popen[bytes]:
        mark = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tillbox.cli", "relay", "run", "--config", str(config)],
                stdout=out,
                stderr=out,
                env=env,
            )
        ok = wait_for(lambda: "subscribed to" in log.read_text()[mark:] or proc.poll() is not None)
        assert ok and proc.poll() is None, log.read_text()[-3000:]
        return proc

    n = 600
    tills = [Till(plain_broker.host, plain_broker.port, "s1", f"t{i}") for i in range(3)]
    streams = [chain("s1", f"t{i}", n) for i in range(3)]
    proc = start()
    try:
        senders = [threading.Thread(target=t.send, args=s) for t, s in zip(tills, streams)]
        for s in senders:
            s.start()
        assert wait_for(lambda: tills[0].upto >= 50), "the relay acked nothing"
        proc.send_signal(signal.SIGKILL)  # mid-stream: some received, some stored, some acked
        proc.wait()
        killed_at = [t.upto for t in tills]
        for s in senders:
            s.join(TIMEOUT)
        proc = start()
        for till in tills:
            assert till.wait_upto(n, timeout=30) == n, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        for till in tills:
            till.close()
    assert min(killed_at) < n  # it really died mid-ingest
    store = Store(db_url)
    try:
        for envs in streams:
            assert store.events_of("s1", envs[0]["terminal"]) == envs
        status = store.status()
        assert status.dead_letters == 0 and status.alerts == []
        assert all(h.pending == 0 for h in status.heads)
    finally:
        store.close()
