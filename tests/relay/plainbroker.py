# A plain mosquitto (no TLS) on a free 127.0.0.1 port, and a test till that publishes envelopes.
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from relay.config import BrokerConfig, DatabaseConfig, IngestConfig, RelayConfig
from tillbox.contract import GENESIS_HASH, SCHEMA, ack_topic, event_hash, events_topic

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PlainBroker:
    """mosquitto without TLS or ACL: the relay's MQTT behaviour, not the fleet's security."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "mosquitto.log"

    def start(self) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.fail("mosquitto is not installed: apt-get install mosquitto (scripts/setup)")
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
            "max_queued_bytes 0\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n",
            encoding="utf-8",
        )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not listen in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def broker_config(self, client_id: str = "relay-test") -> BrokerConfig:
        return BrokerConfig(host=self.host, port=self.port, client_id=client_id)

    def relay_config(
        self, db_url: str, client_id: str = "relay-test", **ingest: Any
    ) -> RelayConfig:
        settings = {"batch_size": 200, "max_batch_delay_ms": 5, "gap_alert_after_s": 0.3}
        settings.update(ingest)
        return RelayConfig(
            broker=self.broker_config(client_id),
            database=DatabaseConfig(url=db_url),
            ingest=IngestConfig.model_validate(settings),
        )


@pytest.fixture(name="plain_broker")
def plain_broker_fixture(tmp_path: Path) -> Iterator[PlainBroker]:
    broker = PlainBroker(tmp_path / "plain-broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        assert broker.proc is None or broker.proc.poll() is not None, "mosquitto outlived its test"


def chain(
    store: str,
    terminal: str,
    n: int,
    *,
    start: int = 1,
    prev: str = GENESIS_HASH,
    type_: str = "sale.completed",
) -> list[dict[str, Any]]:
    """n envelopes as a terminal's journal writes them: seq gap-free, hash-chained."""
    out: list[dict[str, Any]] = []
    for seq in range(start, start + n):
        env: dict[str, Any] = {
            "schema": SCHEMA,
            "id": str(uuid.uuid4()),
            "type": type_,
            "store": store,
            "terminal": terminal,
            "seq": seq,
            "at": "2026-11-27T10:15:00Z",
            "prev_hash": prev,
            "data": {"sale_id": str(uuid.uuid4()), "total": 100 + seq},
        }
        env["hash"] = prev = event_hash(env)
        out.append(env)
    return out


def encode(env: dict[str, Any]) -> bytes:
    return json.dumps(env).encode()


class Till:
    """A test terminal on the broker: publishes events (QoS 1) and records the relay's acks."""

    def __init__(self, host: str, port: int, store: str, terminal: str) -> None:
        self.store, self.terminal = store, terminal
        self._cond = threading.Condition()
        self.acks: list[int] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"till-{store}-{terminal}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(100)
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(ack_topic(store, terminal), qos=1)
        assert self._subscribed.wait(TIMEOUT), "no SUBACK for the ack topic"

    def _message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.acks.append(json.loads(msg.payload)["upto"])
            self._cond.notify_all()

    @property
    def topic(self) -> str:
        return events_topic(self.store, self.terminal)

    def send(self, *envs: dict[str, Any], topic: str | None = None) -> None:
        self.send_raw(*(encode(e) for e in envs), topic=topic)

    def send_raw(self, *payloads: bytes, topic: str | None = None) -> None:
        infos = [self.client.publish(topic or self.topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(TIMEOUT)

    @property
    def upto(self) -> int:
        with self._cond:
            return max(self.acks, default=-1)

    def wait_upto(self, seq: int, timeout: float = TIMEOUT) -> int:
        with self._cond:
            self._cond.wait_for(lambda: max(self.acks, default=-1) >= seq, timeout)
            return max(self.acks, default=-1)

    def wait_acks(self, count: int, timeout: float = TIMEOUT) -> list[int]:
        """Wait until at least `count` acks have come; return all of them."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.acks) >= count, timeout)
            return list(self.acks)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(predicate: Callable[[], object], timeout: float = TIMEOUT) -> bool:
    """Poll until `predicate()` is true; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
