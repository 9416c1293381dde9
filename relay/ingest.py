# Ingest: events off the broker into the store in group commits, then acks back to the terminals.
from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from tillbox.contract import TOPIC_PREFIX, ack_topic

from .config import ConfigError, RelayConfig
from .downsync import RESYNC_SUBSCRIPTION, Downsync, DownsyncError, parse_resync
from .mqtt import Link, Received
from .store import Inbound, Store, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from .connectors.runtime import Runtime

log = logging.getLogger("tillbox.relay.ingest")

EVENTS_SUBSCRIPTION: Final = f"$share/relay/{TOPIC_PREFIX}/+/+/events"
HOUSEKEEPING_S: Final = 1.0
BATCH_IDLE_S: Final = 0.002  # a pause this long in the stream closes the batch early
# A batch this big means a burst (a backlog draining): the ledger and connectors in this
# process give way to ingest for a moment, at most GIVE_WAY_MAX_S at a time, so acks come
# first; they catch up by their cursors. Shop traffic (a sale a second) never triggers it.
GIVE_WAY_BATCH: Final = 50
GIVE_WAY_S: Final = 0.25
GIVE_WAY_MAX_S: Final = 5.0


@dataclass(slots=True)
class Stats:
    received: int = 0
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    pending: int = 0
    dead: int = 0
    acks: int = 0
    bursts: int = 0  # batches big enough that the connectors gave way


class _Health:
    """Logs once when a source starts failing and once when it recovers."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing: str | None = None

    def fail(self, err: Exception) -> None:
        text = str(err)
        if self.failing != text:
            log.error("%s: %s", self.what, text)
        self.failing = text

    def ok(self) -> None:
        if self.failing is not None:
            log.warning("%s: recovered", self.what)
        self.failing = None


class Relay:
    """One relay instance: the MQTT link, the one writer thread and down-sync."""

    def __init__(
        self,
        config: RelayConfig,
        store: Store | None = None,
        *,
        client_id: str | None = None,
        connectors: bool = True,
    ) -> None:
        if config.broker is None:
            raise ConfigError("broker: the relay needs a [broker] section to run")
        self.config = config
        self.store = store or Store(config.database.url)
        self._queue: queue.SimpleQueue[Received] = queue.SimpleQueue()
        self.link = Link(
            config.broker,
            client_id=client_id,
            persistent=True,
            manual_ack=True,
            subscriptions=[EVENTS_SUBSCRIPTION, RESYNC_SUBSCRIPTION],
            on_message=self._queue.put,
            on_connected=self._connected,
        )
        self.downsync = Downsync(self.store, self.link)
        self.stats = Stats()
        self._stopping = threading.Event()
        self._republish = threading.Event()
        self._republish.set()
        self._thread = threading.Thread(target=self._run, name="relay-writer", daemon=True)
        self._burst_until = 0.0
        self._db_health = _Health("central store")
        self._sync_health = _Health("down-sync")
        # The ledger and the connectors read the stored events by their own cursors
        # (relay/connectors/, docs/connectors.md): ingest never waits for them.
        self.connectors: Runtime | None = None
        if connectors:
            from .connectors.runtime import Runtime

            self.connectors = Runtime(
                config, self.store, publish=self._publish_confirmed, give_way=self.give_way
            )

    def start(self) -> None:
        self._thread.start()
        self.link.start()
        if self.connectors is not None:
            self.connectors.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, then leave; what was not acked the broker sends again."""
        self._stopping.set()
        if self.connectors is not None:
            self.connectors.stop()
        self._thread.join(timeout)
        self.link.stop()
        s = self.stats
        log.info(
            "relay stopped: received %d messages in %d batches; stored %d, duplicates %d, "
            "put aside behind a gap %d, dead letters %d; sent %d acks",
            s.received,
            s.batches,
            s.stored,
            s.duplicates,
            s.pending,
            s.dead,
            s.acks,
        )

    def _publish_confirmed(self, topic: str, payload: bytes) -> None:
        """QoS 1 publish for a connector (an alert); raises unless the broker acknowledged it."""
        if not self.link.publish(topic, payload).wait(10.0):
            raise StoreError(f"the broker did not acknowledge {topic} in time")

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Run until SIGTERM or SIGINT."""
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        if ready:
            ready()
        while not done.wait(1.0):
            if not self._thread.is_alive():
                raise StoreError("the relay's writer thread stopped; see the log above")
        self.stop()

    def give_way(self, stop: threading.Event) -> None:
        """Called by a connector worker before each round: wait while ingest drains a burst."""
        deadline = time.monotonic() + GIVE_WAY_MAX_S
        while not stop.is_set():
            left = min(self._burst_until, deadline) - time.monotonic()
            if left <= 0:
                return
            stop.wait(left)

    # ----- the writer thread --------------------------------------------------------------

    def _connected(self, session_present: bool) -> None:
        if not session_present:
            self._republish.set()  # the broker may have lost its retained snapshots too

    def _run(self) -> None:
        next_housekeeping = 0.0
        while not self._stopping.is_set():
            batch = self._collect()
            if batch:
                self._process(batch)
            if time.monotonic() >= next_housekeeping:
                self._housekeeping()
                next_housekeeping = time.monotonic() + HOUSEKEEPING_S

    def _collect(self) -> list[Received]:
        """Up to batch_size messages; wait at most max_batch_delay for the batch to fill, and
        stop waiting once the stream pauses for BATCH_IDLE_S: a terminal that has sent its
        window waits for our ack, so waiting longer would only delay it."""
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        size = self.config.ingest.batch_size
        deadline = time.monotonic() + self.config.ingest.max_batch_delay_ms / 1000
        while len(batch) < size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=min(left, BATCH_IDLE_S)))
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[Received]) -> None:
        self.stats.received += len(batch)
        if len(batch) >= GIVE_WAY_BATCH:
            self.stats.bursts += 1
            self._burst_until = time.monotonic() + GIVE_WAY_S
        events = [m for m in batch if m.topic.endswith("/events")]
        requests = [m for m in batch if not m.topic.endswith("/events")]
        backoff = 0.2
        while True:
            try:
                result = self.store.ingest([Inbound(m.topic, m.payload) for m in events])
                self._db_health.ok()
                break
            except StoreUnavailable as err:
                # Nothing is acked: the broker keeps every message until this succeeds.
                self._db_health.fail(err)
                if self._stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
        self.stats.batches += 1
        self.stats.stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.pending += result.pending
        self.stats.dead += result.dead
        for (store_id, terminal), upto in result.acks.items():
            self.link.publish(ack_topic(store_id, terminal), json.dumps({"upto": upto}).encode())
            self.stats.acks += 1
        self.link.ack(*events)
        for message in requests:
            self._resync(message)

    def _resync(self, message: Received) -> None:
        request = parse_resync(message)
        if isinstance(request, str):
            try:
                self.store.add_dead_letters([(message.topic, message.payload, request)])
            except StoreUnavailable as err:
                self._db_health.fail(err)
                return  # not acked: it comes again
            self.link.ack(message)
            return
        store_id, terminal, what = request
        try:
            if what == "acks":
                upto, _ = self.store.head(store_id, terminal)
                self.link.publish(
                    ack_topic(store_id, terminal), json.dumps({"upto": upto}).encode()
                )
            else:
                self.downsync.resync(store_id, what)
            self._sync_health.ok()
        except (DownsyncError, StoreUnavailable) as err:
            self._sync_health.fail(err)
        # A resync that failed is not worth holding: the terminal asks again.
        self.link.ack(message)

    def _housekeeping(self) -> None:
        gap_after = timedelta(seconds=self.config.ingest.gap_alert_after_s)
        try:
            self.store.check_gaps(gap_after)
            self._db_health.ok()
        except StoreUnavailable as err:
            self._db_health.fail(err)
            return
        if not self.link.connected.is_set():
            return
        try:
            if self._republish.is_set():
                self._republish.clear()
                self.downsync.republish_all()
            self.downsync.sync_pending()
            self._sync_health.ok()
        except (DownsyncError, StoreUnavailable) as err:
            self._republish.set()
            self._sync_health.fail(err)
