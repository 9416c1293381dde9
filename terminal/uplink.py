# Store-and-forward uplink: the journal's outbox to MQTT 5 (QoS 1), deleted on the relay's ack.
"""The outbox is the source of truth; paho only carries bytes for one connection.

Each connection gets a fresh paho client, so nothing paho queued for an old connection is
replayed past our limits: on every (re)connect sending restarts at the lowest row the relay
has not acked. Two limits: `window` PUBLISHes without a PUBACK (MQTT flow control, as any
QoS 1 publisher has), and `unacked_max` events past the relay's end-to-end ack (what a
resend repeats), so several of the relay's group commits can be in flight at once.
Everything MQTT happens on one thread; deletions go through the service's writer, down-sync
documents to the down-sync thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

import tillbox
from tillbox import paho_speedup
from tillbox.contract import (
    ack_topic,
    cmd_result_topic,
    cmd_topic,
    downsync_topic,
    events_topic,
    resync_topic,
    status_topic,
)

from .config import TerminalConfig
from .downsync import FAMILIES, KINDS, DownSync, Family, parse_topic
from .journal import Reader, wire
from .service import TillService, utcnow

log = logging.getLogger("tillbox.uplink")

_OUTBOX_SQL: Final = (
    "SELECT e.seq, e.id, e.type, e.store, e.terminal, e.at, e.data, e.prev_hash, e.hash "
    "FROM outbox o JOIN events e ON e.seq = o.seq WHERE o.seq > ? ORDER BY o.seq LIMIT ?"
)
_TICK_S: Final = 0.05  # how long one network pass waits: also the latency to a new sale
_PUSH_S: Final = 0.25  # the kiosk hears of uplink changes at most this often
_OFFLINE: Final = b'{"state":"offline"}'
_RECEIVE_MAXIMUM: Final = 65535  # MQTT 5's value when the broker names none


class Backoff:
    """Exponential delays with jitter, so a fleet never retries in lockstep."""

    def __init__(self, low: float, high: float, rng: random.Random | None = None) -> None:
        self.low, self.high = low, high
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        cap = min(self.high, self.low * 2 ** (self.failures + 1))
        self.failures += 1
        return self._rng.uniform(self.low, max(self.low, cap))

    def reset(self) -> None:
        self.failures = 0


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def age_seconds(queued_at: str | None) -> float | None:
    """Seconds since an RFC 3339 UTC time from the journal."""
    if queued_at is None:
        return None
    then = datetime.strptime(queued_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round(max(0.0, (datetime.now(UTC) - then).total_seconds()), 3)


class Uplink:
    """Owns the MQTT connection (one thread) and the down-sync (another); never blocks callers."""

    def __init__(self, config: TerminalConfig, service: TillService) -> None:
        paho_speedup.install()
        self.config = config
        self.cfg = config.uplink
        self.service = service
        store, terminal = config.store_id, config.terminal_id
        self.events_topic = events_topic(store, terminal)
        self.ack_topic = ack_topic(store, terminal)
        self.status_topic = status_topic(store, terminal)
        self.resync_topic = resync_topic(store, terminal)
        self.sync = DownSync(config, service, self.request_resync)
        # Fleet commands (docs/updates.md): handlers run on the uplink thread and must not block.
        self.cmd_prefix = cmd_topic(store, terminal, "")
        self.result_topic = cmd_result_topic(store, terminal)
        self._commands: dict[str, Callable[[bytes], None]] = {}
        self._results: deque[bytes] = deque(maxlen=1000)  # cmd-results waiting to be sent
        self._status_extra: dict[str, Any] = {}
        self._status_changed = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._resyncs: set[Family] = set()
        # Written by the uplink thread only; read (as plain values) by the API.
        self.state = "connecting"
        self.error: str | None = None
        self.window = self.cfg.window
        self.unacked_max = self.cfg.unacked_max
        self.acked = 0  # every seq up to here is stored by the relay
        self.last_ack_seq: int | None = None
        self.last_ack_at: float | None = None
        self.depth = 0
        self.oldest: str | None = None
        self.resends = 0
        self.reconnects = 0
        self._sent = 0  # highest seq published since the last (re)send point
        self._pending: dict[int, int] = {}  # mid -> seq: PUBLISHes the broker has not PUBACKed
        self._status_mids: set[int] = set()
        self._refusing = False
        self._unanswered = False
        self._progress_at = 0.0
        self._hold_until = 0.0
        self._refused = Backoff(self.cfg.backoff_min_s, self.cfg.backoff_max_s)
        self._deleting: tuple[int, Future[int]] | None = None
        self._deleted = 0
        self._delete_after = 0.0
        self._connack: tuple[ReasonCode, bool, Properties | None] | None = None
        self._dropped: str | None = None
        self._subscribed: dict[int, list[str]] = {}
        self._seen: tuple[int, int] | None = None
        self._pushed: tuple[Any, ...] | None = None
        self._pushed_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the uplink and down-sync threads; returns at once (works offline too)."""
        self._stop.clear()
        for name, body in (("uplink", self._run), ("downsync", self._run_sync)):
            thread = threading.Thread(
                target=self._supervise, args=(name, body), name=f"tillbox-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Say goodbye to the broker (retained offline status) and stop both threads."""
        self._stop.set()
        self.sync.stop()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _supervise(self, name: str, body: Callable[[], None]) -> None:
        """A crash is logged and the body restarted after a pause; it never ends the daemon."""
        pause = Backoff(1.0, 30.0)
        last = ""
        while not self._stop.is_set():
            try:
                body()
            except Exception as err:
                if repr(err) != last:  # the traceback once, not every restart
                    log.exception("%s thread crashed; restarting it", name)
                else:
                    log.warning("%s thread crashed again (%s); restarting it", name, err)
                last = repr(err)
                self._stop.wait(pause.next())

    def _run_sync(self) -> None:
        self.sync.run(self._stop)

    def request_resync(self, family: Family) -> None:
        """From the down-sync thread: fetch the family's snapshot again and tell the relay."""
        with self._lock:
            self._resyncs.add(family)

    # -- fleet commands and status ----------------------------------------------------

    def on_command(self, name: str, handler: Callable[[bytes], None]) -> None:
        """Hand `cmd/{name}` payloads to `handler` (called on the uplink thread)."""
        self._commands[name] = handler

    def send_result(self, doc: dict[str, Any]) -> None:
        """Queue a `cmd-result` document; sent in order once connected (any thread)."""
        self._results.append(json.dumps(doc, separators=(",", ":")).encode())

    def set_status(self, key: str, value: Any) -> None:
        """Add `key` to the retained status and republish it (any thread)."""
        with self._lock:
            self._status_extra[key] = value
            self._status_changed = True

    def _status_payload(self) -> bytes:
        with self._lock:
            extra = dict(self._status_extra)
            self._status_changed = False
        status = {"state": "online", "version": tillbox.__version__, "outbox": self.depth}
        return json.dumps(status | extra | {"at": utcnow()}, separators=(",", ":")).encode()

    def _flush_fleet(self, client: mqtt.Client) -> None:
        if self._status_changed:
            self._publish_status(client, self._status_payload())
        while self._results:
            payload = self._results[0]
            info = client.publish(self.result_topic, payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # the connection is gone; sent after the next connect
            self._results.popleft()

    def _on_command(self, name: str, payload: bytes) -> None:
        handler = self._commands.get(name)
        if handler is None:
            log.warning("ignoring unknown fleet command %r", name)
            with contextlib.suppress(ValueError, AttributeError, RecursionError):
                cid = json.loads(payload).get("id")
                if isinstance(cid, str):
                    self.send_result({"id": cid, "ok": False, "error": f"unknown command {name}"})
            return
        try:
            handler(payload)
        except Exception:
            log.exception("the %s command handler failed", name)

    # -- views -------------------------------------------------------------------------

    def view(self, depth: int, oldest: str | None) -> dict[str, Any]:
        """The `uplink` object of /healthz and of the kiosk's `uplink` event."""
        return {
            "enabled": True,
            "state": self.state,
            "connected": self.state == "online",
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "outbox_depth": depth,
            "oldest_queued_at": oldest,
            "oldest_age_s": age_seconds(oldest),
            "last_ack_seq": self.last_ack_seq,
            "last_ack_at": _iso(self.last_ack_at),
            "in_flight": max(0, self._sent - self.acked),
            "window": self.window,
            "unacked_max": self.unacked_max,
            "resends": self.resends,
            "reconnects": self.reconnects,
            "error": self.error,
            "sync": self.sync.states(),
        }

    # -- the connection loop -----------------------------------------------------------

    def _run(self) -> None:
        reader = Reader(self.config.journal_path, immutable=self.service.journal is None)
        try:
            self._reset_floor(reader)
            self.last_ack_seq = self.acked
            backoff = Backoff(self.cfg.backoff_min_s, self.cfg.backoff_max_s)
            while not self._stop.is_set():
                client = self._connect()
                if client is not None:
                    backoff.reset()
                    self._session(client, reader)
                if not self._stop.is_set():
                    self._idle(reader, backoff.next())
        finally:
            reader.close()

    def _idle(self, reader: Reader, seconds: float) -> None:
        """Wait before the next attempt, keeping the health view fresh meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._refresh(reader)
            self._stop.wait(min(_PUSH_S, max(0.0, deadline - time.monotonic())))

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        client.connect_timeout = 10.0
        if self.cfg.tls:
            # Read on every connect, so a renewed certificate is used without a restart.
            ctx = ssl.create_default_context(cafile=str(self.cfg.ca))
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(str(self.cfg.cert), str(self.cfg.key))
            client.tls_set_context(ctx)
        client.will_set(self.status_topic, _OFFLINE, qos=1, retain=True)
        client.max_inflight_messages_set(self.cfg.window)  # paho's fence; `_pump` keeps within it
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect(self) -> mqtt.Client | None:
        """Connect with the persistent session; the client once CONNACK said yes, else None."""
        self.state = "connecting"
        where = f"{self.cfg.host}:{self.cfg.port}"
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        self._connack = None
        self._dropped = None
        try:
            client = self._new_client()
            client.connect(
                self.cfg.host,
                self.cfg.port,
                keepalive=self.cfg.keepalive,
                clean_start=False,
                properties=props,
            )
        except OSError as err:  # refused, unreachable, TLS files or handshake (ssl.SSLError)
            self._problem(f"cannot connect to the broker at {where}: {err}")
            self.state = "offline"
            return None
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + client.connect_timeout
        while self._connack is None and time.monotonic() < deadline and not self._stop.is_set():
            if client.loop(_TICK_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        connack = self._connack
        if connack is None or connack[0].is_failure:
            why = "no CONNACK in time" if connack is None else str(connack[0])
            self._problem(f"the broker at {where} refused the connection: {why}")
            _close(client)
            self.state = "offline"
            return None
        return client

    def _session(self, client: mqtt.Client, reader: Reader) -> None:
        assert self._connack is not None
        _, session_present, props = self._connack
        receive_max = getattr(props, "ReceiveMaximum", _RECEIVE_MAXIMUM)
        self.window = max(1, min(self.cfg.window, int(receive_max)))
        self._pending.clear()
        self._status_mids.clear()
        self._subscribed.clear()
        self._reset_floor(reader)
        self._hold_until = 0.0
        self._subscribe(client)
        self._refresh(reader, force=True)
        self._publish_status(client, self._status_payload())
        self.error = None  # the line below says the connection is back
        self.state = "online"
        log.info(
            "connected to %s:%d as %s (session %s, window %d)",
            self.cfg.host,
            self.cfg.port,
            self.config.client_id,
            "resumed" if session_present else "new",
            self.window,
        )
        try:
            while not self._stop.is_set():
                if client.loop(_TICK_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                self._pump(client, reader)
                self._refresh(reader)
            if self._stop.is_set():
                self._goodbye(client)
            else:
                log.warning(
                    "lost the connection to %s:%d (%s); sales wait in the outbox",
                    self.cfg.host,
                    self.cfg.port,
                    self._dropped or "connection closed",
                )
        finally:
            _close(client)
            if not self._stop.is_set():
                self.reconnects += 1
            self._pending.clear()
            self.state = "offline"
            self._refresh(reader, force=True)

    def _goodbye(self, client: mqtt.Client) -> None:
        """A clean stop: the retained status says offline (a DISCONNECT suppresses the will)."""
        mid = self._publish_status(client, _OFFLINE)
        deadline = time.monotonic() + 2.0
        while mid in self._status_mids and time.monotonic() < deadline:
            if client.loop(_TICK_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
        self._flush_deletes(wait=True)

    def _publish_status(self, client: mqtt.Client, payload: bytes) -> int:
        info = client.publish(self.status_topic, payload, qos=1, retain=True)
        self._status_mids.add(info.mid)
        return info.mid

    def _subscribe(self, client: mqtt.Client) -> None:
        """Always subscribe: cheap with a resumed session, and it brings retained snapshots."""
        store = self.config.store_id
        topics = [self.ack_topic, self.cmd_prefix + "+"] + [
            downsync_topic(store, family, kind) for family in FAMILIES for kind in KINDS
        ]
        result, mid = client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
            self._subscribed[mid] = topics

    # -- sending -----------------------------------------------------------------------

    def _reset_floor(self, reader: Reader) -> None:
        """Rows below the outbox's lowest were acked before; sending restarts just above."""
        row = reader.conn.execute("SELECT min(seq) FROM outbox").fetchone()
        floor = int(row[0]) - 1 if row[0] is not None else reader.last_seq()
        self.acked = max(self.acked, floor)
        self._deleted = max(self._deleted, floor)
        self._sent = self.acked
        self._progress_at = time.monotonic()

    def _pump(self, client: mqtt.Client, reader: Reader) -> None:
        now = time.monotonic()
        self._flush_deletes()
        self._flush_resyncs(client)
        self._flush_fleet(client)
        if self._sent > self.acked and now - self._progress_at > self.cfg.ack_timeout_s:
            if not self._unanswered:  # once per silence, not on every resend
                log.warning(
                    "no ack from the relay for %.0f s; sending again from seq %d",
                    now - self._progress_at,
                    self.acked + 1,
                )
            self._unanswered = True
            self.resends += 1
            self._sent = self.acked
            self._progress_at = now
        if now < self._hold_until:
            return
        room = min(self.window - len(self._pending), self.acked + self.unacked_max - self._sent)
        if room <= 0 or self.service.seq <= self._sent:
            return
        for row in reader.conn.execute(_OUTBOX_SQL, (self._sent, room)).fetchall():
            info = client.publish(self.events_topic, wire(row), qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # the connection is gone; the loop notices
            if self._sent == self.acked:
                self._progress_at = now  # the ack clock starts with the first unacked send
            self._pending[info.mid] = self._sent = row[0]

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        """A PUBACK: flow control only. Rows are deleted on the relay's ack, never here."""
        self._status_mids.discard(mid)
        seq = self._pending.pop(mid, None)
        if seq is None:
            if reason.is_failure:
                self._problem(f"the broker refused the status message: {reason}")
            return
        if not reason.is_failure:
            if self._refusing:
                self._refusing = False
                self._refused.reset()
                self._problem(None)  # logs "recovered"
            return
        # Not stored (an access rule, a quota): wait, then send again from this row.
        self._refusing = True
        self._problem(f"the broker refused events: {reason}; retrying")
        self._hold_until = time.monotonic() + self._refused.next()
        self._sent = max(self.acked, min(self._sent, seq - 1))

    # -- acks and deletions ------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        if message.topic == self.ack_topic:
            self._on_ack(payload)
            return
        if message.topic.startswith(self.cmd_prefix):
            self._on_command(message.topic[len(self.cmd_prefix) :], payload)
            return
        found = parse_topic(self.config.store_id, message.topic)
        if found is not None:
            self.sync.submit(found[0], found[1], payload)

    def _on_ack(self, payload: bytes) -> None:
        try:
            upto = json.loads(payload)["upto"]
        except (ValueError, KeyError, TypeError, RecursionError):
            upto = None
        if isinstance(upto, bool) or not isinstance(upto, int):
            self._problem(f"an ack from the relay is malformed: {payload[:80]!r}")
            return
        head = self.service.seq
        if upto > head:
            self._problem(f"the relay acked seq {upto} but the journal ends at {head}")
            upto = head
        if upto <= self.acked:
            return  # an old or repeated ack
        self.acked = upto
        self._sent = max(self._sent, upto)
        self.last_ack_seq = upto
        self.last_ack_at = time.time()
        self._progress_at = time.monotonic()
        if self._unanswered:
            self._unanswered = False
            log.info("the relay acks again (up to seq %d)", upto)

    def _flush_deletes(self, wait: bool = False) -> None:
        """Deletions run one at a time on the writer; acks arriving meanwhile are batched."""
        if self._deleting is not None:
            upto, future = self._deleting
            if wait:
                with contextlib.suppress(TimeoutError):
                    future.exception(timeout=5.0)
            if not future.done():
                return
            self._deleting = None
            try:
                future.result()
                self._deleted = max(self._deleted, upto)
            except Exception as err:
                self._problem(f"acked rows could not be removed from the outbox: {err}")
                self._delete_after = time.monotonic() + self.cfg.backoff_min_s
        if self.acked > self._deleted and time.monotonic() >= self._delete_after:
            try:
                self._deleting = (self.acked, self.service.forget_outbox(self.acked))
            except RuntimeError:
                return  # the writer is shutting down; the rows are resent and acked next time

    def _flush_resyncs(self, client: mqtt.Client) -> None:
        with self._lock:
            families, self._resyncs = self._resyncs, set()
        store = self.config.store_id
        for family in sorted(families):
            # Subscribing afresh makes the broker send the retained (newest) snapshot; the
            # relay answers the resync request with the snapshot too.
            topic = downsync_topic(store, family, "snapshot")
            client.unsubscribe(topic)
            result, mid = client.subscribe(topic, options=SubscribeOptions(qos=1))
            if result == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                self._subscribed[mid] = [topic]
            client.publish(self.resync_topic, json.dumps({"family": family}), qos=1)

    # -- state, problems, health -------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connack = (reason, flags.session_present, properties)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._dropped = str(reason) if reason.is_failure else None

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        topics = self._subscribed.pop(mid, [])
        refused = [f"{t} ({r})" for t, r in zip(topics, reasons) if r.is_failure]
        if refused:
            self._problem("the broker refused the subscription to " + ", ".join(refused))

    def _problem(self, problem: str | None) -> None:
        """Log a problem when it first appears or changes, and once when it clears."""
        if problem == self.error:
            return
        if problem is None:
            log.info("uplink recovered (was: %s)", self.error)
        else:
            log.warning("uplink: %s", problem)
        self.error = problem

    def _refresh(self, reader: Reader, force: bool = False) -> None:
        """Re-read the outbox when it may have changed; push changes to the kiosk, throttled."""
        now = time.monotonic()
        seen = (self.service.seq, self._deleted)
        if force or seen != self._seen:
            self._seen = seen
            self.depth, self.oldest = reader.outbox_stats()
        key = (self.state, self.depth, self.oldest, self.last_ack_seq, self.error, self.window)
        if key != self._pushed and (force or now - self._pushed_at >= _PUSH_S):
            self._pushed, self._pushed_at = key, now
            self.service.publish({"type": "uplink", **self.view(self.depth, self.oldest)})


def _close(client: mqtt.Client) -> None:
    """Drop a connection for good: this client object is never used again."""
    if client.is_connected():
        client.disconnect()
        client.loop(_TICK_S)  # flush the DISCONNECT
    sock = client.socket()
    if sock is not None:
        sock.close()


def disabled_view(depth: int, oldest: str | None) -> dict[str, Any]:
    """The `uplink` object when `[uplink] enabled = false`: the outbox only grows."""
    return {
        "enabled": False,
        "state": "disabled",
        "connected": False,
        "outbox_depth": depth,
        "oldest_queued_at": oldest,
        "oldest_age_s": age_seconds(oldest),
        "last_ack_seq": None,
        "last_ack_at": None,
    }
