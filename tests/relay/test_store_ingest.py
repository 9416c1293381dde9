# Store ingest on SQLite and PostgreSQL: once by id, chains, pending, alerts, dead letters.
from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from relay import store as st
from relay.store import Inbound, Store
from tests.relay.pg import db_url_fixture, pg_cluster_fixture  # noqa: F401
from tests.relay.plainbroker import chain, encode
from tillbox.contract import GENESIS_HASH, event_hash, events_topic


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


def msg(env: dict[str, Any], topic: str | None = None) -> Inbound:
    return Inbound(topic or events_topic(env["store"], env["terminal"]), encode(env))


def count(store: Store, table: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def verify_chain(envs: list[dict[str, Any]]) -> None:
    prev = GENESIS_HASH
    for seq, env in enumerate(envs, start=1):
        assert env["seq"] == seq
        assert env["prev_hash"] == prev
        assert event_hash(env) == env["hash"]
        prev = env["hash"]


def test_valid_stream_is_stored_once_and_acked_upto_the_last(store: Store) -> None:
    envs = chain("s1", "t1", 25)
    result = store.ingest([msg(e) for e in envs[:10]])
    assert result.acks == {("s1", "t1"): 10} and result.stored == 10
    result = store.ingest([msg(e) for e in envs[10:]])
    assert result.acks == {("s1", "t1"): 25}
    stored = store.events_of("s1", "t1")
    assert stored == envs  # the wire envelope comes back exactly, so its hash still verifies
    verify_chain(stored)
    assert store.head("s1", "t1") == (25, envs[-1]["hash"])
    assert count(store, st.dead_letters) == 0


def test_the_same_event_twice_is_stored_once_and_still_acked(store: Store) -> None:
    envs = chain("s1", "t1", 3)
    store.ingest([msg(e) for e in envs])
    again = store.ingest([msg(envs[1]), msg(envs[2]), msg(envs[2])])
    assert again.duplicates == 3 and again.stored == 0
    assert again.acks == {("s1", "t1"): 3}
    assert count(store, st.events) == 3


def test_out_of_order_waits_in_pending_until_the_gap_fills(store: Store) -> None:
    e1, e2, e3, e4 = chain("s1", "t1", 4)
    assert store.ingest([msg(e1)]).acks == {("s1", "t1"): 1}
    r = store.ingest([msg(e3)])
    assert r.acks == {("s1", "t1"): 1} and r.pending == 1
    assert store.status().heads[0].pending == 1
    assert store.ingest([msg(e3)]).duplicates == 1  # a re-send of a waiting event
    r = store.ingest([msg(e2)])
    assert r.acks == {("s1", "t1"): 3} and r.stored == 2
    assert count(store, st.pending) == 0
    # Out of order inside one batch too.
    assert store.ingest([msg(e4)]).acks == {("s1", "t1"): 4}
    verify_chain(store.events_of("s1", "t1"))


def test_reversed_batch_is_put_back_in_order(store: Store) -> None:
    envs = chain("s1", "t1", 50)
    r = store.ingest([msg(e) for e in reversed(envs)])
    assert r.acks == {("s1", "t1"): 50} and r.stored == 50
    assert count(store, st.pending) == 0
    verify_chain(store.events_of("s1", "t1"))


def test_a_long_backlog_joins_the_chain_when_the_gap_fills(store: Store) -> None:
    """More waiting events than the store reads in one window (500)."""
    envs = chain("s1", "t1", 1300)
    for i in range(1, 1300, 400):
        assert store.ingest([msg(e) for e in envs[i : i + 400]]).acks == {("s1", "t1"): 0}
    assert store.status().heads[0].pending == 1299
    assert store.ingest([msg(envs[0])]).acks == {("s1", "t1"): 1300}
    assert count(store, st.pending) == 0 and store.status().heads[0].pending == 0
    verify_chain(store.events_of("s1", "t1"))


def test_a_gap_that_never_fills_raises_one_alert_and_the_ack_stays(store: Store) -> None:
    e1, _e2, e3, e4 = chain("s1", "t1", 4)
    store.ingest([msg(e1), msg(e3)])
    assert store.check_gaps(timedelta(hours=1)).raised == []  # not stale yet
    raised = store.check_gaps(timedelta(0)).raised
    assert [(a.kind, a.seq) for a in raised] == [("gap", 2)]
    assert store.check_gaps(timedelta(0)).raised == []  # raised once, not on every check
    assert store.ingest([msg(e4)]).acks == {("s1", "t1"): 1}
    status = store.status()
    assert [(a.kind, a.terminal) for a in status.alerts] == [("gap", "t1")]
    assert "seq 2 missing" in status.alerts[0].detail
    assert status.heads[0].seq == 1 and status.heads[0].pending == 2


def test_gap_alert_is_resolved_when_the_gap_closes(store: Store) -> None:
    e1, e2, e3 = chain("s1", "t1", 3)
    store.ingest([msg(e1), msg(e3)])
    store.check_gaps(timedelta(0))
    r = store.ingest([msg(e2)])
    assert r.acks == {("s1", "t1"): 3}
    assert [(a.kind, a.terminal) for a in r.resolved] == [("gap", "t1")]
    assert store.status().alerts == []


def test_broken_chain_is_dead_lettered_alerted_and_never_acked_past(store: Store) -> None:
    e1, e2, e3 = chain("s1", "t1", 3)
    forged = dict(e2, data={"total": 1}, prev_hash="f" * 64)
    forged["hash"] = event_hash(forged)
    store.ingest([msg(e1)])
    r = store.ingest([msg(forged), msg(e3)])
    assert r.acks == {("s1", "t1"): 1}
    assert [a.kind for a in r.raised] == ["broken_chain"]
    dead = store.dead_letter_rows()
    assert len(dead) == 1 and "broken chain at seq 2" in dead[0]["reason"]
    assert json.loads(dead[0]["payload"])["id"] == forged["id"]
    # The same broken event again: still one alert, one dead letter counted twice.
    assert store.ingest([msg(forged)]).raised == []
    assert store.dead_letter_rows()[0]["times"] == 2
    # The real seq 2 arrives (the terminal re-sends its journal): the chain heals.
    r = store.ingest([msg(e2)])
    assert r.acks == {("s1", "t1"): 3}
    assert [a.kind for a in r.resolved] == ["broken_chain"]
    assert store.status().alerts == []


def test_a_different_event_for_a_stored_seq_is_a_conflict(store: Store) -> None:
    (e1,) = chain("s1", "t1", 1)
    (other,) = chain("s1", "t1", 1)  # another journal's seq 1
    store.ingest([msg(e1)])
    r = store.ingest([msg(other)])
    assert r.acks == {("s1", "t1"): 1} and r.dead == 1
    assert [a.kind for a in store.status().alerts] == ["conflict"]
    assert store.events_of("s1", "t1") == [e1]


def test_a_different_event_for_a_waiting_seq_is_a_conflict(store: Store) -> None:
    _e1, _e2, e3 = chain("s1", "t1", 3)
    other3 = chain("s1", "t1", 3)[2]
    store.ingest([msg(e3)])
    r = store.ingest([msg(other3)])
    assert r.dead == 1 and r.pending == 0
    assert "seq 3 is already waiting" in store.dead_letter_rows()[0]["reason"]
    assert [a.kind for a in store.status().alerts] == ["conflict"]


def test_topic_and_envelope_must_agree(store: Store) -> None:
    (as_t2,) = chain("s1", "t2", 1)
    r = store.ingest([msg(as_t2, topic=events_topic("s1", "t1"))])
    assert r.acks == {} and r.dead == 1
    (row,) = store.dead_letter_rows()
    assert "topic is s1/t1 but the envelope says s1/t2" in row["reason"]
    assert (row["store"], row["terminal"]) == ("s1", "t1")
    assert count(store, st.events) == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not json", "not JSON"),
        (b"{", "not JSON"),
        (b"[1, 2, 3]", "envelope must be a JSON object"),
        (b'"a string"', "envelope must be a JSON object"),
        (b"{}", "missing field"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_garbage_becomes_a_dead_letter(store: Store, payload: bytes, reason: str) -> None:
    r = store.ingest([Inbound(events_topic("s1", "t1"), payload)])
    assert r.dead == 1
    (row,) = store.dead_letter_rows()
    assert reason in row["reason"] and row["payload"] == payload


def test_bad_hash_and_unhashable_values_become_dead_letters(store: Store) -> None:
    e1, e2 = chain("s1", "t1", 2)
    tampered = dict(e1, data={"total": 999_999})
    huge = dict(e2, data={"n": 2**80})
    huge["hash"] = "0" * 64
    nan = encode(e2).replace(b'"total": 102', b'"total": NaN')
    topic = events_topic("s1", "t1")
    r = store.ingest([msg(tampered), msg(huge), Inbound(topic, nan)])
    assert r.dead == 3 and r.acks == {}
    reasons = [row["reason"] for row in store.dead_letter_rows()]
    assert "hash does not match" in reasons[0]
    assert all(reason.startswith("invalid envelope") for reason in reasons)
    # Good events in the same stream still go through.
    assert store.ingest([msg(e1), msg(e2)]).acks == {("s1", "t1"): 2}


def test_unknown_event_types_are_kept(store: Store) -> None:
    envs = chain("s1", "t1", 2, type_="future.thing_we_do_not_know")
    store.ingest([msg(e) for e in envs])
    assert [e["type"] for e in store.events_of("s1", "t1")] == ["future.thing_we_do_not_know"] * 2


def test_terminals_interleave_freely(store: Store) -> None:
    streams = {(s, t): chain(s, t, 30) for s, t in [("s1", "t1"), ("s1", "t2"), ("s2", "t1")]}
    mixed = [e for group in zip(*streams.values()) for e in group]
    random.Random(7).shuffle(mixed)
    r = store.ingest([msg(e) for e in mixed])
    assert r.acks == dict.fromkeys(streams, 30)
    for (s, t), envs in streams.items():
        assert store.events_of(s, t) == envs


def test_two_writers_splitting_one_stream_store_each_event_once(db_url: str) -> None:
    """What two relay instances on one shared subscription do to the database."""
    streams = [chain("s1", f"t{i}", 120) for i in range(4)]
    messages = [msg(e) for group in zip(*streams) for e in group]
    halves = [messages[0::2], messages[1::2]]  # round robin, as the broker deals them
    stores = [Store(db_url), Store(db_url)]
    errors: list[BaseException] = []

    def work(s: Store, part: list[Inbound]) -> None:
        try:
            for i in range(0, len(part), 16):
                s.ingest(part[i : i + 16])
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(s, h)) for s, h in zip(stores, halves)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    try:
        for envs in streams:
            assert stores[0].events_of("s1", envs[0]["terminal"]) == envs
            assert stores[0].head("s1", envs[0]["terminal"]) == (120, envs[-1]["hash"])
        assert count(stores[0], st.pending) == 0
        assert count(stores[0], st.dead_letters) == 0
    finally:
        for s in stores:
            s.close()
