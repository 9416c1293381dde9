# Down-sync on a real broker: retained snapshots, deltas and base_version, resync, late publish.
from __future__ import annotations

import csv
import io
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from relay.ingest import Relay
from relay.store import Store
from tests.relay.pg import db_url_fixture, pg_cluster_fixture  # noqa: F401
from tests.relay.plainbroker import (
    TIMEOUT,
    PlainBroker,
    free_port,
    plain_broker_fixture,  # noqa: F401
    wait_for,
)
from tillbox.cli import main

DEMO = Path(__file__).parents[2] / "terminal" / "demo" / "catalog.json"


class Listener:
    """A terminal-side subscriber: every message with its retain flag."""

    def __init__(self, broker: PlainBroker, *filters: str) -> None:
        self.inbox: queue.Queue[tuple[str, dict[str, Any], bool]] = queue.Queue()
        done = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"till-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = lambda _c, _u, m: self.inbox.put(
            (m.topic, json.loads(m.payload), bool(m.retain))
        )
        self.client.on_subscribe = lambda *_: done.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(f, 1) for f in filters])
        assert done.wait(TIMEOUT)

    def next(self, timeout: float = TIMEOUT) -> tuple[str, dict[str, Any], bool]:
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no down-sync message came") from None

    def quiet(self, seconds: float = 0.3) -> bool:
        try:
            self.inbox.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Kit:
    """A relay.toml pointing at the plain broker and the test database, and listeners."""

    def __init__(self, broker: PlainBroker, db_url: str, folder: Path) -> None:
        self.broker, self.db_url, self.folder = broker, db_url, folder
        self.config = self.write_config(broker.port)
        self.listeners: list[Listener] = []
        self.relays: list[Relay] = []

    def write_config(self, port: int, name: str = "relay.toml") -> Path:
        path = self.folder / name
        path.write_text(
            f'[broker]\nhost = "127.0.0.1"\nport = {port}\nclient_id = "relay-ds"\n'
            f'[database]\nurl = "{self.db_url}"\n',
            encoding="utf-8",
        )
        return path

    def listen(self, *filters: str) -> Listener:
        listener = Listener(self.broker, *filters)
        self.listeners.append(listener)
        return listener

    def relay(self) -> Relay:
        relay = Relay(self.broker.relay_config(self.db_url, "relay-ds"))
        self.relays.append(relay)
        relay.start()
        assert relay.link.subscribed.wait(TIMEOUT)
        return relay

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        for relay in self.relays:
            relay.stop()
            relay.store.close()


@pytest.fixture
def kit(plain_broker: PlainBroker, db_url: str, tmp_path: Path) -> Iterator[Kit]:
    k = Kit(plain_broker, db_url, tmp_path)
    try:
        yield k
    finally:
        k.close()


def demo_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(DEMO.read_text(encoding="utf-8"))["items"]
    return items


def test_catalog_load_publishes_a_retained_snapshot_and_a_delta(
    kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deltas = kit.listen("tillbox/v1/s1/catalog/delta")
    assert (
        main(["relay", "catalog", "load", "--store", "s1", str(DEMO), "--config", str(kit.config)])
        == 0
    )
    assert "version 1" in capsys.readouterr().out
    topic, first, retained = deltas.next()
    assert (topic, first["base_version"], first["version"], retained) == (
        "tillbox/v1/s1/catalog/delta",
        0,
        1,
        False,
    )
    late = kit.listen("tillbox/v1/s1/catalog/snapshot")  # subscribes after the publish
    topic, snap, retained = late.next()
    assert retained and snap["schema"] == "tillbox.catalog/1" and snap["version"] == 1
    assert snap["items"] == demo_items() and snap["currency"] == "EUR"

    # A price change from a CSV: delta against version 1, then the new retained snapshot.
    items = demo_items()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["sku", "name", "price", "tax_class", "unit", "barcodes", "category"])
    for item in items:
        price = item["price"] + 1 if item["sku"] == "BK-0001" else item["price"]
        codes = " ".join(item["barcodes"])
        writer.writerow(
            [
                item["sku"],
                item["name"],
                price,
                item["tax_class"],
                item["unit"],
                codes,
                item["category"],
            ]
        )
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text(out.getvalue(), encoding="utf-8")
    assert (
        main(
            [
                "relay",
                "catalog",
                "load",
                "--store",
                "s1",
                str(csv_file),
                "--config",
                str(kit.config),
            ]
        )
        == 0
    )
    _, delta, _ = deltas.next()
    assert delta == {
        "schema": "tillbox.catalog-delta/1",
        "base_version": 1,
        "version": 2,
        "upsert": [dict(items[0], price=items[0]["price"] + 1)],
        "delete": [],
    }
    _, snap2, _ = late.next()  # a live subscriber sees the new snapshot too
    assert snap2["version"] == 2
    newest = kit.listen("tillbox/v1/s1/catalog/snapshot")
    _, snap3, retained = newest.next()
    assert (
        retained and snap3["version"] == 2 and snap3["items"][0]["price"] == items[0]["price"] + 1
    )
    assert snap3["categories"] == json.loads(DEMO.read_text(encoding="utf-8"))["categories"]


def test_bad_catalog_names_row_and_column_and_loads_nothing(
    kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "sku,name,price,tax_class,unit,barcodes,category\nA-1,Brot,1.99,reduced,each,123,\n",
        encoding="utf-8",
    )
    assert (
        main(["relay", "catalog", "load", "--store", "s1", str(bad), "--config", str(kit.config)])
        == 2
    )
    err = capsys.readouterr().err
    assert "row 2, column price" in err and "row 2, column barcodes: 123" in err
    assert "nothing was loaded" in err
    store = Store(kit.db_url)
    try:
        with store.transaction() as conn:
            assert store.latest_version(conn, "s1", "catalog") == 0
    finally:
        store.close()


def test_versions_stored_without_a_broker_are_published_when_the_relay_runs(
    kit: Kit, capsys: pytest.CaptureFixture[str]
) -> None:
    offline = kit.write_config(free_port(), "offline.toml")  # nobody listens there
    assert (
        main(["relay", "catalog", "load", "--store", "s1", str(DEMO), "--config", str(offline)])
        == 0
    )
    assert (
        main(
            ["relay", "stock", "set", "--store", "s1", "BK-0001", "12.50", "--config", str(offline)]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "not published now" in captured.err and "version 1" in captured.out
    deltas = kit.listen("tillbox/v1/s1/+/delta")
    kit.relay()
    got = {deltas.next()[1]["schema"] for _ in range(2)}
    assert got == {"tillbox.catalog-delta/1", "tillbox.stock-delta/1"}
    snaps = kit.listen("tillbox/v1/s1/+/snapshot")
    levels = {t: p for t, p, _ in (snaps.next(), snaps.next())}
    assert levels["tillbox/v1/s1/stock/snapshot"]["levels"] == {"BK-0001": "12.5"}
    assert levels["tillbox/v1/s1/catalog/snapshot"]["version"] == 1
    assert deltas.quiet()  # published once, not on every housekeeping tick


def test_the_running_relay_publishes_what_the_admin_stored(kit: Kit) -> None:
    """A catalog loaded while the broker was unreachable from the admin's machine."""
    relay = kit.relay()
    deltas = kit.listen("tillbox/v1/s1/stock/delta")
    offline = kit.write_config(free_port(), "offline.toml")
    assert (
        main(["relay", "stock", "set", "--store", "s1", "X-1", "3", "--config", str(offline)]) == 0
    )
    _, delta, _ = deltas.next()
    assert delta == {
        "schema": "tillbox.stock-delta/1",
        "base_version": 0,
        "version": 1,
        "levels": {"X-1": "3"},
    }
    assert relay.store.unpublished() == []


def test_resync_request_republishes_the_snapshot(kit: Kit) -> None:
    relay = kit.relay()
    people = kit.folder / "customers.json"
    people.write_text(
        json.dumps([{"id": "c1", "name": "Ada", "email": "a@example.org", "phone": "1"}]),
        encoding="utf-8",
    )
    assert (
        main(
            [
                "relay",
                "customers",
                "load",
                "--store",
                "s1",
                str(people),
                "--config",
                str(kit.config),
            ]
        )
        == 0
    )
    snaps = kit.listen("tillbox/v1/s1/customers/snapshot")
    _, first, retained = snaps.next()
    assert retained and first["customers"][0]["loyalty_points"] == 0
    asker = kit.listen("tillbox/v1/s1/t1/ack")
    asker.client.publish("tillbox/v1/s1/t1/resync", b'{"family": "customers"}', qos=1)
    _, again, _ = snaps.next()
    assert again == first
    asker.client.publish("tillbox/v1/s1/t1/resync", b'{"family": "acks"}', qos=1)
    assert asker.next() == ("tillbox/v1/s1/t1/ack", {"upto": 0}, False)
    asker.client.publish("tillbox/v1/s1/t1/resync", b'{"family": "gossip"}', qos=1)
    assert wait_for(lambda: relay.store.status().dead_letters == 1)
    assert "resync needs" in relay.store.dead_letter_rows()[0]["reason"]


def test_relay_start_puts_snapshots_back_on_a_broker_that_lost_them(
    kit: Kit, plain_broker: PlainBroker
) -> None:
    store = Store(kit.db_url)
    try:
        assert store.set_stock("s1", {"A": "1"}) is not None
        assert store.set_stock("s2", {"B": "2"}) is not None
    finally:
        store.close()
    kit.relay()
    snaps = kit.listen("tillbox/v1/+/stock/snapshot")
    got = sorted((t, p["levels"]) for t, p, _ in (snaps.next(), snaps.next()))
    assert got == [
        ("tillbox/v1/s1/stock/snapshot", {"A": "1"}),
        ("tillbox/v1/s2/stock/snapshot", {"B": "2"}),
    ]
