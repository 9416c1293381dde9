# The connector runtime: one worker thread per connector, rate limits, backoff, mapping reloads.
from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from relay.store import StoreUnavailable

from .base import (
    Bindings,
    Command,
    Connector,
    ConnectorConfig,
    Context,
    Event,
    MissingMapping,
    Rejected,
    Retry,
)
from .mapping import FieldMapping, MappingError
from .mapping import load as load_mapping
from .state import Claimed, ConnectorState, Planned, plan_safely

log = logging.getLogger("tillbox.relay.connectors")

POLL_S: Final = 0.5
# Before each round a worker calls this; the relay's ingest makes it wait while it drains a
# burst (relay/ingest.py Relay.give_way), so acks come first and connectors follow.
GiveWay = Callable[[threading.Event], None]


def no_wait(stop: threading.Event) -> None:
    """A GiveWay that never waits (a connectors process of its own)."""


def business_day(at: str, tz: ZoneInfo) -> str:
    """The shop's calendar day (YYYY-MM-DD) of an event time in UTC (`…Z`)."""
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz).date().isoformat()


def next_day(day: str) -> str:
    return date.fromordinal(date.fromisoformat(day).toordinal() + 1).isoformat()


class Timezones:
    """Each store's time zone (business days are the shop's days, not UTC's)."""

    def __init__(self, default: str = "UTC", stores: Mapping[str, str] | None = None) -> None:
        self.default = ZoneInfo(default)
        self.stores = {s: ZoneInfo(z) for s, z in (stores or {}).items()}

    def __call__(self, store: str) -> ZoneInfo:
        return self.stores.get(store, self.default)

    def day(self, store: str, at: str) -> str:
        return business_day(at, self(store))

    def event_day(self, ev: Event) -> str:
        """An event's business day; an imported record carries its own (`data.day`)."""
        own = ev.data.get("day") if ev.source == "import" else None
        return str(own) if own else self.day(ev.store, ev.at)


class RateLimiter:
    """At most `calls` calls in any `period_s` window and `concurrent` at once, for one remote
    account; a 429's Retry-After pauses every caller of the account, not just the one refused."""

    def __init__(self, calls: int, period_s: float, concurrent: int) -> None:
        self.calls = calls
        self.period = period_s
        self.concurrent = concurrent
        self._times: deque[float] = deque()
        self._active = 0
        self._paused_until = 0.0
        self._cond = threading.Condition()

    @contextmanager
    def call(self, stop: threading.Event | None = None) -> Iterator[None]:
        """Wait for room, then make one call. A call counts in the window from when it starts
        until `period` after it ended: the remote counts it on arrival, which is somewhere in
        between, so the window never runs ahead of the remote's."""
        with self._cond:
            while True:
                now = time.monotonic()
                while self._times and self._times[0] <= now - self.period:
                    self._times.popleft()
                if stop is not None and stop.is_set():
                    raise Retry("stopping")
                if self._paused_until > now:
                    wait: float = self._paused_until - now
                elif self._active >= self.concurrent:
                    wait = 0.5
                elif len(self._times) + self._active >= self.calls:
                    wait = self._times[0] + self.period - now if self._times else 0.5
                else:
                    break
                self._cond.wait(min(max(wait, 0.001), 0.5))
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._times.append(time.monotonic())
                self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        with self._cond:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @property
    def in_window(self) -> int:
        with self._cond:
            now = time.monotonic()
            return sum(1 for t in self._times if t > now - self.period)


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(account: str, calls: int, period_s: float, concurrent: int) -> RateLimiter:
    """One limiter per remote account in this process, however many connectors use it."""
    with _limiters_lock:
        found = _limiters.get(account)
        if found is None or (found.calls, found.period, found.concurrent) != (
            calls,
            period_s,
            concurrent,
        ):
            found = _limiters[account] = RateLimiter(calls, period_s, concurrent)
        return found


def backoff(attempt: int, initial: float, most: float) -> float:
    """Exponential backoff with jitter: initial·2^(attempt-1), capped, times 0.5-1."""
    base = min(most, initial * float(2 ** min(max(attempt - 1, 0), 30)))
    return float(base * (0.5 + random.random() / 2))


class _Health:
    """Logs once when a connector starts failing and once when it recovers (STYLE 9)."""

    def __init__(self, name: str, state: ConnectorState) -> None:
        self.name = name
        self.state = state
        self.failing: str | None = None
        self._lock = threading.Lock()
        self.mapping = ""

    def fail(self, text: str) -> None:
        with self._lock:
            if self.failing == text:
                return
            if self.failing is None:
                log.error("connector %s: failing: %s", self.name, text)
            self.failing = text
        self._save(text)

    def ok(self) -> None:
        with self._lock:
            if self.failing is None:
                return
            log.warning("connector %s: recovered", self.name)
            self.failing = None
        self._save(None)

    def save(self) -> None:
        self._save(self.failing)

    def _save(self, text: str | None) -> None:
        with contextlib.suppress(StoreUnavailable):
            self.state.set_health(self.name, text, self.mapping)


class MappingSource:
    """The mapping file of a connector, read again when it changes on disk."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._stamp: tuple[float, int] | None = None
        self.current: FieldMapping | None = None
        self.error: str | None = None

    def refresh(self) -> bool:
        """Reload if the file changed; True when the mapping (or its error) is new."""
        if self.path is None:
            return False
        try:
            st = self.path.stat()
            stamp = (st.st_mtime, st.st_size)
        except OSError as err:
            text = f"mapping {self.path}: {err.strerror or err}"
            changed = text != self.error
            self.error, self.current, self._stamp = text, None, None
            return changed
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            loaded = load_mapping(self.path)
        except MappingError as err:
            changed = str(err) != self.error
            self.error, self.current = str(err), None
            return changed
        changed = self.current is None or loaded.digest != self.current.digest
        self.current, self.error = loaded, None
        return changed


@dataclass(slots=True)
class Stats:
    fed: int = 0
    applied: int = 0
    retried: int = 0
    dead: int = 0


class Worker:
    """Feeds one connector from the events, plans into its queue and applies what is due.

    Each connector has its own worker thread and thread pool, so a slow or broken remote only
    ever delays its own queue.
    """

    def __init__(
        self,
        connector: Connector,
        state: ConnectorState,
        *,
        poll_s: float = POLL_S,
        day_of: Callable[[Event], str] | None = None,
        give_way: GiveWay = no_wait,
    ) -> None:
        self.connector = connector
        self.give_way = give_way
        self.name = connector.name
        self.config: ConnectorConfig = connector.config
        self.state = state
        self.poll_s = poll_s
        self.day_of = day_of
        self.mapping = MappingSource(self.config.mapping)
        self.health = _Health(self.name, state)
        self.stats = Stats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=self.config.max_concurrent, thread_name_prefix=f"connector-{self.name}"
        )
        self._inflight: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._lease_s = max(60.0, self.config.timeout_s * 6)
        self._last_lease = 0.0
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._recovered = False

    # ----- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"connector-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.connector.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.give_way(self._stop)
            try:
                busy = self.run_once()
            except StoreUnavailable as err:
                self.health.fail(f"central store: {err}")
                busy = False
            except Exception as err:  # a bug must not stop the relay; say it once
                log.exception("connector %s: worker error", self.name)
                self.health.fail(f"worker error: {type(err).__name__}: {err}")
                busy = False
            if not busy:
                self._stop.wait(self.poll_s)

    # ----- one round --------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Reload the mapping, feed, re-plan what waited, and start what is due. True if it did
        anything (the loop then goes round again at once)."""
        did = False
        if not self._recovered:
            self.state.recover_orphans(self.name, self.owner)
            self._recovered = True
        if self.mapping.refresh():
            did = True
            m = self.mapping.current
            self.health.mapping = m.label if m else ""
            self.health.save()
            if m is not None:
                flowing, _ = self.state.replan(self.name, self._plan, m.digest)
                if flowing:
                    log.info(
                        "connector %s: mapping %s: %d item(s) flow", self.name, m.label, flowing
                    )
        if self.connector.needs_mapping and self.mapping.current is None:
            self.health.fail(self.mapping.error or f"no mapping file configured for {self.name}")
            return did
        c = self.connector
        fed = self.state.feed(
            self.name, self._plan, mapping_digest=self._digest(), skips=c.ignores - c.handles
        )
        self.stats.fed += fed.events
        did = did or fed.events > 0
        self._extend_leases()
        room = self.config.max_concurrent - self._running()
        if room > 0:
            for claimed in self.state.claim(self.name, room, self._lease_s, self.owner):
                did = True
                with self._lock:
                    self._inflight[claimed.id] = self._pool.submit(self._apply, claimed)
        return did

    def drain(self, timeout: float = 30.0) -> None:
        """Run rounds until nothing is due or running (tests and one-shot CLI runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = self.run_once()
            if not busy and self._running() == 0:
                due = self.state.next_due(self.name)
                if due is None or due > datetime.now(UTC):
                    return
            time.sleep(0.01)

    def _running(self) -> int:
        with self._lock:
            for k in [k for k, f in self._inflight.items() if f.done()]:
                del self._inflight[k]
            return len(self._inflight)

    def _extend_leases(self) -> None:
        now = time.monotonic()
        if now - self._last_lease < self._lease_s / 3:
            return
        self._last_lease = now
        with self._lock:
            ids = [k for k, f in self._inflight.items() if not f.done()]
        self.state.extend(ids, self._lease_s)

    def _digest(self) -> str:
        return self.mapping.current.digest if self.mapping.current else ""

    def _plan(self, ev: Event) -> Planned:
        c = self.connector
        acts = c.acts_on(ev.type)
        if acts != "handle":
            return Planned("ignored" if acts == "ignore" else "unknown")
        start = self.config.start_day
        if start and self.day_of is not None and self.day_of(ev) < start:
            return Planned("skipped")
        return plan_safely(lambda e: Planned("commands", list(c.plan(e, self.mapping.current))), ev)

    def _apply(self, claimed: Claimed) -> None:
        found = Bindings(claimed.bindings)
        try:
            done = self.connector.apply(claimed.command, found, claimed.uncertain)
        except MissingMapping as err:
            self.state.save_bindings(self.name, claimed.key, found.new)
            self.state.wait_for_mapping(claimed, str(err), self._digest())
            return
        except Retry as err:
            if err.quiet:
                self.state.save_bindings(self.name, claimed.key, found.new)
                self.state.retry(claimed, str(err), err.after or self.poll_s, False, count=False)
                return
            self._retry(claimed, found, str(err), err.after, err.uncertain)
            return
        except Rejected as err:
            self.state.save_bindings(self.name, claimed.key, found.new)
            dead_id = self.state.to_dead(self.name, claimed, str(err), err.status, err.remote)
            self.stats.dead += 1
            log.warning(
                "connector %s: %s refused for good (dead letter #%d): %s",
                self.name,
                claimed.command.summary,
                dead_id,
                err,
            )
            return
        except Exception as err:
            log.exception("connector %s: apply of %s failed", self.name, claimed.command.summary)
            self._retry(claimed, found, f"{type(err).__name__}: {err}", None, True)
            return
        self.state.finish(self.name, claimed, {**found.new, **done.bindings}, done.note)
        self.stats.applied += 1
        self.health.ok()

    def _retry(
        self,
        claimed: Claimed,
        found: Bindings,
        reason: str,
        after: float | None,
        uncertain: bool,
    ) -> None:
        self.state.save_bindings(self.name, claimed.key, found.new)
        attempts = claimed.attempts + 1
        limit = self.config.max_attempts
        if limit and attempts >= limit:
            self.state.to_dead(self.name, claimed, f"gave up after {attempts} attempts: {reason}")
            self.stats.dead += 1
            return
        delay = (
            after
            if after is not None
            else backoff(attempts, self.config.backoff_initial_s, self.config.backoff_max_s)
        )
        self.state.retry(claimed, reason, delay, uncertain)
        self.stats.retried += 1
        self.health.fail(reason)


class Runtime:
    """Every worker of one relay process: the built-in ledger and reconciliation, and the
    connectors configured in relay.toml (`[connectors.<name>]`)."""

    def __init__(
        self,
        config: Any,
        store: Any,
        *,
        publish: Callable[[str, bytes], Any] | None = None,
        only: set[str] | None = None,
        poll_s: float = POLL_S,
        give_way: GiveWay = no_wait,
    ) -> None:
        from relay.accounting.ledger import LedgerWorker

        from . import build_connectors

        self.store = store
        self.state = ConnectorState(store.engine)
        led = config.ledger
        self.timezones = Timezones(
            led.timezone, {s: v.timezone for s, v in led.stores.items() if v.timezone}
        )
        self.ledger = LedgerWorker(
            store.engine,
            self.state,
            self.timezones,
            currencies={s: v.currency for s, v in led.stores.items() if v.currency},
            default_currency=led.currency,
            poll_s=poll_s,
            give_way=give_way,
        )
        context = Context(
            store=store, publish=publish, timezone_of=self.timezones, ledger=self.ledger
        )
        self.connectors = build_connectors(config, context, only=only)
        self.workers = [
            Worker(c, self.state, poll_s=poll_s, day_of=self.timezones.event_day, give_way=give_way)
            for c in self.connectors
        ]

    def start(self) -> None:
        self.ledger.start()
        for w in self.workers:
            w.start()
        names = ", ".join(w.name for w in self.workers) or "none"
        log.info("connectors running: ledger, %s", names)

    def stop(self) -> None:
        self.ledger.stop()
        for w in self.workers:
            w.stop()

    def worker(self, name: str) -> Worker:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(name)

    def drain(self, timeout: float = 60.0) -> None:
        """Bring the ledger and every connector up to date (nothing due left)."""
        self.ledger.drain(timeout)
        for w in self.workers:
            w.drain(timeout)


def plan_all(connector: Connector, ev: Event, mapping: FieldMapping | None) -> list[Command]:
    """plan() for tests and tools: the commands, or MissingMapping raised."""
    return list(connector.plan(ev, mapping))
