# purpose: customers captured at a till reach the relay's customers and go down to the other tills.
from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from relay.ingest import Relay
from relay.store import Store, customers
from terminal.journal import Journal, NewEvent
from terminal.sale import Policy, TaxSetup, Till
from tests.relay.pg import db_url_fixture, pg_cluster_fixture  # noqa: F401
from tests.relay.plainbroker import (
    TIMEOUT,
    PlainBroker,
    plain_broker_fixture,  # noqa: F401
    wait_for,
)
from tests.relay.plainbroker import Till as Sender
from tests.relay.test_downsync_publish import Listener
from tillbox.contract import event_hash

LOADED = {
    "id": "c-1",
    "name": "Ada Lovelace",
    "email": "ada@example.org",
    "phone": "",
    "marketing_consent": False,
    "loyalty_points": 40,
}


class Counter:
    """Till t1 of store s1 as far as customers go: its real journal makes the envelopes."""

    def __init__(self, folder: Path) -> None:
        self.till = Till(Policy("s1", "t1", "EUR", TaxSetup("inclusive", {})))
        self.journal = Journal(folder / "journal.sqlite", "s1", "t1")

    def capture(self, name: str, consent: bool, at: str, **contact: str) -> dict[str, Any]:
        events = self.till.capture_customer(
            str(uuid.uuid4()),
            name,
            contact.get("email"),
            contact.get("phone"),
            consent,
            at,
            "anna",
        )
        [env] = self.journal.append([NewEvent(str(uuid.uuid4()), t, d) for t, d in events], at)
        return env


@pytest.fixture
def rig(
    plain_broker: PlainBroker, db_url: str, tmp_path: Path
) -> Iterator[tuple[Relay, Sender, Counter, Listener]]:
    store = Store(db_url)
    assert store.put_customers("s1", [LOADED]) is not None  # version 1, from a file
    relay = Relay(plain_broker.relay_config(db_url, "relay-cc"), store)
    relay.start()
    assert relay.link.subscribed.wait(TIMEOUT)
    down = Listener(plain_broker, "tillbox/v1/s1/customers/#")
    sender = Sender(plain_broker.host, plain_broker.port, "s1", "t1")
    counter = Counter(tmp_path)
    try:
        yield relay, sender, counter, down
    finally:
        sender.close()
        down.close()
        relay.stop()
        counter.journal.close()
        store.close()


def snapshot_at(down: Listener, version: int) -> dict[str, Any]:
    """The snapshot of `version` (deltas and other snapshots are passed over)."""
    while True:
        topic, doc, _ = down.next()
        if topic.endswith("/snapshot") and doc["version"] == version:
            return doc


def rows(store: Store) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(customers))}


def test_a_capture_lands_in_customers_and_goes_down_with_its_consent(
    rig: tuple[Relay, Sender, Counter, Listener],
) -> None:
    relay, sender, counter, down = rig
    assert snapshot_at(down, 1)["customers"] == [LOADED]
    jana = counter.capture("Jana Meier", True, "2026-11-27T10:15:00.120Z", email="jana@example.org")
    tom = counter.capture("Tom Berger", False, "2026-11-27T10:16:00.450Z", phone="+49 30 7654321")
    sender.send(jana, tom)
    assert sender.wait_upto(2) == 2

    stored = rows(relay.store)
    jid, tid = jana["data"]["customer_id"], tom["data"]["customer_id"]
    assert stored[jid]["marketing_consent"] is True
    assert stored[jid]["marketing_consent_at"] == "2026-11-27T10:15:00.120Z"
    assert stored[jid]["phone"] == "" and stored[jid]["email"] == "jana@example.org"
    assert stored[tid]["marketing_consent"] is False
    assert stored[tid]["marketing_consent_at"] == "2026-11-27T10:16:00.450Z"

    # The other tills learn both from the next delta and the retained snapshot.
    deltas: list[dict[str, Any]] = []
    while sum(len(d["upsert"]) for d in deltas) < 2:
        topic, doc, _ = down.next()
        if topic.endswith("/delta"):
            deltas.append(doc)
    assert deltas[0]["base_version"] == 1
    upserted = {c["id"]: c for d in deltas for c in d["upsert"]}
    assert upserted[jid] == {
        "id": jid,
        "name": "Jana Meier",
        "email": "jana@example.org",
        "phone": "",
        "marketing_consent": True,
        "marketing_consent_at": "2026-11-27T10:15:00.120Z",
        "loyalty_points": 0,
    }
    snap = snapshot_at(down, deltas[-1]["version"])
    by_id = {c["id"]: c for c in snap["customers"]}
    assert by_id[jid]["marketing_consent"] is True
    assert by_id[tid]["marketing_consent"] is False
    assert by_id["c-1"] == LOADED


def test_later_loads_and_resends_neither_lose_nor_flip_consent(
    rig: tuple[Relay, Sender, Counter, Listener],
) -> None:
    relay, sender, counter, down = rig
    jana = counter.capture("Jana Meier", True, "2026-11-27T10:15:00.000Z", phone="0301234567")
    sender.send(jana)
    assert sender.wait_upto(1) == 1
    jid = jana["data"]["customer_id"]
    assert wait_for(lambda: relay.store.unpublished() == [])

    # The shop's customer file comes back from the CRM without the answer, or without her.
    stale = {**LOADED, "id": jid, "name": "Jana Meier", "marketing_consent": False}
    change = relay.store.put_customers("s1", [LOADED, stale])
    assert change is not None  # the name and phone from the file are taken
    assert rows(relay.store)[jid]["marketing_consent"] is True
    assert relay.store.put_customers("s1", [LOADED]) is None  # nothing to drop: she stays
    assert jid in rows(relay.store)

    # A terminal sending the capture again (no ack seen) makes no new version.
    sender.send(jana)
    assert sender.wait_acks(2)[-1] == 1
    with relay.store.engine.connect() as conn:
        assert relay.store.latest_version(conn, "s1", "customers") == change.version
    snap = snapshot_at(down, change.version)
    assert {c["id"]: c for c in snap["customers"]}[jid]["marketing_consent"] is True


def test_a_malformed_capture_is_kept_as_an_event_and_not_a_customer(
    rig: tuple[Relay, Sender, Counter, Listener], caplog: pytest.LogCaptureFixture
) -> None:
    relay, sender, counter, _ = rig
    env = counter.capture("Jana Meier", True, "2026-11-27T10:15:00.000Z", email="j@example.org")
    bad = dict(env)
    bad["data"] = {**env["data"], "marketing_consent": "yes", "email": "secret@example.org"}
    bad["hash"] = event_hash(bad)
    sender.send(bad)
    assert sender.wait_upto(1) == 1
    assert len(relay.store.events_of("s1", "t1")) == 1
    assert env["data"]["customer_id"] not in rows(relay.store)
    assert "malformed" in caplog.text and "secret@" not in caplog.text


def test_a_database_from_before_consent_times_gets_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'relay.sqlite'}"
    old = Store(url)
    assert old.put_customers("s1", [LOADED]) is not None
    with old.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE customers DROP COLUMN marketing_consent_at")
    old.close()
    store = Store(url)
    try:
        assert rows(store)["c-1"]["marketing_consent_at"] is None
        with store.transaction() as conn:
            assert store.snapshot(conn, "s1", "customers") == {
                "schema": "tillbox.customers/1",
                "version": 1,
                "customers": [LOADED],
            }
    finally:
        store.close()
