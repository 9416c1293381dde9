# The central store on SQLite or PostgreSQL: events, heads, pending, dead letters, alerts, versions.
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from tillbox.contract import (
    GENESIS_HASH,
    TOPIC_PREFIX,
    EnvelopeError,
    canonical,
    checked_data,
    events_topic,
)

from .catalog import CatalogDoc

log = logging.getLogger("tillbox.relay.store")

SCHEMA_VERSION: Final = 1
Family = Literal["catalog", "stock", "customers"]
FAMILIES: Final[tuple[Family, ...]] = ("catalog", "stock", "customers")
MAX_DEAD_PAYLOAD: Final = 1 << 20
_CHUNK: Final = 500
_WINDOW: Final = 500
_RETRIES: Final = 4
_NO_TEXTS: Final[Mapping[str, str]] = {}

metadata = MetaData()
_Id = String(64)

meta = Table(
    "relay_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)
events = Table(
    "events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("store", _Id, nullable=False),
    Column("terminal", _Id, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(128), nullable=False),
    Column("at", String(40), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("store", "terminal", "seq", name="events_terminal_seq"),
)
Index("events_type", events.c.type, events.c.received_at)
heads = Table(
    "heads",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("terminal", _Id, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Events in `pending` for this terminal, and since when they wait without the head moving.
    Column("waiting", Integer, nullable=False, default=0),
    Column("stuck_since", DateTime(timezone=True)),
)
pending = Table(
    "pending",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("store", _Id, nullable=False),
    Column("terminal", _Id, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("envelope", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("store", "terminal", "seq", name="pending_terminal_seq"),
)
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("topic", String(512), nullable=False),
    Column("store", _Id),
    Column("terminal", _Id),
    Column("payload", LargeBinary, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("last_received_at", DateTime(timezone=True), nullable=False),
    Column("times", Integer, nullable=False),
)
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("store", _Id, nullable=False),
    Column("terminal", _Id, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("seq", BigInteger),
    Column("detail", Text, nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
)
Index("alerts_open", alerts.c.store, alerts.c.terminal, alerts.c.kind, alerts.c.resolved_at)
catalog_items = Table(
    "catalog_items",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("item", JSON, nullable=False),
)
catalog_versions = Table(
    "catalog_versions",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("currency", String(3), nullable=False),
    Column("categories", JSON, nullable=False),
    Column("upsert", JSON, nullable=False),
    Column("delete", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
stock_levels = Table(
    "stock_levels",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("qty", String(40), nullable=False),
)
stock_versions = Table(
    "stock_versions",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("levels", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
customers = Table(
    "customers",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(200), nullable=False),
    Column("phone", String(200), nullable=False),
    Column("marketing_consent", Boolean, nullable=False),
    Column("loyalty_points", BigInteger, nullable=False),
    # When the customer gave the answer in `marketing_consent` (a till's capture); NULL for
    # customers loaded from a file, whose answer has no recorded time.
    Column("marketing_consent_at", String(40)),
)
customer_versions = Table(
    "customer_versions",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("upsert", JSON, nullable=False),
    Column("delete", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
downsync_state = Table(
    "downsync_state",
    metadata,
    Column("store", _Id, primary_key=True),
    Column("family", String(16), primary_key=True),
    Column("published_version", Integer, nullable=False),
)
# The connectors' own state (relay/connectors/state.py works on it): cursors, the durable
# queue, bindings, dead letters, health, small values, and records the relay imports.
connector_cursors = Table(
    "connector_cursors",
    metadata,
    Column("connector", _Id, primary_key=True),
    Column("stream", String(160), primary_key=True),
    Column("position", BigInteger, nullable=False),
)
connector_queue = Table(
    "connector_queue",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connector", _Id, nullable=False),
    Column("key", String(200), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("store", _Id, nullable=False),
    Column("day", String(10), nullable=False),
    Column("summary", Text, nullable=False),
    Column("sources", JSON, nullable=False),
    # The source event ({"id", "source"}; it stays in `events` or `imported_events`), so the
    # command can be planned again (a mapping added, a dead letter replayed).
    Column("event", JSON, nullable=False),
    Column("payload", JSON),  # the command's own payload; its other fields are the columns
    # ready | running | done | waiting (for a mapping) | dead
    Column("state", String(16), nullable=False),
    Column("coalesce", Boolean, nullable=False, default=False),
    Column("generation", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("uncertain", Boolean, nullable=False, default=False),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    # host:pid:token of the worker holding the lease, so a restarted relay takes back at once
    # what a killed one on the same host held (other hosts wait for the lease to run out).
    Column("owner", String(200), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("mapping_digest", String(64), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True)),
    UniqueConstraint("connector", "key", name="connector_queue_key"),
)
Index(
    "connector_queue_due",
    connector_queue.c.connector,
    connector_queue.c.state,
    connector_queue.c.next_at,
)
connector_bindings = Table(
    "connector_bindings",
    metadata,
    Column("connector", _Id, primary_key=True),
    Column("local_id", String(240), primary_key=True),
    Column("remote_id", String(240), nullable=False),
    Column("command_key", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index(
    "connector_bindings_command", connector_bindings.c.connector, connector_bindings.c.command_key
)
connector_dead = Table(
    "connector_dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connector", _Id, nullable=False),
    Column("queue_id", Integer, nullable=False),
    Column("key", String(200), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("store", _Id, nullable=False),
    Column("day", String(10), nullable=False),
    Column("summary", Text, nullable=False),
    Column("payload", JSON),
    Column("reason", Text, nullable=False),
    Column("status", Integer),
    Column("remote", Text, nullable=False, default=""),
    Column("attempts", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("replayed_at", DateTime(timezone=True)),
)
connector_unknown = Table(
    "connector_unknown_events",
    metadata,
    Column("connector", _Id, primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("type", String(128), nullable=False),
    Column("store", _Id, nullable=False),
    Column("terminal", _Id, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", String(40), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
)
connector_health = Table(
    "connector_health",
    metadata,
    Column("connector", _Id, primary_key=True),
    Column("failing", Text),
    Column("since", DateTime(timezone=True), nullable=False),
    Column("mapping", String(120), nullable=False, default=""),
)
# Small values a connector keeps between runs (e.g. a rotated OAuth2 refresh token).
connector_kv = Table(
    "connector_kv",
    metadata,
    Column("connector", _Id, primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
# Records the relay makes itself (an acquirer settlement report, imported): connectors read
# them like terminal events, after a cursor of their own.
imported_events = Table(
    "imported_events",
    metadata,
    Column("pos", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("type", String(128), nullable=False),
    Column("store", _Id, nullable=False),
    Column("at", String(40), nullable=False),
    Column("data", JSON, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

_VERSIONS: Final[dict[str, Table]] = {
    "catalog": catalog_versions,
    "stock": stock_versions,
    "customers": customer_versions,
}


class StoreError(Exception):
    """The central store could not do what was asked; the message says what to do."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or stays locked; retry the same work later."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message taken off the broker's events topic."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Alert:
    store: str
    terminal: str
    kind: str
    detail: str
    seq: int | None = None
    id: int | None = None
    raised_at: datetime | None = None


@dataclass(slots=True)
class IngestResult:
    """What one group commit did. `acks` is the head (highest contiguous seq) per terminal;
    `pending` counts events put aside behind a gap, `stored` all that joined a chain."""

    acks: dict[tuple[str, str], int] = field(default_factory=dict)
    stored: int = 0
    duplicates: int = 0
    pending: int = 0
    dead: int = 0
    raised: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HeadStatus:
    store: str
    terminal: str
    seq: int
    hash: str
    pending: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Status:
    heads: list[HeadStatus]
    alerts: list[Alert]
    dead_letters: int


@dataclass(frozen=True, slots=True)
class Change:
    """A new version of one family for one store."""

    family: Family
    store: str
    version: int


@dataclass(slots=True)
class _Dead:
    topic: str
    payload: bytes
    reason: str
    store: str | None = None
    terminal: str | None = None


@dataclass(frozen=True, slots=True)
class _Waiting:
    """An event in `pending` that this transaction has looked at."""

    id: str
    hash: str
    envelope: dict[str, Any]


@dataclass(slots=True)
class _Term:
    """A terminal's chain state inside one group commit. Pending rows are read only where
    needed (the batch's seqs, and a window behind the head when it moves), never all: a
    terminal can have a long backlog waiting behind one missing event."""

    store: str
    terminal: str
    seq: int
    hash: str
    start_seq: int
    waiting: int  # rows in `pending` for this terminal once this transaction commits
    start_waiting: int
    updated_at: datetime
    stuck_since: datetime | None
    open_kinds: set[str] = field(default_factory=set)
    cache: dict[int, _Waiting] = field(default_factory=dict)  # by seq
    fetched_upto: int = 0  # `pending` rows with seq <= this are all in `cache`
    chain_ok: bool | None = None  # after this batch: True if the head moved after any break


def now_utc() -> datetime:
    return datetime.now(UTC)


READ_ONLY: Final = "tillbox_read_only"


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite a deferred transaction (a WAL snapshot) instead
    of the write lock every other transaction takes, so long reads never stall ingest."""
    with engine.connect() as conn:
        yield conn.execution_options(**{READ_ONLY: True})


def make_engine(url: str) -> Engine:
    """An engine with the store's durability settings: SQLite in WAL with synchronous=FULL and
    BEGIN IMMEDIATE per transaction (one writer at a time, as in the terminal's journal;
    `reading` connections begin deferred)."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30.0, "check_same_thread": False}, pool_size=2
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            dbapi.isolation_level = None
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # a reader (see `reading`) takes a snapshot and never holds up the writers
            reader = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql+psycopg://"):
        return create_engine(url, pool_pre_ping=True, pool_size=4)
    raise StoreError(f"database.url {url!r}: use sqlite:///… or postgresql+psycopg://…")


def parse_events_topic(topic: str) -> tuple[str, str] | None:
    """(store, terminal) of `tillbox/v1/{store}/{terminal}/events`, or None."""
    parts = topic.split("/")
    if len(parts) == 5 and "/".join(parts[:2]) == TOPIC_PREFIX and parts[4] == "events":
        return parts[2], parts[3]
    return None


class Store:
    """The relay's database. Thread-safe; each call is one transaction."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._events_rows = _Rows(self.engine, events, _EVENT_COLUMNS, json_text={"data"})
        self._pending_rows = _Rows(self.engine, pending, _PENDING_COLUMNS)
        try:
            if create:
                metadata.create_all(self.engine)
                _add_consent_time(self.engine)
            with self.engine.begin() as conn:
                row = conn.execute(
                    select(meta.c.value).where(meta.c.key == "schema_version")
                ).first()
                if row is None:
                    conn.execute(insert(meta).values(key="schema_version", value="1"))
                elif int(row[0]) != SCHEMA_VERSION:
                    raise StoreError(
                        f"the database has relay schema {row[0]}, this relay knows "
                        f"{SCHEMA_VERSION}; run the matching relay version"
                    )
        except sa_exc.OperationalError as err:
            raise StoreUnavailable(f"cannot open the database {self.safe_url}: {err.orig}") from err

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; SQLite takes the write lock at BEGIN, PostgreSQL locks rows it needs."""
        with self.engine.begin() as conn:
            yield conn

    # ----- ingest -------------------------------------------------------------------------

    def ingest(self, messages: Sequence[Inbound], now: datetime | None = None) -> IngestResult:
        """Store a batch of event messages in one durable transaction (a group commit).

        Garbage becomes dead letters; nothing raises for a bad message. Raises StoreUnavailable
        when the database cannot take the batch: then nothing of it was kept, retry it.
        """
        if not messages:
            return IngestResult()
        now = now or now_utc()
        texts: dict[str, str] = {}
        parsed = [_parse(m, texts) for m in messages]
        for attempt in range(_RETRIES):
            try:
                result = self._ingest_once(parsed, now, texts)
                break
            except sa_exc.IntegrityError as err:
                # Another relay instance stored a clashing row between our reads and writes.
                log.debug("ingest batch clashed (attempt %d): %s", attempt + 1, err.orig)
            except sa_exc.OperationalError as err:
                if attempt == _RETRIES - 1:
                    raise StoreUnavailable(f"database error: {err.orig}") from err
                time.sleep(0.05 * (attempt + 1))
        else:
            result = self._ingest_one_by_one(parsed, now, texts)
        self._log_alerts(result)
        return result

    def _ingest_one_by_one(
        self, parsed: list[dict[str, Any] | _Dead], now: datetime, texts: Mapping[str, str]
    ) -> IngestResult:
        total = IngestResult()
        for item in parsed:
            try:
                one = self._ingest_once([item], now, texts)
            except sa_exc.IntegrityError as err:
                if not isinstance(item, dict):
                    raise
                one = self._ingest_once(
                    [_dead_event(item, f"the store refused it: {err.orig}")], now
                )
            except sa_exc.OperationalError as err:
                raise StoreUnavailable(f"database error: {err.orig}") from err
            total.acks.update(one.acks)
            total.stored += one.stored
            total.duplicates += one.duplicates
            total.pending += one.pending
            total.dead += one.dead
            total.raised += one.raised
            total.resolved += one.resolved
        return total

    def _ingest_once(
        self,
        parsed: Sequence[dict[str, Any] | _Dead],
        now: datetime,
        texts: Mapping[str, str] = _NO_TEXTS,
    ) -> IngestResult:
        """One transaction; `texts` holds the canonical JSON of each valid envelope's `data`
        by the envelope's hash (what the hash check produced; stored as is)."""
        result = IngestResult()
        valid = [p for p in parsed if isinstance(p, dict)]
        dead = [p for p in parsed if isinstance(p, _Dead)]
        keys = sorted({(e["store"], e["terminal"]) for e in valid})
        new_events: list[dict[str, Any]] = []
        new_pending: dict[str, dict[str, Any]] = {}  # id -> envelope
        drop_pending: set[str] = set()
        raise_alerts: list[Alert] = []
        resolve: set[tuple[str, str, str]] = set()
        with self.engine.begin() as conn:
            terms = self._lock_terminals(conn, keys, now)
            self._load_waiting(conn, terms, valid)
            ids = [e["id"] for e in valid]
            known: dict[str, tuple[str, str, str]] = {}  # id -> (store/terminal, hash, where)
            for table, where in ((events, "stored"), (pending, "pending")):
                for chunk in _chunks(ids):
                    for row in conn.execute(
                        select(table.c.id, table.c.store, table.c.terminal, table.c.hash).where(
                            table.c.id.in_(chunk)
                        )
                    ):
                        known[row.id] = (f"{row.store}/{row.terminal}", row.hash, where)

            def broken(env: dict[str, Any], term: _Term, reason: str, kind: str) -> None:
                dead.append(_dead_event(env, reason))
                if kind == "broken_chain":
                    term.chain_ok = False
                if kind not in term.open_kinds:
                    term.open_kinds.add(kind)
                    raise_alerts.append(
                        Alert(env["store"], env["terminal"], kind, reason, env["seq"])
                    )

            for env in valid:
                key = (env["store"], env["terminal"])
                term = terms[key]
                seq = env["seq"]
                seen = known.get(env["id"])
                if seen is not None:
                    owner, hash_, _ = seen
                    if owner == "/".join(key) and hash_ == env["hash"]:
                        result.duplicates += 1
                    else:
                        dead.append(
                            _dead_event(
                                env, f"event id {env['id']} is already stored with other content"
                            )
                        )
                    continue
                if seq <= term.seq:
                    broken(
                        env,
                        term,
                        f"seq {seq} is already stored with another event id: the terminal's "
                        "journal disagrees with what it sent before",
                        "conflict",
                    )
                    continue
                if seq > term.seq + 1:
                    if seq in term.cache:
                        broken(
                            env,
                            term,
                            f"seq {seq} is already waiting with another event id",
                            "conflict",
                        )
                        continue
                    new_pending[env["id"]] = env
                    term.cache[seq] = _Waiting(env["id"], env["hash"], env)
                    term.waiting += 1
                    known[env["id"]] = ("/".join(key), env["hash"], "pending")
                    result.pending += 1
                    continue
                if env["prev_hash"] != term.hash:
                    broken(
                        env,
                        term,
                        f"broken chain at seq {seq}: prev_hash {env['prev_hash'][:12]}… does not "
                        f"link to seq {term.seq} ({term.hash[:12]}…)",
                        "broken_chain",
                    )
                    continue
                new_events.append(env)
                known[env["id"]] = ("/".join(key), env["hash"], "stored")
                term.seq, term.hash, term.chain_ok = seq, env["hash"], True
                result.stored += 1
                # The gap may have closed: promote what waited behind it, in order.
                while (waiting := self._next_waiting(conn, term, drop_pending)) is not None:
                    pid, penv = waiting.id, waiting.envelope
                    del term.cache[penv["seq"]]
                    term.waiting -= 1
                    if new_pending.pop(pid, None) is None:
                        drop_pending.add(pid)
                    if penv["prev_hash"] != term.hash:
                        broken(
                            penv,
                            term,
                            f"broken chain at seq {penv['seq']}: prev_hash does not link to seq "
                            f"{term.seq}",
                            "broken_chain",
                        )
                        break
                    new_events.append(penv)
                    known[pid] = ("/".join(key), penv["hash"], "stored")
                    term.seq, term.hash, term.chain_ok = penv["seq"], penv["hash"], True
                    result.stored += 1

            for key, term in terms.items():
                if term.chain_ok and "broken_chain" in term.open_kinds:
                    resolve.add((*key, "broken_chain"))
                if term.waiting == 0 and "gap" in term.open_kinds:
                    resolve.add((*key, "gap"))
                result.acks[key] = term.seq

            self._events_rows.insert(conn, [_event_row(e, texts) for e in new_events], now)
            self._take_captures(conn, new_events)
            self._pending_rows.insert(conn, [_pending_row(e) for e in new_pending.values()], now)
            for chunk in _chunks(sorted(drop_pending)):
                conn.execute(delete(pending).where(pending.c.id.in_(chunk)))
            moved = [_head_values(t, now) for t in terms.values() if _changed(t)]
            if moved:
                conn.execute(
                    update(heads)
                    .where(
                        and_(
                            heads.c.store == bindparam("k_store"),
                            heads.c.terminal == bindparam("k_terminal"),
                        )
                    )
                    .values(
                        seq=bindparam("v_seq"),
                        hash=bindparam("v_hash"),
                        updated_at=bindparam("v_at"),
                        waiting=bindparam("v_waiting"),
                        stuck_since=bindparam("v_stuck"),
                    ),
                    moved,
                )
            self._write_dead(conn, dead, now)
            result.dead = len(dead)
            for alert in raise_alerts:
                conn.execute(
                    insert(alerts).values(
                        store=alert.store,
                        terminal=alert.terminal,
                        kind=alert.kind,
                        seq=alert.seq,
                        detail=alert.detail,
                        raised_at=now,
                    )
                )
            result.raised = raise_alerts
            result.resolved = [self._resolve(conn, s, t, k, now) for s, t, k in sorted(resolve)]
        return result

    def _lock_terminals(
        self, conn: Connection, keys: Sequence[tuple[str, str]], now: datetime
    ) -> dict[tuple[str, str], _Term]:
        """Lock the heads of these terminals (sorted, so two relays never deadlock) and load
        their chain state, pending seqs and open alert kinds."""
        terms: dict[tuple[str, str], _Term] = {}
        if not keys:
            return terms
        rows = [
            {
                "store": s,
                "terminal": t,
                "seq": 0,
                "hash": GENESIS_HASH,
                "updated_at": now,
                "waiting": 0,
                "stuck_since": None,
            }
            for s, t in keys
        ]
        conn.execute(self._insert_ignore(heads), rows)
        for chunk in _chunks(keys):
            q = (
                select(heads)
                .where(tuple_(heads.c.store, heads.c.terminal).in_(chunk))
                .order_by(heads.c.store, heads.c.terminal)
                .with_for_update()
            )
            for h in conn.execute(q):
                terms[(h.store, h.terminal)] = _Term(
                    store=h.store,
                    terminal=h.terminal,
                    seq=int(h.seq),
                    hash=h.hash,
                    start_seq=int(h.seq),
                    waiting=int(h.waiting),
                    start_waiting=int(h.waiting),
                    updated_at=_aware(h.updated_at),
                    stuck_since=_aware(h.stuck_since) if h.stuck_since else None,
                )
            for a in conn.execute(
                select(alerts.c.store, alerts.c.terminal, alerts.c.kind).where(
                    tuple_(alerts.c.store, alerts.c.terminal).in_(chunk),
                    alerts.c.resolved_at.is_(None),
                )
            ):
                terms[(a.store, a.terminal)].open_kinds.add(a.kind)
        return terms

    def _load_waiting(
        self, conn: Connection, terms: Mapping[tuple[str, str], _Term], envs: Sequence[Any]
    ) -> None:
        """Cache the pending rows at the seqs this batch brings (to spot a second event
        claiming a seq that already waits)."""
        wanted = sorted(
            {
                (e["store"], e["terminal"], e["seq"])
                for e in envs
                if terms[(e["store"], e["terminal"])].waiting
            }
        )
        for chunk in _chunks(wanted):
            for r in conn.execute(
                select(
                    pending.c.store,
                    pending.c.terminal,
                    pending.c.seq,
                    pending.c.id,
                    pending.c.hash,
                    pending.c.envelope,
                ).where(tuple_(pending.c.store, pending.c.terminal, pending.c.seq).in_(chunk))
            ):
                terms[(r.store, r.terminal)].cache[r.seq] = _Waiting(r.id, r.hash, r.envelope)

    def _next_waiting(self, conn: Connection, term: _Term, dropped: set[str]) -> _Waiting | None:
        """The pending event right behind the head, reading the next window if needed."""
        nxt = term.seq + 1
        if term.waiting <= 0:
            return None
        if nxt not in term.cache and nxt > term.fetched_upto:
            upto = term.seq + _WINDOW
            for r in conn.execute(
                select(pending.c.seq, pending.c.id, pending.c.hash, pending.c.envelope)
                .where(
                    pending.c.store == term.store,
                    pending.c.terminal == term.terminal,
                    pending.c.seq > term.seq,
                    pending.c.seq <= upto,
                )
                .order_by(pending.c.seq)
            ):
                if r.id not in dropped:
                    term.cache.setdefault(r.seq, _Waiting(r.id, r.hash, r.envelope))
            term.fetched_upto = upto
        return term.cache.get(nxt)

    def _insert_ignore(self, table: Table) -> Any:
        if self.dialect == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing()
        return sqlite_dialect.insert(table).on_conflict_do_nothing()

    def _write_dead(self, conn: Connection, dead: Sequence[_Dead], now: datetime) -> None:
        if not dead:
            return
        rows: dict[str, dict[str, Any]] = {}
        for d in dead:
            payload = d.payload[:MAX_DEAD_PAYLOAD]
            reason = d.reason
            if len(d.payload) > MAX_DEAD_PAYLOAD:
                reason += f" (payload cut to {MAX_DEAD_PAYLOAD} of {len(d.payload)} bytes)"
            digest = hashlib.sha256(
                d.topic.encode(errors="replace") + b"\0" + d.payload
            ).hexdigest()
            if digest in rows:
                rows[digest]["times"] += 1
                continue
            rows[digest] = {
                "digest": digest,
                "topic": d.topic[:512],
                "store": d.store,
                "terminal": d.terminal,
                "payload": payload,
                "reason": reason,
                "received_at": now,
                "last_received_at": now,
                "times": 1,
            }
        seen = {
            r.digest
            for r in conn.execute(
                select(dead_letters.c.digest).where(dead_letters.c.digest.in_(list(rows)))
            )
        }
        for digest, row in rows.items():
            if digest not in seen:  # a repeat only counts up; the log says it once
                log.warning("dead letter on %s: %s", row["topic"][:200], row["reason"])
        ins: Any = (
            pg_dialect.insert(dead_letters)
            if self.dialect == "postgresql"
            else sqlite_dialect.insert(dead_letters)
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[dead_letters.c.digest],
            set_={
                "last_received_at": ins.excluded.last_received_at,
                "times": dead_letters.c.times + ins.excluded.times,
            },
        )
        conn.execute(stmt, list(rows.values()))

    def add_dead_letters(self, items: Sequence[tuple[str, bytes, str]]) -> None:
        """Keep messages the relay cannot use (topic, raw payload, reason)."""
        dead = [_Dead(topic, payload, reason) for topic, payload, reason in items]
        for d in dead:
            parsed = d.topic.split("/")
            if len(parsed) >= 4 and "/".join(parsed[:2]) == TOPIC_PREFIX:
                d.store, d.terminal = parsed[2][:64], parsed[3][:64]
        try:
            with self.engine.begin() as conn:
                self._write_dead(conn, dead, now_utc())
        except sa_exc.OperationalError as err:
            raise StoreUnavailable(f"database error: {err.orig}") from err

    def _resolve(
        self, conn: Connection, store: str, terminal: str, kind: str, now: datetime
    ) -> Alert:
        conn.execute(
            update(alerts)
            .where(
                alerts.c.store == store,
                alerts.c.terminal == terminal,
                alerts.c.kind == kind,
                alerts.c.resolved_at.is_(None),
            )
            .values(resolved_at=now)
        )
        return Alert(store, terminal, kind, "resolved")

    def _log_alerts(self, result: IngestResult) -> None:
        for a in result.raised:
            log.error("ALERT %s for %s/%s: %s", a.kind, a.store, a.terminal, a.detail)
        for a in result.resolved:
            log.warning("alert %s for %s/%s resolved", a.kind, a.store, a.terminal)

    def check_gaps(self, older_than: timedelta, now: datetime | None = None) -> IngestResult:
        """Raise a gap alert for a terminal whose events have waited behind a missing seq,
        with its head not moving, for longer than `older_than`; resolve gap alerts whose gap
        has closed. Reads only `heads` and `alerts` unless there is something to do."""
        now = now or now_utc()
        cutoff = now - older_than
        result = IngestResult()
        try:
            with self.engine.begin() as conn:
                open_gaps = {
                    (r.store, r.terminal)
                    for r in conn.execute(
                        select(alerts.c.store, alerts.c.terminal).where(
                            alerts.c.kind == "gap", alerts.c.resolved_at.is_(None)
                        )
                    )
                }
                stuck = {
                    (r.store, r.terminal)
                    for r in conn.execute(
                        select(heads.c.store, heads.c.terminal).where(
                            heads.c.waiting > 0, heads.c.stuck_since <= cutoff
                        )
                    )
                }
                waiting = {
                    (r.store, r.terminal)
                    for r in conn.execute(
                        select(heads.c.store, heads.c.terminal).where(heads.c.waiting > 0)
                    )
                }
                stale = sorted(stuck - open_gaps)
                closed = sorted(open_gaps - waiting)
                if not stale and not closed:
                    return result
                terms = self._lock_terminals(conn, sorted(stale + closed), now)
                for key in stale:
                    term = terms[key]
                    since = term.stuck_since
                    if "gap" in term.open_kinds or not term.waiting or not since or since > cutoff:
                        continue
                    first = conn.execute(
                        select(func.min(pending.c.seq)).where(
                            pending.c.store == key[0], pending.c.terminal == key[1]
                        )
                    ).scalar_one()
                    missing = (
                        f"seq {term.seq + 1}"
                        if first == term.seq + 2
                        else f"seq {term.seq + 1}..{first - 1}"
                    )
                    detail = (
                        f"{missing} missing; {term.waiting} later event(s) wait, the head has "
                        f"not moved since {since:%Y-%m-%d %H:%M:%S}Z"
                    )
                    conn.execute(
                        insert(alerts).values(
                            store=key[0],
                            terminal=key[1],
                            kind="gap",
                            seq=term.seq + 1,
                            detail=detail,
                            raised_at=now,
                        )
                    )
                    result.raised.append(Alert(key[0], key[1], "gap", detail, term.seq + 1))
                for key in closed:
                    if terms[key].waiting == 0:
                        result.resolved.append(self._resolve(conn, key[0], key[1], "gap", now))
        except sa_exc.OperationalError as err:
            raise StoreUnavailable(f"database error: {err.orig}") from err
        self._log_alerts(result)
        return result

    # ----- reading ------------------------------------------------------------------------

    def status(self) -> Status:
        with self.engine.connect() as conn:
            head_rows = [
                HeadStatus(
                    r.store,
                    r.terminal,
                    int(r.seq),
                    r.hash,
                    int(r.waiting),
                    _aware(r.updated_at),
                )
                for r in conn.execute(select(heads).order_by(heads.c.store, heads.c.terminal))
            ]
            open_alerts = [
                Alert(r.store, r.terminal, r.kind, r.detail, r.seq, r.id, _aware(r.raised_at))
                for r in conn.execute(
                    select(alerts).where(alerts.c.resolved_at.is_(None)).order_by(alerts.c.id)
                )
            ]
            n_dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
        return Status(head_rows, open_alerts, int(n_dead))

    def head(self, store: str, terminal: str) -> tuple[int, str]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(heads.c.seq, heads.c.hash).where(
                    heads.c.store == store, heads.c.terminal == terminal
                )
            ).first()
        return (int(row.seq), row.hash) if row else (0, GENESIS_HASH)

    def events_of(self, store: str, terminal: str) -> list[dict[str, Any]]:
        """A terminal's stored events as wire envelopes, in seq order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events)
                .where(events.c.store == store, events.c.terminal == terminal)
                .order_by(events.c.seq)
            )
            return [_envelope(r._mapping) for r in rows]

    def dead_letter_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(select(dead_letters).order_by(dead_letters.c.id))
            ]

    def resolve_alert(self, alert_id: int) -> bool:
        """Mark one alert as dealt with (an operator's decision); False if none was open."""
        with self.engine.begin() as conn:
            n = conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id, alerts.c.resolved_at.is_(None))
                .values(resolved_at=now_utc())
            ).rowcount
        return bool(n)

    # ----- versioned families (down-sync) -------------------------------------------------

    def lock_family(self, conn: Connection, store: str, family: Family) -> int:
        """Lock (store, family) for this transaction; return the version last published."""
        conn.execute(
            self._insert_ignore(downsync_state),
            [{"store": store, "family": family, "published_version": 0}],
        )
        return int(
            conn.execute(
                select(downsync_state.c.published_version)
                .where(downsync_state.c.store == store, downsync_state.c.family == family)
                .with_for_update()
            ).scalar_one()
        )

    def mark_published(self, conn: Connection, store: str, family: Family, version: int) -> None:
        conn.execute(
            update(downsync_state)
            .where(downsync_state.c.store == store, downsync_state.c.family == family)
            .values(published_version=version)
        )

    def latest_version(self, conn: Connection, store: str, family: Family) -> int:
        table = _VERSIONS[family]
        value = conn.execute(
            select(func.max(table.c.version)).where(table.c.store == store)
        ).scalar_one()
        return int(value or 0)

    def unpublished(self) -> list[tuple[str, Family]]:
        """(store, family) pairs whose newest version has not been published yet."""
        out: list[tuple[str, Family]] = []
        with self.engine.connect() as conn:
            published = {
                (r.store, r.family): int(r.published_version)
                for r in conn.execute(select(downsync_state))
            }
            for family in FAMILIES:
                table = _VERSIONS[family]
                for r in conn.execute(
                    select(table.c.store, func.max(table.c.version).label("v")).group_by(
                        table.c.store
                    )
                ):
                    if int(r.v) > published.get((r.store, family), 0):
                        out.append((r.store, family))
        return sorted(out)

    def families(self) -> list[tuple[str, Family]]:
        """Every (store, family) that has at least one version."""
        out: list[tuple[str, Family]] = []
        with self.engine.connect() as conn:
            for family in FAMILIES:
                table = _VERSIONS[family]
                for r in conn.execute(select(table.c.store).distinct()):
                    out.append((r.store, family))
        return sorted(out)

    def snapshot(self, conn: Connection, store: str, family: Family) -> dict[str, Any] | None:
        """The newest state of a family as its down-sync snapshot payload, or None."""
        version = self.latest_version(conn, store, family)
        if version == 0:
            return None
        if family == "catalog":
            head = conn.execute(
                select(catalog_versions).where(
                    catalog_versions.c.store == store, catalog_versions.c.version == version
                )
            ).one()
            items = [
                r.item
                for r in conn.execute(
                    select(catalog_items.c.item)
                    .where(catalog_items.c.store == store)
                    .order_by(catalog_items.c.position, catalog_items.c.sku)
                )
            ]
            return {
                "schema": "tillbox.catalog/1",
                "version": version,
                "currency": head.currency,
                "categories": head.categories,
                "items": items,
            }
        if family == "stock":
            levels = {
                r.sku: r.qty
                for r in conn.execute(
                    select(stock_levels.c.sku, stock_levels.c.qty)
                    .where(stock_levels.c.store == store)
                    .order_by(stock_levels.c.sku)
                )
            }
            return {"schema": "tillbox.stock/1", "version": version, "levels": levels}
        rows = conn.execute(
            select(customers).where(customers.c.store == store).order_by(customers.c.id)
        )
        return {
            "schema": "tillbox.customers/1",
            "version": version,
            "customers": [_customer(r._mapping) for r in rows],
        }

    def delta(self, conn: Connection, store: str, family: Family, version: int) -> dict[str, Any]:
        """The delta payload that takes a terminal from version-1 to `version`."""
        table = _VERSIONS[family]
        row = conn.execute(
            select(table).where(table.c.store == store, table.c.version == version)
        ).one()
        base = {"base_version": version - 1, "version": version}
        if family == "catalog":
            out: dict[str, Any] = {
                "schema": "tillbox.catalog-delta/1",
                **base,
                "upsert": row.upsert,
                "delete": row.delete,
            }
            if version > 1:
                prev = conn.execute(
                    select(catalog_versions.c.currency, catalog_versions.c.categories).where(
                        catalog_versions.c.store == store,
                        catalog_versions.c.version == version - 1,
                    )
                ).first()
                if prev is None or prev.categories != row.categories:
                    out["categories"] = row.categories
                if prev is None or prev.currency != row.currency:
                    out["currency"] = row.currency
            else:
                out["categories"] = row.categories
                out["currency"] = row.currency
            return out
        if family == "stock":
            return {"schema": "tillbox.stock-delta/1", **base, "levels": row.levels}
        return {
            "schema": "tillbox.customers-delta/1",
            **base,
            "upsert": row.upsert,
            "delete": row.delete,
        }

    def put_catalog(self, store: str, doc: CatalogDoc) -> Change | None:
        """Replace a store's catalog; a new version with its delta, or None when nothing changed."""
        now = now_utc()
        with self._writing() as conn:
            self.lock_family(conn, store, "catalog")
            latest = self.latest_version(conn, store, "catalog")
            current = {
                r.sku: (r.position, r.item)
                for r in conn.execute(
                    select(
                        catalog_items.c.sku, catalog_items.c.position, catalog_items.c.item
                    ).where(catalog_items.c.store == store)
                )
            }
            prev = (
                conn.execute(
                    select(catalog_versions.c.currency, catalog_versions.c.categories).where(
                        catalog_versions.c.store == store, catalog_versions.c.version == latest
                    )
                ).first()
                if latest
                else None
            )
            new_skus = {item["sku"] for item in doc.items}
            upsert = [i for i in doc.items if i["sku"] not in current or current[i["sku"]][1] != i]
            removed = sorted(current.keys() - new_skus)
            moved = [
                (pos, i)
                for pos, i in enumerate(doc.items)
                if i["sku"] in current and current[i["sku"]][0] != pos and current[i["sku"]][1] == i
            ]
            same_head = prev is not None and (prev.currency, prev.categories) == (
                doc.currency,
                doc.categories,
            )
            if not upsert and not removed and same_head:
                if moved:
                    self._reposition(conn, store, moved)
                return None
            version = latest + 1
            conn.execute(
                insert(catalog_versions).values(
                    store=store,
                    version=version,
                    currency=doc.currency,
                    categories=doc.categories,
                    upsert=upsert,
                    delete=removed,
                    created_at=now,
                )
            )
            gone = removed + [i["sku"] for i in upsert if i["sku"] in current]
            for chunk in _chunks(gone):
                conn.execute(
                    delete(catalog_items).where(
                        catalog_items.c.store == store, catalog_items.c.sku.in_(chunk)
                    )
                )
            position = {item["sku"]: pos for pos, item in enumerate(doc.items)}
            if upsert:
                conn.execute(
                    insert(catalog_items),
                    [
                        {"store": store, "sku": i["sku"], "position": position[i["sku"]], "item": i}
                        for i in upsert
                    ],
                )
            if moved:
                self._reposition(conn, store, moved)
        return Change("catalog", store, version)

    def _reposition(
        self, conn: Connection, store: str, moved: list[tuple[int, dict[str, Any]]]
    ) -> None:
        conn.execute(
            update(catalog_items)
            .where(catalog_items.c.store == store, catalog_items.c.sku == bindparam("k_sku"))
            .values(position=bindparam("v_pos")),
            [{"k_sku": i["sku"], "v_pos": pos} for pos, i in moved],
        )

    def set_stock(self, store: str, levels: Mapping[str, str]) -> Change | None:
        """Set stock levels (canonical decimal strings); None when nothing changed."""
        now = now_utc()
        with self._writing() as conn:
            self.lock_family(conn, store, "stock")
            current = {
                r.sku: r.qty
                for r in conn.execute(
                    select(stock_levels.c.sku, stock_levels.c.qty).where(
                        stock_levels.c.store == store,
                        stock_levels.c.sku.in_(list(levels)),
                    )
                )
            }
            changed = {sku: q for sku, q in sorted(levels.items()) if current.get(sku) != q}
            if not changed:
                return None
            version = self.latest_version(conn, store, "stock") + 1
            conn.execute(
                insert(stock_versions).values(
                    store=store, version=version, levels=changed, created_at=now
                )
            )
            known = [s for s in changed if s in current]
            if known:
                conn.execute(
                    update(stock_levels)
                    .where(stock_levels.c.store == store, stock_levels.c.sku == bindparam("k_sku"))
                    .values(qty=bindparam("v_qty")),
                    [{"k_sku": s, "v_qty": changed[s]} for s in known],
                )
            fresh = [s for s in changed if s not in current]
            if fresh:
                conn.execute(
                    insert(stock_levels),
                    [{"store": store, "sku": s, "qty": changed[s]} for s in fresh],
                )
        return Change("stock", store, version)

    def put_customers(self, store: str, people: Sequence[Mapping[str, Any]]) -> Change | None:
        """Replace a store's customer list; None when nothing changed."""
        now = now_utc()
        wanted = {p["id"]: _customer(p) for p in people}
        with self._writing() as conn:
            self.lock_family(conn, store, "customers")
            current = {
                r.id: _customer(r._mapping)
                for r in conn.execute(select(customers).where(customers.c.store == store))
            }
            _keep_answers(current, wanted)
            upsert = [c for cid, c in sorted(wanted.items()) if current.get(cid) != c]
            removed = sorted(current.keys() - wanted.keys())
            if not upsert and not removed:
                return None
            version = self.latest_version(conn, store, "customers") + 1
            conn.execute(
                insert(customer_versions).values(
                    store=store, version=version, upsert=upsert, delete=removed, created_at=now
                )
            )
            gone = removed + [c["id"] for c in upsert if c["id"] in current]
            for chunk in _chunks(gone):
                conn.execute(
                    delete(customers).where(customers.c.store == store, customers.c.id.in_(chunk))
                )
            if upsert:
                conn.execute(insert(customers), [{"store": store, **c} for c in upsert])
        return Change("customers", store, version)

    def _take_captures(self, conn: Connection, stored: Sequence[Mapping[str, Any]]) -> None:
        """Customers captured at a till (`customer.captured`) join their store's customers, as
        one new version per store, in the transaction that stores the events.

        A record whose consent answer is newer than the capture's keeps its answer."""
        by_store: dict[str, dict[str, dict[str, Any]]] = {}
        for env in stored:
            if env["type"] != "customer.captured":
                continue
            customer = _captured(env["data"])
            if customer is None:
                # Kept as an event all the same; the log names the event, never the person.
                log.warning("customer.captured event %s is malformed: not in customers", env["id"])
                continue
            by_store.setdefault(env["store"], {})[customer["id"]] = customer
        for store, wanted in sorted(by_store.items()):
            self.lock_family(conn, store, "customers")
            current = {
                r.id: _customer(r._mapping)
                for r in conn.execute(
                    select(customers).where(
                        customers.c.store == store, customers.c.id.in_(sorted(wanted))
                    )
                )
            }
            upsert = []
            for cid, new in sorted(wanted.items()):
                old = current.get(cid)
                if old is not None:
                    if old.get("marketing_consent_at", "") >= new["marketing_consent_at"]:
                        continue
                    new["loyalty_points"] = old["loyalty_points"]
                upsert.append(new)
            if not upsert:
                continue
            conn.execute(
                insert(customer_versions).values(
                    store=store,
                    version=self.latest_version(conn, store, "customers") + 1,
                    upsert=upsert,
                    delete=[],
                    created_at=now_utc(),
                )
            )
            conn.execute(
                delete(customers).where(
                    customers.c.store == store, customers.c.id.in_([c["id"] for c in upsert])
                )
            )
            conn.execute(insert(customers), [{"store": store, **c} for c in upsert])

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa_exc.OperationalError as err:
            raise StoreUnavailable(f"database error: {err.orig}") from err

    def catalog_categories(self, store: str) -> tuple[str, list[dict[str, str]]]:
        """Currency and categories of the newest catalog version (EUR and none if no catalog)."""
        with self.engine.connect() as conn:
            latest = self.latest_version(conn, store, "catalog")
            row = conn.execute(
                select(catalog_versions.c.currency, catalog_versions.c.categories).where(
                    catalog_versions.c.store == store, catalog_versions.c.version == latest
                )
            ).first()
        return (row.currency, list(row.categories)) if row else ("EUR", [])


# ----- helpers ----------------------------------------------------------------------------


def _parse(message: Inbound, texts: dict[str, str]) -> dict[str, Any] | _Dead:
    """A valid envelope whose topic matches it, or the dead letter saying why not. Puts the
    canonical JSON of a valid envelope's `data` in `texts` under its hash."""
    where = parse_events_topic(message.topic)
    if where is None:
        return _Dead(message.topic, message.payload, "not an events topic")
    store, terminal = where

    def dead(reason: str) -> _Dead:
        return _Dead(message.topic, message.payload, reason, store[:64], terminal[:64])

    try:
        doc = orjson.loads(message.payload)
    except orjson.JSONDecodeError:
        # NaN, an integer past 64 bits, deep nesting: Python's json tells these apart as before.
        try:
            doc = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            return dead(f"not JSON: {err}")
    try:
        data = checked_data(doc)
    except EnvelopeError as err:
        return dead(f"invalid envelope: {err}")
    except Exception as err:  # a payload the canonicaliser cannot take (huge int, NaN, …)
        return dead(f"invalid envelope: {type(err).__name__}: {err}")
    env: dict[str, Any] = doc
    if (env["store"], env["terminal"]) != (store, terminal):
        return dead(
            f"topic is {store}/{terminal} but the envelope says {env['store']}/{env['terminal']}"
        )
    texts[env["hash"]] = data.decode()
    return env


def _dead_event(env: dict[str, Any], reason: str) -> _Dead:
    return _Dead(_topic_of(env), canonical(env), reason, env["store"], env["terminal"])


def _topic_of(env: Mapping[str, Any]) -> str:
    return events_topic(env["store"], env["terminal"])


# Column order of the rows below; `received_at` (the batch's time) is added by _Rows.
_EVENT_COLUMNS: Final = (
    "id",
    "store",
    "terminal",
    "seq",
    "type",
    "at",
    "prev_hash",
    "hash",
    "data",
)
_PENDING_COLUMNS: Final = ("id", "store", "terminal", "seq", "hash", "envelope")


def _event_row(env: dict[str, Any], texts: Mapping[str, str]) -> tuple[Any, ...]:
    data = texts.get(env["hash"])  # the same hash: the same canonical content
    return (
        env["id"],
        env["store"],
        env["terminal"],
        env["seq"],
        env["type"],
        env["at"],
        env["prev_hash"],
        env["hash"],
        data if data is not None else canonical(env["data"]).decode(),
    )


def _pending_row(env: dict[str, Any]) -> tuple[Any, ...]:
    return (env["id"], env["store"], env["terminal"], env["seq"], env["hash"], env)


class _Rows:
    """A plain INSERT of many rows run as one executemany at the driver (sqlite3 or psycopg).

    Values go through the columns' own bind processors, as with SQLAlchemy Core, but without
    its per-row work (dicts, statement caching, compiled parameter lists): for the events of
    a group commit that work cost as much as the rest of the transaction. The last column is
    `received_at`, one value per batch, converted once. Columns in `json_text` take JSON
    that is already text."""

    def __init__(
        self,
        engine: Engine,
        table: Table,
        columns: Sequence[str],
        json_text: Collection[str] = (),
    ) -> None:
        dialect = engine.dialect
        quote = dialect.identifier_preparer.quote
        names = [*columns, "received_at"]
        mark = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        text_mark = mark if dialect.name == "sqlite" else f"CAST({mark} AS JSON)"
        self.sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join(text_mark if n in json_text else mark for n in names)})"
        )
        procs = [
            None
            if n in json_text
            else table.c[n].type.dialect_impl(dialect).bind_processor(dialect)
            for n in names
        ]
        self._convert = [(i, p) for i, p in enumerate(procs[:-1]) if p is not None]
        self._when: Callable[[Any], Any] = procs[-1] or _same

    def insert(self, conn: Connection, rows: Sequence[tuple[Any, ...]], now: datetime) -> None:
        if not rows:
            return
        when = self._when(now)
        convert = self._convert
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(row)
            for i, proc in convert:
                values[i] = proc(values[i])
            values.append(when)
            out.append(tuple(values))
        conn.exec_driver_sql(self.sql, out)


def _same(value: Any) -> Any:
    return value


def _envelope(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "schema": "tillbox.event/1",
        "id": row["id"],
        "type": row["type"],
        "store": row["store"],
        "terminal": row["terminal"],
        "seq": int(row["seq"]),
        "at": row["at"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
        "data": row["data"],
    }


def _customer(row: Mapping[Any, Any]) -> dict[str, Any]:
    customer = {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "phone": row["phone"],
        "marketing_consent": bool(row["marketing_consent"]),
        "loyalty_points": int(row["loyalty_points"]),
    }
    if row.get("marketing_consent_at"):  # only answers given at a till have a time
        customer["marketing_consent_at"] = row["marketing_consent_at"]
    return customer


def _keep_answers(current: Mapping[str, Any], wanted: dict[str, dict[str, Any]]) -> None:
    """A loaded list never drops or overrides a consent answer recorded at a till: customers
    captured there stay when the list lacks them, and keep their answer unless the list's
    is newer (a file's answer has no time, so it is older)."""
    for cid, old in current.items():
        if "marketing_consent_at" not in old:
            continue
        new = wanted.get(cid)
        if new is None:
            wanted[cid] = old
        elif new.get("marketing_consent_at", "") < old["marketing_consent_at"]:
            new["marketing_consent"] = old["marketing_consent"]
            new["marketing_consent_at"] = old["marketing_consent_at"]


_CONSENT_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def _captured(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The customers row of a `customer.captured` event's data, or None when it is malformed."""

    def text(key: str, most: int, optional: bool = False) -> bool:
        value = data.get(key)
        if value is None:
            return optional
        return isinstance(value, str) and 0 < len(value) <= most

    ok = (
        text("customer_id", 64)
        and text("name", 200)
        and text("email", 200, optional=True)
        and text("phone", 200, optional=True)
        and isinstance(data.get("marketing_consent"), bool)
        and isinstance(data.get("marketing_consent_at"), str)
        and bool(_CONSENT_AT.match(data["marketing_consent_at"]))
    )
    if not ok:
        return None
    return {
        "id": data["customer_id"],
        "name": data["name"],
        "email": data.get("email") or "",
        "phone": data.get("phone") or "",
        "marketing_consent": data["marketing_consent"],
        "loyalty_points": 0,
        "marketing_consent_at": data["marketing_consent_at"],
    }


def _add_consent_time(engine: Engine) -> None:
    """A database made before consent times were kept gets the (empty) column."""
    columns = {c["name"] for c in inspect(engine).get_columns("customers")}
    if "marketing_consent_at" not in columns:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "ALTER TABLE customers ADD COLUMN marketing_consent_at VARCHAR(40)"
            )


def _changed(term: _Term) -> bool:
    return term.seq != term.start_seq or term.waiting != term.start_waiting


def _head_values(term: _Term, now: datetime) -> dict[str, Any]:
    """The heads row after this transaction: `stuck_since` restarts whenever the head moves
    or events start waiting, and is cleared when nothing waits."""
    moved = term.seq != term.start_seq
    if term.waiting == 0:
        stuck = None
    elif moved or term.start_waiting == 0 or term.stuck_since is None:
        stuck = now
    else:
        stuck = term.stuck_since
    return {
        "k_store": term.store,
        "k_terminal": term.terminal,
        "v_seq": term.seq,
        "v_hash": term.hash,
        "v_at": now if moved else term.updated_at,
        "v_waiting": term.waiting,
        "v_stuck": stuck,
    }


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything the store writes is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    for i in range(0, len(values), _CHUNK):
        yield list(values[i : i + _CHUNK])
