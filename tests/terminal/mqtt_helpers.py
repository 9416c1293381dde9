# purpose: a real TLS Mosquitto per test, a stand-in relay (acker, publisher) and uplink configs.
"""Helpers for the uplink and down-sync tests.

The broker is `tillbox.devbroker.DevBroker`: the shipped `relay/mosquitto/` configuration
(TLS with client certificates, the ACL) on a free 127.0.0.1 port, with a CA made in a
temporary folder. `tests/relay/conftest.py` did not exist when these were written, so the
broker is started here rather than through its `broker` fixture.

`Relay` stands in for the real relay, which is being written at the same time: it takes
events, acks the highest contiguous seq, and publishes down-sync documents, with knobs to
stop acking and to drop messages.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from terminal.demo.run import free_port, write_config
from tillbox import certs
from tillbox.contract import validate_envelope
from tillbox.devbroker import DevBroker

STORE, TERMINAL = "demo", "t1"
PREFIX = f"tillbox/v1/{STORE}"


def make_ca(folder: Path) -> Path:
    """A CA with the broker's, this terminal's and the relay's certificates."""
    certs.init_ca(folder)
    certs.issue_terminal(folder, STORE, TERMINAL)
    certs.issue_relay(folder)
    return folder


def uplink_config(
    folder: Path, ca: Path, broker_port: int, identity: certs.Identity | None = None, **keys: Any
) -> Path:
    """The demo config in `folder` with `[uplink]` on, pointed at the broker with TLS."""
    ident = identity or certs.terminal_files(ca, STORE, TERMINAL)
    values: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker_port,
        "ca": str(certs.ca_files(ca).cert),
        "cert": str(ident.cert),
        "key": str(ident.key),
        "keepalive": 5,
        "backoff_min_s": 0.1,
        "backoff_max_s": 0.5,
        "ack_timeout_s": 30,
    } | keys
    path = write_config(folder, free_port())
    lines = ["", "[uplink]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until `check()` is truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Relay:
    """Stand-in relay: a persistent MQTT session that stores events by seq and acks `upto`.

    Knobs: `acking` (False: store but never ack), `drop(env)` (True: act as if the message
    was lost), `delay` (seconds spent on each event, to slow a drain down).
    """

    def __init__(self, broker: DevBroker, name: str | None = None) -> None:
        self.broker = broker
        self.acking = True
        self.drop: Callable[[dict[str, Any]], bool] = lambda env: False
        self.delay = 0.0
        self.arrivals: list[dict[str, Any]] = []  # every event copy, in arrival order
        self.stored: dict[int, dict[str, Any]] = {}
        self.acked = 0
        self.max_unacked = 0
        self.messages: list[tuple[str, bytes, bool]] = []  # other topics: (topic, payload, retain)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        settings = broker.settings(certs.relay_files(broker.certs_dir))
        self.client = settings.new_client(name or f"test-relay-{uuid.uuid4().hex[:8]}")
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect(settings.host, settings.port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the test relay could not subscribe")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(
            [
                (f"{PREFIX}/+/events", SubscribeOptions(qos=1)),
                (f"{PREFIX}/+/status", SubscribeOptions(qos=1)),
                (f"{PREFIX}/+/resync", SubscribeOptions(qos=1)),
            ]
        )

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.topic.endswith("/events"):
            with self._lock:
                self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            return
        env = validate_envelope(json.loads(msg.payload))
        if self.drop(env):
            return
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.arrivals.append(env)
            known = self.stored.setdefault(env["seq"], env)
            assert known["id"] == env["id"] and known["hash"] == env["hash"], "seq reused"
            self.max_unacked = max(self.max_unacked, len(self.stored) - self.acked)
        if self.acking:
            self.ack()

    def contiguous(self) -> int:
        with self._lock:
            upto = self.acked
            while upto + 1 in self.stored:
                upto += 1
            return upto

    def ack(self) -> int:
        """Ack the highest contiguous seq stored (what the real relay does)."""
        upto = self.contiguous()
        with self._lock:
            self.acked = max(self.acked, upto)
        self.client.publish(f"{PREFIX}/{TERMINAL}/ack", json.dumps({"upto": upto}), qos=1)
        return upto

    def first_arrivals(self) -> list[int]:
        """Each seq once, in the order it first arrived."""
        seen: set[int] = set()
        order = []
        with self._lock:
            for env in self.arrivals:
                if env["seq"] not in seen:
                    seen.add(env["seq"])
                    order.append(env["seq"])
        return order

    def copies(self, seq: int) -> int:
        with self._lock:
            return sum(1 for e in self.arrivals if e["seq"] == seq)

    def on_topic(self, suffix: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.messages if t.endswith(suffix)]

    def publish(self, topic: str, doc: Any, retain: bool = False) -> None:
        info = self.client.publish(f"{PREFIX}/{topic}", json.dumps(doc), qos=1, retain=retain)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def running(broker: DevBroker) -> Iterator[DevBroker]:
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def health(client: httpx.Client | Any, base: str = "") -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{base}/healthz").json()
    return body


def login(client: httpx.Client | Any, pin: str = "1111") -> dict[str, str]:
    r = client.post("/api/v1/sessions", json={"pin": pin})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def cash_sales(client: httpx.Client | Any, headers: dict[str, str], count: int) -> None:
    """Ring up `count` one-line cash sales (4 journal events each)."""
    for _ in range(count):
        r = client.post("/api/v1/sales", headers=headers)
        assert r.status_code == 201, r.text
        sale = r.json()["sale_id"]
        r = client.post(
            f"/api/v1/sales/{sale}/lines", json={"barcode": "43742844"}, headers=headers
        )
        assert r.status_code == 201, r.text
        r = client.post(
            f"/api/v1/sales/{sale}/payments",
            json={"method": "cash", "tendered": 1000},
            headers=headers,
        )
        assert r.json()["status"] == "completed", r.text
