# purpose: the uplink against a real TLS Mosquitto, in-process and as the real daemon process.
from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from terminal.api import create_app
from terminal.config import load
from terminal.journal import Reader
from tests.conftest import Daemon
from tests.terminal.mqtt_helpers import (
    PREFIX,
    TERMINAL,
    Relay,
    cash_sales,
    health,
    login,
    make_ca,
    uplink_config,
    wait_for,
)
from tillbox import certs
from tillbox.devbroker import DevBroker, free_port


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def broker(tmp_path: Path, ca: Path) -> Iterator[DevBroker]:
    """A broker on a fixed free port, not started: each test starts it when it wants."""
    b = DevBroker(tmp_path / "broker", ca, port=free_port())
    yield b
    b.stop()


@pytest.fixture
def relays() -> Iterator[list[Relay]]:
    made: list[Relay] = []
    yield made
    for relay in made:
        relay.close()


@pytest.fixture
def relay(broker: DevBroker, relays: list[Relay]) -> Relay:
    """A stand-in relay on a started broker."""
    broker.start()
    relays.append(Relay(broker))
    return relays[-1]


@pytest.fixture
def daemon(tmp_path: Path, ca: Path, broker: DevBroker) -> Iterator[Daemon]:
    """`tillbox terminal` with the uplink on, not started yet."""
    d = Daemon(uplink_config(tmp_path / "state", ca, broker.port))
    yield d
    d.stop()


def till(tmp_path: Path, ca: Path, broker: DevBroker, **keys: Any) -> TestClient:
    config = load(uplink_config(tmp_path / "state", ca, broker.port, **keys), environ={})
    return TestClient(create_app(config))


def open_shift(api: TestClient) -> dict[str, str]:
    h = login(api)
    assert api.post("/api/v1/shifts", json={"opening_float": 0}, headers=h).status_code == 201
    return h


def uplink(api: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = health(api)["uplink"]
    return body


def outbox_rows(tmp_path: Path) -> list[int]:
    reader = Reader(tmp_path / "state" / "journal.sqlite")
    try:
        return [r[0] for r in reader.conn.execute("SELECT seq FROM outbox ORDER BY seq")]
    finally:
        reader.close()


def journal_ids(tmp_path: Path) -> list[str]:
    reader = Reader(tmp_path / "state" / "journal.sqlite")
    try:
        return [e["id"] for e in reader.events_from(1)]
    finally:
        reader.close()


def test_sales_made_while_the_broker_is_down_drain_in_order(
    tmp_path: Path, ca: Path, broker: DevBroker, relays: list[Relay]
) -> None:
    # The relay's persistent session is on the broker before the outage, as in production.
    broker.start()
    relay = Relay(broker)
    relays.append(relay)
    broker.stop()
    with till(tmp_path, ca, broker) as api:
        h = open_shift(api)
        cash_sales(api, h, 5)
        # between retries (a retry shows "connecting" for the moment it tries)
        up = wait_for("the till offline", lambda: (u := uplink(api))["state"] == "offline" and u)
        assert (up["state"], up["connected"], up["outbox_depth"]) == ("offline", False, 21)
        assert "cannot connect" in up["error"]
        assert up["oldest_age_s"] >= 0
        broker.start()
        wait_for("the outbox to drain", lambda: uplink(api)["outbox_depth"] == 0)
        up = uplink(api)
        assert (up["connected"], up["last_ack_seq"], up["error"]) == (True, 21, None)
        assert up["oldest_age_s"] is None and up["last_ack_at"]
        metrics = api.get("/metrics").text
        assert "tillbox_uplink_connected 1" in metrics
        assert "tillbox_last_ack_seq 21" in metrics
        assert "tillbox_outbox_oldest_age_seconds 0" in metrics
    assert relay.first_arrivals() == list(range(1, 22))
    assert [relay.stored[s]["id"] for s in range(1, 22)] == journal_ids(tmp_path)
    assert outbox_rows(tmp_path) == []


def test_rows_stay_until_the_relay_acks_and_are_resent_after_the_timeout(
    tmp_path: Path, ca: Path, broker: DevBroker, relays: list[Relay]
) -> None:
    broker.start()
    relay = Relay(broker)
    relays.append(relay)
    relay.acking = False  # the broker PUBACKs every message; the relay never says "stored"
    with till(tmp_path, ca, broker, ack_timeout_s=1.0) as api:
        h = open_shift(api)
        cash_sales(api, h, 2)
        wait_for("all 9 events at the relay", lambda: len(relay.stored) == 9)
        wait_for("a resend after the ack timeout", lambda: relay.copies(1) >= 2, timeout=5)
        assert outbox_rows(tmp_path) == list(range(1, 10))
        up = uplink(api)
        assert up["outbox_depth"] == 9 and up["resends"] >= 1 and up["last_ack_seq"] == 0
        relay.ack()
        wait_for("the acked rows to go", lambda: outbox_rows(tmp_path) == [])
        assert uplink(api)["last_ack_seq"] == 9


def test_an_event_lost_after_its_puback_is_sent_again(
    tmp_path: Path, ca: Path, broker: DevBroker, relays: list[Relay]
) -> None:
    """Mosquitto may PUBACK a QoS 1 message and still lose it: only the relay's ack counts."""
    broker.start()
    relay = Relay(broker)
    relays.append(relay)
    lost: list[int] = []

    def lose_seq_3_once(env: dict[str, Any]) -> bool:
        if env["seq"] == 3 and not lost:
            lost.append(3)
            return True
        return False

    relay.drop = lose_seq_3_once
    with till(tmp_path, ca, broker, ack_timeout_s=1.0) as api:
        h = open_shift(api)
        cash_sales(api, h, 1)  # seqs 1..5
        wait_for("seq 5 at the relay", lambda: 5 in relay.stored)
        wait_for("rows 1-2 acked and gone", lambda: outbox_rows(tmp_path) == [3, 4, 5])
        assert relay.acked == 2
        wait_for("everything acked", lambda: outbox_rows(tmp_path) == [], timeout=5)
    assert lost == [3]
    assert sorted(relay.stored) == [1, 2, 3, 4, 5]
    assert relay.first_arrivals()[-1] == 3  # it came only with the resend


def test_unacked_max_bounds_what_is_unacked_at_the_relay(
    tmp_path: Path, ca: Path, broker: DevBroker, relays: list[Relay]
) -> None:
    broker.start()
    relay = Relay(broker)
    relays.append(relay)
    relay.acking = False
    # The broker PUBACKs at once, so only unacked_max holds the till back, not the window.
    with till(tmp_path, ca, broker, window=2, unacked_max=5) as api:
        h = open_shift(api)
        cash_sales(api, h, 3)  # 13 events
        while relay.acked < 13:
            expected = min(relay.acked + 5, 13)
            wait_for(f"seqs up to {expected}", lambda e=expected: len(relay.stored) == e)
            time.sleep(0.15)  # give a breach of the bound time to show
            assert len(relay.stored) == expected
            relay.ack()
        wait_for("the outbox to drain", lambda: uplink(api)["outbox_depth"] == 0)
        assert (uplink(api)["window"], uplink(api)["unacked_max"]) == (2, 5)
        metrics = api.get("/metrics").text
        assert "tillbox_uplink_window 2\n" in metrics
        assert "tillbox_uplink_unacked_max 5\n" in metrics
    assert relay.max_unacked == 5
    assert relay.first_arrivals() == list(range(1, 14))


def test_the_brokers_receive_maximum_caps_the_window_not_unacked_max(
    tmp_path: Path, ca: Path, broker: DevBroker, relays: list[Relay]
) -> None:
    broker.start()
    conf = broker.config_path.read_text(encoding="utf-8")
    receive_max = int(re.findall(r"^max_inflight_messages (\d+)", conf, re.M)[0])
    relay = Relay(broker)
    relays.append(relay)
    relay.acking = False
    allowance = receive_max + 20
    with till(tmp_path, ca, broker, window=allowance, unacked_max=allowance) as api:
        h = open_shift(api)
        cash_sales(api, h, allowance // 4 + 3)
        wait_for("a full allowance", lambda: len(relay.stored) == allowance)
        time.sleep(0.3)
        assert len(relay.stored) == allowance
        up = uplink(api)
        assert (up["window"], up["unacked_max"]) == (receive_max, allowance)
        assert (up["reconnects"], up["error"]) == (0, None)


def test_a_refused_publish_is_retried_not_deleted_and_logged_once(
    tmp_path: Path,
    ca: Path,
    broker: DevBroker,
    relays: list[Relay],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The box holds another terminal's certificate: the broker's ACL refuses its publishes.
    wrong = certs.issue_terminal(ca, "demo", "t9")
    right = certs.terminal_files(ca, "demo", "t1")
    box = tmp_path / "tls"
    box.mkdir()
    ident = certs.Identity("demo/t1", "terminal", box / "t.crt", box / "t.key")
    shutil.copy(wrong.cert, ident.cert)
    shutil.copy(wrong.key, ident.key)
    broker.start()
    relay = Relay(broker)
    relays.append(relay)
    caplog.set_level(logging.INFO, "tillbox.uplink")
    with till(tmp_path, ca, broker, identity=ident) as api:
        h = open_shift(api)
        cash_sales(api, h, 1)
        wait_for("the refusal", lambda: "refused events" in (uplink(api)["error"] or ""))
        assert "Not authorized" in uplink(api)["error"]
        time.sleep(1.5)  # several retries (backoff 0.1-0.5 s)
        refusals = [r for r in caplog.records if "refused events" in r.getMessage()]
        assert len(refusals) == 1
        assert relay.stored == {} and outbox_rows(tmp_path) == [1, 2, 3, 4, 5]
        # The right certificate is installed; the next connection uses it.
        shutil.copy(right.cert, ident.cert)
        shutil.copy(right.key, ident.key)
        broker.restart()
        wait_for("the outbox to drain", lambda: outbox_rows(tmp_path) == [])
        assert uplink(api)["error"] is None
    assert sorted(relay.stored) == [1, 2, 3, 4, 5]


# -- the real daemon process ---------------------------------------------------------


def daemon_uplink(daemon: Daemon) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{daemon.url}/healthz", timeout=5).json()["uplink"]
    return body


def retained_status(broker: DevBroker) -> dict[str, Any]:
    """What a newcomer to the status topic is told first (the retained message)."""
    got: list[tuple[bytes, bool]] = []
    done = threading.Event()
    settings = broker.settings(certs.relay_files(broker.certs_dir))
    client = settings.new_client(f"status-probe-{uuid.uuid4().hex[:6]}")

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        got.append((bytes(msg.payload), bool(msg.retain)))
        done.set()

    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(f"{PREFIX}/{TERMINAL}/status", qos=1)
    client.connect(settings.host, settings.port)
    client.loop_start()
    try:
        assert done.wait(5), "no retained status"
    finally:
        client.disconnect()
        client.loop_stop()
    payload, retained = got[0]
    assert retained
    status: dict[str, Any] = json.loads(payload)
    return status


def test_kill_minus_nine_mid_drain_then_restart_delivers_everything_in_order(
    tmp_path: Path, broker: DevBroker, relay: Relay, daemon: Daemon
) -> None:
    relay.delay = 0.01  # a slow relay, so the drain takes a while
    broker.stop()  # sales pile up while the broker is away
    daemon.start()
    api = httpx.Client(base_url=daemon.url, timeout=10)
    h = login(api)
    api.post("/api/v1/shifts", json={"opening_float": 0}, headers=h)
    cash_sales(api, h, 30)  # 121 events
    broker.start()
    wait_for("the drain to be under way", lambda: len(relay.stored) >= 30)
    daemon.kill()
    got_before_kill = len(relay.stored)
    assert got_before_kill < 121, "the drain finished before the kill; slow the relay down"
    daemon.start()
    wait_for("all 121 events", lambda: relay.contiguous() == 121, timeout=30)
    wait_for("an empty outbox", lambda: daemon_uplink(daemon)["outbox_depth"] == 0)
    assert relay.first_arrivals() == list(range(1, 122))
    reader = Reader(daemon.config.journal_path)
    try:
        journal = {e["seq"]: e for e in reader.events_from(1)}
    finally:
        reader.close()
    # Duplicates are allowed, but only as the very same event.
    for env in relay.arrivals:
        assert env == journal[env["seq"]]


def test_status_is_retained_online_and_offline_through_the_will(
    broker: DevBroker, relay: Relay, daemon: Daemon
) -> None:
    daemon.start()
    wait_for("online", lambda: daemon_uplink(daemon)["connected"])
    status = retained_status(broker)
    assert status["state"] == "online" and status["version"] and "outbox" in status
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z$", status["at"])
    daemon.kill()  # no DISCONNECT: the broker publishes the will
    wait_for("the will", lambda: retained_status(broker) == {"state": "offline"})
    daemon.start()
    wait_for("online again", lambda: retained_status(broker)["state"] == "online")
    daemon.stop()  # a clean stop says offline itself
    assert retained_status(broker) == {"state": "offline"}


def test_an_idle_daemon_with_the_uplink_stays_small(relay: Relay, daemon: Daemon) -> None:
    daemon.start()
    wait_for("online", lambda: daemon_uplink(daemon)["connected"])
    time.sleep(1.0)
    metrics = httpx.get(f"{daemon.url}/metrics", timeout=5).text
    rss = int(re.findall(r"^tillbox_process_resident_bytes (\d+)$", metrics, re.M)[0])
    assert rss < 80 * 1024 * 1024


def test_the_kiosk_hears_of_uplink_changes_at_most_a_few_times_a_second(
    relay: Relay, daemon: Daemon
) -> None:
    daemon.start()
    wait_for("online", lambda: daemon_uplink(daemon)["connected"])
    api = httpx.Client(base_url=daemon.url, timeout=10)
    h = login(api)
    seen: list[dict[str, Any]] = []

    def listen() -> None:
        token = h["Authorization"].removeprefix("Bearer ")
        with httpx.stream(
            "GET", f"{daemon.url}/api/v1/events", params={"token": token}, timeout=30
        ) as stream:
            for line in stream.iter_lines():
                msg = json.loads(line[6:]) if line.startswith("data: ") else {}
                if msg.get("type") == "uplink":
                    seen.append(msg)
                    if (msg["last_ack_seq"], msg["outbox_depth"]) == (41, 0):
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    time.sleep(0.3)
    started = time.monotonic()
    api.post("/api/v1/shifts", json={"opening_float": 0}, headers=h)
    cash_sales(api, h, 10)  # 41 events, each a change of the outbox
    listener.join(timeout=15)
    assert not listener.is_alive(), f"the drained outbox never reached the stream: {seen[-1:]}"
    assert len(seen) <= (time.monotonic() - started) / 0.25 + 2
    assert seen[-1]["connected"] is True and seen[-1]["oldest_age_s"] is None
