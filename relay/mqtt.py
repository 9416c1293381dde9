# The relay's MQTT 5 link (paho 2.x): TLS, persistent session, manual acks, PUBACK reason codes.
from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tillbox import paho_speedup

from .config import BrokerConfig

log = logging.getLogger("tillbox.relay.mqtt")


@dataclass(frozen=True, slots=True)
class Received:
    """A message from the broker, tagged with the connection it came on (acks are per session
    generation: a packet id from an older connection means something else now)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int


@dataclass(slots=True)
class Publication:
    """One QoS 1 publish; `done` is set when the broker's PUBACK arrived."""

    topic: str
    mid: int
    done: threading.Event = field(default_factory=threading.Event)
    reason: ReasonCode | None = None
    error: str | None = None

    def wait(self, timeout: float) -> bool:
        """True when the broker acknowledged it with a success reason code in time."""
        if not self.done.wait(timeout):
            return False
        return self.error is None and self.reason is not None and not self.reason.is_failure


def tls_context(broker: BrokerConfig) -> ssl.SSLContext:
    """Verify the broker against our CA and its host name; present the relay's certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(broker.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if broker.cert_file is not None:
        ctx.load_cert_chain(broker.cert_file, broker.key_file)
    return ctx


_PUBACK = 0x40


class _Client(mqtt.Client):
    """paho's client, sending a batch of PUBACKs as one write.

    The relay acknowledges a whole group commit at once, hundreds of PUBACKs: paho would wake
    its network thread for each and send each in a TLS record and a system call of its own,
    and the broker would read each alike. This leans on paho 2.2 internals (`_packet_queue`,
    `_packet_write`, `_out_packet`, `_sockpairW`); tests/relay/test_ingest_tls.py checks them.
    """

    _holding = False

    def ack_all(self, mids: Sequence[int]) -> None:
        """PUBACK these QoS 1 messages, waking the network thread once for all of them. Whatever
        another thread queues meanwhile goes out with them."""
        self._holding = True
        try:
            for mid in mids:
                self.ack(mid, 1)
        finally:
            self._holding = False
        wake = self._sockpairW
        if wake is not None:
            with contextlib.suppress(BlockingIOError):
                wake.send(b"0")

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: mqtt.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        if not self._holding:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(_outgoing(command, packet, mid, qos, info))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        out = self._out_packet
        if len(out) > 1 and (out[0]["command"] & 0xF0) == _PUBACK and out[0]["pos"] == 0:
            parts: list[bytes | bytearray] = []
            while out and (out[0]["command"] & 0xF0) == _PUBACK and out[0]["pos"] == 0:
                parts.append(out.popleft()["packet"])
            out.appendleft(_outgoing(_PUBACK, b"".join(parts)))
        return super()._packet_write()


def _outgoing(
    command: int,
    packet: bytes | bytearray,
    mid: int = 0,
    qos: int = 0,
    info: mqtt.MQTTMessageInfo | None = None,
) -> Any:
    """An entry of paho's outgoing queue (its `_OutPacket`), nothing of it written yet."""
    return {
        "command": command,
        "mid": mid,
        "qos": qos,
        "pos": 0,
        "to_process": len(packet),
        "packet": packet,
        "info": info,
    }


class Link:
    """One MQTT v5 connection with the relay's settings. Thread-safe for publish and ack."""

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        client_id: str | None = None,
        persistent: bool = True,
        manual_ack: bool = False,
        subscriptions: Sequence[str] = (),
        on_message: Callable[[Received], None] | None = None,
        on_connected: Callable[[bool], None] | None = None,
    ) -> None:
        paho_speedup.install()
        self.broker = broker
        self.client_id = client_id or broker.client_id
        self.persistent = persistent
        self.subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_connected = on_connected
        self.generation = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._state = threading.Condition()
        self._lock = threading.Lock()
        self._tracked: dict[int, Publication] = {}
        self._early: dict[int, tuple[ReasonCode, str | None]] = {}
        self._stopping = False
        self._last_error: str | None = None
        client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
        if broker.tls:
            client.tls_set_context(tls_context(broker))
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(200)
        client.max_queued_messages_set(50_000)
        client.on_socket_open = self._socket_open
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_publish = self._published
        client.on_subscribe = self._subscribed
        self.client = client

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself after any loss."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.broker.session_expiry if self.persistent else 0
        props.ReceiveMaximum = self.broker.receive_maximum
        self.client.connect_async(
            self.broker.host,
            self.broker.effective_port,
            keepalive=self.broker.keepalive,
            clean_start=not self.persistent,
            properties=props,
        )
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout: float, *, fail_fast: bool = False) -> bool:
        """Wait for the connection; with fail_fast, give up at the first failed attempt."""
        with self._state:
            self._state.wait_for(
                lambda: self.connected.is_set() or (fail_fast and self._last_error is not None),
                timeout,
            )
        return self.connected.is_set()

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> Publication:
        """QoS 1 publish; while disconnected paho keeps it and sends it after reconnecting."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        pub = Publication(topic, info.mid)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            pub.error = mqtt.error_string(info.rc)
            pub.done.set()
            return pub
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._tracked[info.mid] = pub
        if early is not None:
            self._settle(pub, *early)
        return pub

    def ack(self, *messages: Received) -> None:
        """PUBACK received QoS 1 messages, all in one write, except those that came on an earlier
        connection (the broker sends those again, and their packet id may now belong to another
        message)."""
        self.client.ack_all([m.mid for m in messages if m.qos and m.generation == self.generation])

    # ----- paho callbacks (network thread) -------------------------------------------------

    def _socket_open(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        # Acks are tiny and latency-bound: never let Nagle hold them back.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError) as err:
            log.debug("TCP_NODELAY not set: %s", err)

    def _connected(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._note_error(f"broker refused the connection: {reason}")
            return
        self.generation += 1
        self._last_error = None
        log.info(
            "connected to %s:%d as %s (session %s)",
            self.broker.host,
            self.broker.effective_port,
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        if self.subscriptions:
            client.subscribe([(topic, 1) for topic in self.subscriptions])
        with self._state:
            self.connected.set()
            self._state.notify_all()
        if self._on_connected:
            self._on_connected(bool(flags.session_present))

    def _connect_failed(self, _client: mqtt.Client, _userdata: Any) -> None:
        where = f"{self.broker.host}:{self.broker.effective_port}"
        self._note_error(f"cannot reach the broker at {where}; retrying")

    def _disconnected(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self.subscribed.clear()
        if self.connected.is_set():
            self.connected.clear()
            if self._stopping:
                log.info("disconnected from the broker")
            else:
                log.warning("lost the broker connection (%s); reconnecting", reason)

    def _note_error(self, text: str) -> None:
        if text != self._last_error:
            log.error("%s", text)
        with self._state:
            self._last_error = text
            self._state.notify_all()

    def _message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._on_message:
            self._on_message(
                Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.generation)
            )

    def _published(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        with self._lock:
            pub = self._tracked.pop(mid, None)
            if pub is None:
                self._early[mid] = (reason, None)
                return
        self._settle(pub, reason, None)

    def _settle(self, pub: Publication, reason: ReasonCode, error: str | None) -> None:
        pub.reason, pub.error = reason, error
        if reason.is_failure:
            log.error("broker refused publish to %s: %s", pub.topic, reason)
        pub.done.set()

    def _subscribed(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode],
        _props: Properties | None,
    ) -> None:
        refused = [(t, r) for t, r in zip(self.subscriptions, reasons) if r.is_failure]
        for topic, reason in refused:
            self._note_error(f"broker refused the subscription {topic}: {reason}")
        if not refused:
            log.info("subscribed to %s", ", ".join(self.subscriptions))
            self.subscribed.set()
