# Shared MQTT fixtures: a dev CA, a real mosquitto built from relay/mosquitto/, and test clients.
"""Fixtures for every test that needs the real broker (relay, uplink, demo).

``pki`` -> :class:`Pki`
    A development CA in ``tmp_path / "pki"`` with the standard cast already issued:
    terminals ``s1/t1``, ``s1/t2``, ``s2/t1``, the ``relay`` and the ``operator``.
    ``pki.terminal("s1", "t3")`` issues another on first use (the running broker learns
    its down-sync grant only after ``broker.reload()``); ``pki.relay(name)``,
    ``pki.operator()`` likewise. Each returns a :class:`tillbox.certs.Identity`.

``broker`` -> :class:`tillbox.devbroker.DevBroker`
    ``mosquitto`` started in ``tmp_path / "broker"`` with that CA on a free 127.0.0.1
    port; stopped after the test (and the test fails if it cannot be). ``broker.kill()``,
    ``broker.restart(keep_persistence=...)`` and ``broker.reload()`` are there to use.

``mqtt_clients`` -> :class:`MqttFactory`
    ``mqtt_clients.connect(identity, client_id=None, *, clean_start=True,
    session_expiry=0, will=None, protocol=MQTTv5)`` returns a connected :class:`Probe`
    (TLS with that identity's certificate) or raises :class:`ConnectFailed`;
    ``mqtt_clients.attempt(settings)`` returns the CONNACK reason code, or None when the
    broker never sent one (TLS refused, connection dropped). Every probe is disconnected
    after the test.

:class:`Probe` waits for the broker's answers so tests read straight through:
``publish(topic, payload) -> ReasonCode`` (the PUBACK's), ``subscribe(filter) ->
ReasonCode`` (the SUBACK's), ``next_message()``, ``messages(n)``, ``silent(seconds)``,
``disconnect()``. ``ReasonCode.value`` is the MQTT 5 code: 0 success, 0x10 "no matching
subscribers" (still a success), 0x87 not authorized.

Tests outside ``tests/relay/`` can import these classes (``from tests.relay.conftest
import Probe``); the fixtures themselves apply to tests in this folder.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tillbox import certs
from tillbox.devbroker import DevBroker, MqttSettings

TIMEOUT = 10.0
STANDARD_TERMINALS = (("s1", "t1"), ("s1", "t2"), ("s2", "t1"))


class Pki:
    """A dev CA folder and the identities issued from it."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        certs.init_ca(folder)
        self._issued: dict[tuple[str, str], certs.Identity] = {}
        for store, terminal in STANDARD_TERMINALS:
            self.terminal(store, terminal)
        self.relay()
        self.operator()

    def terminal(self, store: str, terminal: str) -> certs.Identity:
        key = ("terminal", certs.terminal_name(store, terminal))
        if key not in self._issued:
            self._issued[key] = certs.issue_terminal(self.dir, store, terminal)
        return self._issued[key]

    def relay(self, name: str = "relay") -> certs.Identity:
        if ("relay", name) not in self._issued:
            self._issued[("relay", name)] = certs.issue_relay(self.dir, name)
        return self._issued[("relay", name)]

    def operator(self, name: str = "operator") -> certs.Identity:
        if ("operator", name) not in self._issued:
            self._issued[("operator", name)] = certs.issue_operator(self.dir, name)
        return self._issued[("operator", name)]


class ConnectFailed(AssertionError):
    """The broker did not accept the connection."""


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Probe:
    """A paho MQTT 5 client whose calls wait for the broker's answer."""

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        if protocol == mqtt.MQTTv5:
            self.client = settings.new_client(client_id)
        else:
            self.client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=protocol,
            )
            self.client.tls_set_context(settings.ssl_context())
        self._lock = threading.Condition()
        self._connack: ReasonCode | None = None
        self._disconnected = False
        self._pubacks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._inbox: deque[mqtt.MQTTMessage] = deque()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def connect(
        self,
        *,
        clean_start: bool = True,
        session_expiry: int = 0,
        will: Will | None = None,
        timeout: float = TIMEOUT,
    ) -> ReasonCode | None:
        """CONNECT and wait: the CONNACK's reason code, or None if the connection died first."""
        if will is not None:
            self.client.will_set(will.topic, will.payload, will.qos, will.retain)
        props: Properties | None = None
        if self.client.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry
            self.client.connect(
                self.settings.host,
                self.settings.port,
                keepalive=30,
                clean_start=clean_start,
                properties=props,
            )
        else:
            self.client.connect(self.settings.host, self.settings.port, keepalive=30)
        self.client.loop_start()
        with self._lock:
            self._lock.wait_for(lambda: self._connack is not None or self._disconnected, timeout)
            return self._connack

    def publish(
        self, topic: str, payload: bytes = b"{}", qos: int = 1, retain: bool = False
    ) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        with self._lock:
            if not self._lock.wait_for(lambda: info.mid in self._pubacks, TIMEOUT):
                raise AssertionError(f"no PUBACK for {topic} within {TIMEOUT} s")
            return self._pubacks.pop(info.mid)

    def subscribe(self, topic_filter: str, qos: int = 1) -> ReasonCode:
        _, mid = self.client.subscribe(topic_filter, qos=qos)
        assert mid is not None
        with self._lock:
            if not self._lock.wait_for(lambda: mid in self._subacks, TIMEOUT):
                raise AssertionError(f"no SUBACK for {topic_filter} within {TIMEOUT} s")
            return self._subacks.pop(mid)[0]

    def next_message(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        """The oldest message not yet taken, waiting up to `timeout` for one."""
        with self._lock:
            if not self._lock.wait_for(lambda: bool(self._inbox), timeout):
                raise AssertionError(f"{self.client_id}: no message within {timeout} s")
            return self._inbox.popleft()

    def messages(self, count: int, timeout: float = TIMEOUT) -> list[mqtt.MQTTMessage]:
        return [self.next_message(timeout) for _ in range(count)]

    def silent(self, seconds: float = 0.5) -> bool:
        """True if no message is waiting or arrives within `seconds` (none is taken)."""
        with self._lock:
            return not self._lock.wait_for(lambda: bool(self._inbox), seconds)

    def disconnect(self) -> None:
        """A clean DISCONNECT: the broker discards the will."""
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        with self._lock:
            self._connack = rc
            self._lock.notify_all()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        with self._lock:
            self._disconnected = True
            self._lock.notify_all()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        with self._lock:
            self._pubacks[mid] = rc
            self._lock.notify_all()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[ReasonCode], props: Any
    ) -> None:
        with self._lock:
            self._subacks[mid] = rcs
            self._lock.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._inbox.append(msg)
            self._lock.notify_all()


class MqttFactory:
    """Connects probes to one broker and disconnects them all at the end of the test."""

    def __init__(self, broker: DevBroker) -> None:
        self.broker = broker
        self.probes: list[Probe] = []
        self._n = 0

    def probe(self, settings: MqttSettings, client_id: str | None = None, **kw: Any) -> Probe:
        self._n += 1
        probe = Probe(settings, client_id or f"probe-{self._n}", **kw)
        self.probes.append(probe)
        return probe

    def connect(
        self,
        identity: certs.Identity,
        client_id: str | None = None,
        *,
        clean_start: bool = True,
        session_expiry: int = 0,
        will: Will | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> Probe:
        probe = self.probe(self.broker.settings(identity), client_id, protocol=protocol)
        rc = probe.connect(clean_start=clean_start, session_expiry=session_expiry, will=will)
        if rc is None or rc.is_failure:
            probe.disconnect()
            raise ConnectFailed(f"{identity.name}: broker refused the connection ({rc})")
        return probe

    def attempt(self, settings: MqttSettings, client_id: str | None = None) -> ReasonCode | None:
        """Try to connect: the CONNACK reason code, or None if the broker never sent one."""
        probe = self.probe(settings, client_id)
        try:
            return probe.connect(timeout=5)
        except OSError:
            return None
        finally:
            probe.disconnect()

    def close(self) -> None:
        for probe in self.probes:
            probe.disconnect()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[DevBroker]:
    b = DevBroker(tmp_path / "broker", pki.dir)
    b.start()
    try:
        yield b
    finally:
        pid = b.pid
        b.stop()
        assert pid is None or not Path(f"/proc/{pid}").exists(), "mosquitto outlived its test"


@pytest.fixture
def mqtt_clients(broker: DevBroker) -> Iterator[MqttFactory]:
    factory = MqttFactory(broker)
    try:
        yield factory
    finally:
        factory.close()
