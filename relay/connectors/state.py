# Connector state in the central store: cursors, the durable queue, bindings, dead letters.
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Engine,
    Table,
    bindparam,
    func,
    insert,
    select,
    union_all,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from relay.store import (
    StoreUnavailable,
    connector_bindings,
    connector_cursors,
    connector_dead,
    connector_health,
    connector_kv,
    connector_queue,
    connector_unknown,
    events,
    heads,
    imported_events,
    metadata,
    now_utc,
    reading,
)

from .base import Command, Event, MissingMapping

log = logging.getLogger("tillbox.relay.connectors")

IMPORTS: Final = "imports"
FEED_BATCH: Final = 500

# The tables are defined with the rest of the relay's schema in relay/store.py.
cursors = connector_cursors
queue = connector_queue
bindings = connector_bindings
dead = connector_dead
unknown = connector_unknown
health = connector_health
kv = connector_kv
imported = imported_events

PlanOutcome = Literal["commands", "ignored", "unknown", "waiting", "skipped"]


@dataclass(slots=True)
class Planned:
    """What planning one event gave."""

    outcome: PlanOutcome
    commands: Sequence[Command] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    key: str
    kind: str
    generation: int
    attempts: int
    uncertain: bool
    command: Command
    event: Event
    bindings: Mapping[str, str]


@dataclass(slots=True)
class _Batch:
    plain: list[dict[str, Any]] = field(default_factory=list)
    coalesce: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class FeedResult:
    events: int = 0
    commands: int = 0
    waiting: int = 0
    unknown: int = 0


@dataclass(frozen=True, slots=True)
class QueueStatus:
    connector: str
    counts: Mapping[str, int]
    waiting: list[tuple[str, str]]  # (summary, reason) of the oldest waiting items
    failing: str | None
    since: datetime | None
    unknown: int
    dead: int
    mapping: str
    oldest_ready: datetime | None = None
    retrying: list[tuple[str, int, str]] = field(default_factory=list)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ConnectorState:
    """Connector tables on the relay's database. Each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        try:
            metadata.create_all(engine)
        except sa_exc.OperationalError as err:
            raise StoreUnavailable(f"cannot create the connector tables: {err.orig}") from err

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa_exc.OperationalError as err:
            raise StoreUnavailable(f"database error: {err.orig}") from err

    def _insert(self, table: Table) -> Any:
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    # ----- feeding ------------------------------------------------------------------------

    def feed(
        self,
        connector: str,
        plan: Callable[[Event], Planned],
        *,
        limit: int = FEED_BATCH,
        local: Callable[[Connection, Event, Planned], None] | None = None,
        flush: Callable[[Connection], None] | None = None,
        mapping_digest: str = "",
        skips: Collection[str] = (),
    ) -> FeedResult:
        """Plan the events stored since this connector's cursors and queue the commands, moving
        the cursors in the same transaction (a crash repeats nothing and loses nothing).

        Terminal streams are read per terminal up to its head (every seq below a head is
        stored, so a cursor on seq never skips an event stored later); imports by position.
        `local` lets a local sink (the ledger) write its rows in the same transaction.
        Events of the types in `skips` (ones the planner ignores and `local` does not want)
        are not read at all: they are counted and the cursor moves past them.
        """
        result = FeedResult()
        now = now_utc()
        # The events are read before the write transaction (the costly part, off the lock the
        # ingest writer needs); another feeder of this connector that moved a cursor meanwhile
        # makes it read again under the lock.
        with reading(self.engine) as conn:
            heads_now = {
                f"t/{r.store}/{r.terminal}": int(r.seq)
                for r in conn.execute(select(heads.c.store, heads.c.terminal, heads.c.seq))
            }
            last_import = conn.execute(select(func.max(imported.c.pos))).scalar_one()
            heads_now[IMPORTS] = int(last_import or 0)
            seen_at = self._positions(conn, connector)
            behind = sorted(s for s, top in heads_now.items() if top > seen_at.get(s, 0))
            if not behind:
                return result
            ranges = _ranges(behind, seen_at, heads_now, limit)
            found = self._read(conn, ranges, skips)
        with self._tx() as conn:
            self._lock_cursors(conn, connector, behind)
            positions = self._positions(conn, connector)  # as locked
            if any(positions.get(s, 0) != start for s, start, _ in ranges):
                ranges = _ranges(behind, positions, heads_now, limit)
                found = self._read(conn, ranges, skips)
            rows = _Batch()
            moved: list[dict[str, Any]] = []
            for stream, start, top in ranges:
                read = found.get(stream, [])
                for ev in read:
                    planned = plan(ev)
                    if local is not None:
                        local(conn, ev, planned)
                    self._record(conn, connector, ev, planned, now, mapping_digest, result, rows)
                if stream == IMPORTS:
                    seen, new_pos = len(read), (read[-1].seq if read else start)
                else:  # every seq up to a head is stored: skipped ones included
                    seen, new_pos = top - start, top
                result.events += seen
                moved.append({"s": stream, "p": new_pos})
            self._flush(conn, rows, now)
            if flush is not None:
                flush(conn)
            if moved:
                conn.execute(
                    update(cursors)
                    .where(cursors.c.connector == connector, cursors.c.stream == bindparam("s"))
                    .values(position=bindparam("p")),
                    moved,
                )
        return result

    def _positions(self, conn: Connection, connector: str) -> dict[str, int]:
        return {
            r.stream: int(r.position)
            for r in conn.execute(
                select(cursors.c.stream, cursors.c.position).where(cursors.c.connector == connector)
            )
        }

    def _lock_cursors(self, conn: Connection, connector: str, streams: Sequence[str]) -> None:
        conn.execute(
            self._insert(cursors).on_conflict_do_nothing(),
            [{"connector": connector, "stream": s, "position": 0} for s in streams],
        )
        conn.execute(
            select(cursors.c.stream)
            .where(cursors.c.connector == connector, cursors.c.stream.in_(list(streams)))
            .order_by(cursors.c.stream)
            .with_for_update()
        ).all()

    def _read(
        self, conn: Connection, ranges: Sequence[tuple[str, int, int]], skips: Collection[str]
    ) -> dict[str, list[Event]]:
        """The events of each (stream, after, upto) in order, in one query per 200 streams."""
        out: dict[str, list[Event]] = {}
        terminal = [r for r in ranges if r[0] != IMPORTS]
        for stream, start, top in ranges:
            if stream == IMPORTS:
                out[IMPORTS] = [
                    Event(r.id, r.type, r.store, "", int(r.pos), r.at, r.data, "import")
                    for r in conn.execute(
                        select(imported)
                        .where(imported.c.pos > start, imported.c.pos <= top)
                        .order_by(imported.c.pos)
                    )
                ]
        columns = (
            events.c.id,
            events.c.type,
            events.c.store,
            events.c.terminal,
            events.c.seq,
            events.c.at,
            events.c.data,
        )
        skipped = [events.c.type.not_in(sorted(skips))] if skips else []
        for i in range(0, len(terminal), 200):
            parts = []
            for stream, start, top in terminal[i : i + 200]:
                _, store, till = stream.split("/", 2)
                # one indexed range search each (an OR of the ranges scans the store's events)
                parts.append(
                    select(*columns).where(
                        events.c.store == store,
                        events.c.terminal == till,
                        events.c.seq > start,
                        events.c.seq <= top,
                        *skipped,
                    )
                )
            for r in conn.execute(union_all(*parts)):
                out.setdefault(f"t/{r.store}/{r.terminal}", []).append(
                    Event(r.id, r.type, r.store, r.terminal, int(r.seq), r.at, r.data)
                )
        for read in out.values():
            read.sort(key=lambda e: e.seq)
        return out

    def _record(
        self,
        conn: Connection,
        connector: str,
        ev: Event,
        planned: Planned,
        now: datetime,
        digest: str,
        result: FeedResult,
        rows: _Batch | None = None,
    ) -> None:
        if planned.outcome == "unknown":
            result.unknown += 1
            self.record_unknown(conn, connector, ev)
        elif planned.outcome == "waiting":
            result.waiting += 1
            self._put_waiting(conn, connector, ev, planned.reason, now, digest)
        elif planned.outcome == "commands":
            result.commands += len(planned.commands)
            self._put_commands(conn, connector, ev, planned.commands, now, digest, rows)

    def record_unknown(self, conn: Connection, connector: str, ev: Event) -> None:
        """Note an event this connector does not understand (it stays in `events`)."""
        conn.execute(
            self._insert(unknown).on_conflict_do_nothing(),
            [
                {
                    "connector": connector,
                    "event_id": ev.id,
                    "type": ev.type,
                    "store": ev.store,
                    "terminal": ev.terminal,
                    "seq": ev.seq,
                    "at": ev.at,
                    "seen_at": now_utc(),
                }
            ],
        )

    def _event(self, conn: Connection, ref: Mapping[str, Any]) -> Event:
        """The stored event a queue row came from."""
        if ref.get("source") == "import":
            r = conn.execute(select(imported).where(imported.c.id == ref["id"])).one()
            return Event(r.id, r.type, r.store, "", int(r.pos), r.at, r.data, "import")
        e = conn.execute(
            select(
                events.c.id, events.c.type, events.c.store, events.c.terminal, events.c.seq,
                events.c.at, events.c.data,
            ).where(events.c.id == ref["id"])
        ).one()  # fmt: skip
        return Event(e.id, e.type, e.store, e.terminal, int(e.seq), e.at, e.data)

    def _put_waiting(
        self, conn: Connection, connector: str, ev: Event, reason: str, now: datetime, digest: str
    ) -> None:
        row = {
            "connector": connector,
            "key": f"plan:{ev.id}",
            "kind": "plan",
            "store": ev.store,
            "day": "",
            "summary": f"{ev.type} {ev.store}/{ev.terminal or 'import'} #{ev.seq}",
            "sources": [ev.id],
            "event": {"id": ev.id, "source": ev.source},
            "payload": None,
            "state": "waiting",
            "coalesce": False,
            "generation": 0,
            "attempts": 0,
            "uncertain": False,
            "next_at": now,
            "reason": reason,
            "owner": "",
            "mapping_digest": digest,
            "created_at": now,
            "updated_at": now,
        }
        stmt = self._insert(queue)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[queue.c.connector, queue.c.key],
                set_={"reason": reason, "mapping_digest": digest, "updated_at": now},
            ),
            [row],
        )

    def _put_commands(
        self,
        conn: Connection,
        connector: str,
        ev: Event,
        commands: Sequence[Command],
        now: datetime,
        digest: str,
        batch: _Batch | None = None,
    ) -> None:
        """Queue commands; with `batch`, collect them for one insert per kind at the end."""
        own = batch is None
        batch = batch if batch is not None else _Batch()
        for cmd in commands:
            row = {
                "connector": connector,
                "key": cmd.key,
                "kind": cmd.kind,
                "store": cmd.store,
                "day": cmd.day,
                "summary": cmd.summary,
                "sources": list(cmd.sources),
                "event": {"id": ev.id, "source": ev.source},
                "payload": cmd.payload,
                "state": "ready",
                "coalesce": cmd.coalesce,
                "generation": 0,
                "attempts": 0,
                "uncertain": False,
                "next_at": now,
                "reason": "",
                "owner": "",
                "mapping_digest": digest,
                "created_at": now,
                "updated_at": now,
            }
            if cmd.coalesce:
                batch.coalesce[cmd.key] = row  # the newest plan of a key wins
            else:
                batch.plain.append(row)
        if own:
            self._flush(conn, batch, now)

    def _flush(self, conn: Connection, batch: _Batch, now: datetime) -> None:
        if batch.plain:
            bulk_insert_ignore(conn, queue, batch.plain, ["connector", "key"])
        if batch.coalesce:
            stmt = self._insert(queue)
            # Planned again: run once more (a running worker sees the generation move).
            stmt = stmt.on_conflict_do_update(
                index_elements=[queue.c.connector, queue.c.key],
                set_={
                    "generation": queue.c.generation + 1,
                    "state": _coalesced_state(),
                    "next_at": now,
                    "event": stmt.excluded.event,
                    "payload": stmt.excluded.payload,
                    "updated_at": now,
                },
            )
            conn.execute(stmt, list(batch.coalesce.values()))
        batch.plain, batch.coalesce = [], {}

    # ----- re-planning ----------------------------------------------------------------------

    def replan(
        self,
        connector: str,
        plan: Callable[[Event], Planned],
        digest: str,
        *,
        ids: Sequence[int] | None = None,
    ) -> tuple[int, int]:
        """Plan again the events waiting for a mapping (or the rows `ids`, for a replay) with
        the mapping now loaded. Returns (rows that now flow, rows still waiting)."""
        now = now_utc()
        flowing = still = 0
        with self._tx() as conn:
            q = select(queue).where(queue.c.connector == connector)
            if ids is None:
                q = q.where(queue.c.state == "waiting", queue.c.mapping_digest != digest)
            else:
                q = q.where(queue.c.id.in_(list(ids)))
            rows = conn.execute(q.order_by(queue.c.id).with_for_update()).all()
            for r in rows:
                ev = self._event(conn, r.event)
                planned = plan(ev)
                if planned.outcome == "waiting":
                    still += 1
                    conn.execute(
                        update(queue)
                        .where(queue.c.id == r.id)
                        .values(
                            state="waiting",
                            reason=planned.reason,
                            mapping_digest=digest,
                            updated_at=now,
                        )
                    )
                    continue
                flowing += 1
                if r.kind == "plan":
                    conn.execute(queue.delete().where(queue.c.id == r.id))
                    if planned.outcome == "commands":
                        self._put_commands(conn, connector, ev, planned.commands, now, digest)
                    continue
                # A command row (a replay, or a command that waited): take the new plan of the
                # same key; the other commands of that event are already queued or done.
                fresh = [c for c in planned.commands if c.key == r.key]
                values: dict[str, Any] = {
                    "state": "ready",
                    "attempts": 0,
                    "next_at": now,
                    "reason": "",
                    "mapping_digest": digest,
                    "updated_at": now,
                    "lease_until": None,
                }
                if fresh:
                    values["payload"] = fresh[0].payload
                    values["summary"] = fresh[0].summary
                conn.execute(update(queue).where(queue.c.id == r.id).values(**values))
        return flowing, still

    # ----- claiming and finishing -----------------------------------------------------------

    def recover_orphans(self, connector: str, me: str) -> int:
        """Commands leased by a worker on this host that is gone (killed mid-apply): ready
        again, marked uncertain so the next attempt looks for them remotely first."""
        host, _, _ = me.partition(":")
        with self._tx() as conn:
            rows = conn.execute(
                select(queue.c.id, queue.c.owner).where(
                    queue.c.connector == connector,
                    queue.c.state == "running",
                    queue.c.owner.startswith(f"{host}:"),
                )
            ).all()
            orphans = [r.id for r in rows if r.owner != me and not _alive(r.owner, me)]
            if orphans:
                conn.execute(
                    update(queue)
                    .where(queue.c.id.in_(orphans))
                    .values(state="ready", uncertain=True, lease_until=None, next_at=now_utc())
                )
        if orphans:
            log.warning(
                "connector %s: %d command(s) were being posted by a relay that died; they will "
                "be looked up remotely before posting",
                connector,
                len(orphans),
            )
        return len(orphans)

    def claim(self, connector: str, limit: int, lease_s: float, owner: str = "") -> list[Claimed]:
        """Take up to `limit` due commands (and any whose worker died mid-apply: their lease ran
        out) and lease them to this worker."""
        now = now_utc()
        out: list[Claimed] = []
        with self._tx() as conn:
            q = (
                select(queue)
                .where(
                    queue.c.connector == connector,
                    (
                        ((queue.c.state == "ready") & (queue.c.next_at <= now))
                        | ((queue.c.state == "running") & (queue.c.lease_until < now))
                    ),
                )
                .order_by(queue.c.next_at, queue.c.id)
                .limit(limit)
            )
            if self.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = conn.execute(q).all()
            for r in rows:
                crashed = r.state == "running"  # leased before, never finished: it may have posted
                uncertain = bool(r.uncertain) or crashed
                conn.execute(
                    update(queue)
                    .where(queue.c.id == r.id)
                    .values(
                        state="running",
                        lease_until=now + timedelta(seconds=lease_s),
                        uncertain=uncertain,
                        owner=owner,
                        updated_at=now,
                    )
                )
                known = {
                    b.local_id: b.remote_id
                    for b in conn.execute(
                        select(bindings.c.local_id, bindings.c.remote_id).where(
                            bindings.c.connector == connector, bindings.c.command_key == r.key
                        )
                    )
                }
                cmd = Command(
                    r.kind,
                    r.key,
                    tuple(r.sources),
                    r.store,
                    r.day,
                    r.payload,
                    r.summary,
                    bool(r.coalesce),
                )
                out.append(
                    Claimed(
                        r.id,
                        r.key,
                        r.kind,
                        int(r.generation),
                        int(r.attempts),
                        uncertain,
                        cmd,
                        self._event(conn, r.event),
                        known,
                    )
                )
        return out

    def extend(self, ids: Sequence[int], lease_s: float) -> None:
        if not ids:
            return
        with self._tx() as conn:
            conn.execute(
                update(queue)
                .where(queue.c.id.in_(list(ids)), queue.c.state == "running")
                .values(lease_until=now_utc() + timedelta(seconds=lease_s))
            )

    def save_bindings(self, connector: str, key: str, found: Mapping[str, str]) -> None:
        """Keep remote ids as soon as they are known, before the command as a whole is done."""
        if not found:
            return
        now = now_utc()
        with self._tx() as conn:
            self._bind(conn, connector, key, found, now)

    def _bind(
        self, conn: Connection, connector: str, key: str, found: Mapping[str, str], now: datetime
    ) -> None:
        stmt = self._insert(bindings)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[bindings.c.connector, bindings.c.local_id],
                set_={"remote_id": stmt.excluded.remote_id},
            ),
            [
                {
                    "connector": connector,
                    "local_id": local,
                    "remote_id": remote,
                    "command_key": key,
                    "created_at": now,
                }
                for local, remote in found.items()
            ],
        )

    def finish(
        self, connector: str, claimed: Claimed, found: Mapping[str, str], note: str = ""
    ) -> None:
        now = now_utc()
        with self._tx() as conn:
            if found:
                self._bind(conn, connector, claimed.key, found, now)
            # Planned again while it ran (a coalescing command): run once more.
            again = conn.execute(
                update(queue)
                .where(queue.c.id == claimed.id, queue.c.generation != claimed.generation)
                .values(state="ready", next_at=now, attempts=0, uncertain=False, updated_at=now)
            ).rowcount
            if not again:
                _release(
                    conn,
                    claimed,
                    now,
                    state="done",
                    attempts=claimed.attempts + 1,
                    uncertain=False,
                    reason=note,
                    done_at=now,
                )

    def retry(
        self, claimed: Claimed, reason: str, delay_s: float, uncertain: bool, *, count: bool = True
    ) -> None:
        now = now_utc()
        with self._tx() as conn:
            _release(
                conn,
                claimed,
                now,
                state="ready",
                attempts=claimed.attempts + (1 if count else 0),
                uncertain=claimed.uncertain or uncertain,
                next_at=now + timedelta(seconds=delay_s),
                reason=reason[:2000],
            )

    def wait_for_mapping(self, claimed: Claimed, reason: str, digest: str) -> None:
        now = now_utc()
        with self._tx() as conn:
            _release(conn, claimed, now, state="waiting", reason=reason, mapping_digest=digest)

    def to_dead(
        self,
        connector: str,
        claimed: Claimed,
        reason: str,
        status: int | None = None,
        remote: str = "",
    ) -> int:
        now = now_utc()
        with self._tx() as conn:
            attempts = claimed.attempts + 1
            _release(conn, claimed, now, state="dead", attempts=attempts, reason=reason[:2000])
            result = conn.execute(
                insert(dead).values(
                    connector=connector,
                    queue_id=claimed.id,
                    key=claimed.key,
                    kind=claimed.kind,
                    store=claimed.command.store,
                    day=claimed.command.day,
                    summary=claimed.command.summary,
                    payload=claimed.command.to_dict(),
                    reason=reason[:4000],
                    status=status,
                    remote=remote[:20000],
                    attempts=claimed.attempts + 1,
                    at=now,
                )
            )
            pk = result.inserted_primary_key
            return int(pk[0]) if pk else 0

    # ----- small values ---------------------------------------------------------------------

    def get_value(self, connector: str, key: str) -> str | None:
        with self.engine.connect() as conn:
            v = conn.execute(
                select(kv.c.value).where(kv.c.connector == connector, kv.c.key == key)
            ).scalar_one_or_none()
        return None if v is None else str(v)

    def set_value(self, connector: str, key: str, value: str) -> None:
        now = now_utc()
        with self._tx() as conn:
            stmt = self._insert(kv)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[kv.c.connector, kv.c.key],
                    set_={"value": value, "updated_at": now},
                ),
                [{"connector": connector, "key": key, "value": value, "updated_at": now}],
            )

    # ----- health -------------------------------------------------------------------------

    def set_health(self, connector: str, failing: str | None, mapping: str = "") -> None:
        now = now_utc()
        with self._tx() as conn:
            stmt = self._insert(health)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[health.c.connector],
                    set_={"failing": failing, "since": now, "mapping": mapping},
                ),
                [{"connector": connector, "failing": failing, "since": now, "mapping": mapping}],
            )

    # ----- reading and operator actions -----------------------------------------------------

    def status(self, connector: str) -> QueueStatus:
        with self.engine.connect() as conn:
            counts = {
                r.state: int(r.n)
                for r in conn.execute(
                    select(queue.c.state, func.count().label("n"))
                    .where(queue.c.connector == connector)
                    .group_by(queue.c.state)
                )
            }
            waiting = [
                (r.summary, r.reason)
                for r in conn.execute(
                    select(queue.c.summary, queue.c.reason)
                    .where(queue.c.connector == connector, queue.c.state == "waiting")
                    .order_by(queue.c.id)
                    .limit(10)
                )
            ]
            retrying = [
                (r.summary, int(r.attempts), r.reason)
                for r in conn.execute(
                    select(queue.c.summary, queue.c.attempts, queue.c.reason)
                    .where(
                        queue.c.connector == connector,
                        queue.c.state == "ready",
                        queue.c.attempts > 0,
                    )
                    .order_by(queue.c.id)
                    .limit(10)
                )
            ]
            h = conn.execute(select(health).where(health.c.connector == connector)).first()
            n_unknown = conn.execute(
                select(func.count()).select_from(unknown).where(unknown.c.connector == connector)
            ).scalar_one()
            n_dead = conn.execute(
                select(func.count())
                .select_from(dead)
                .where(dead.c.connector == connector, dead.c.replayed_at.is_(None))
            ).scalar_one()
            oldest = conn.execute(
                select(func.min(queue.c.created_at)).where(
                    queue.c.connector == connector, queue.c.state.in_(["ready", "running"])
                )
            ).scalar_one()
        return QueueStatus(
            connector,
            counts,
            waiting,
            h.failing if h else None,
            _aware(h.since) if h else None,
            int(n_unknown),
            int(n_dead),
            h.mapping if h else "",
            _aware(oldest),
            retrying,
        )

    def unknown_events(self, connector: str | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = select(unknown).order_by(unknown.c.seen_at, unknown.c.event_id)
            if connector:
                q = q.where(unknown.c.connector == connector)
            return [dict(r._mapping) for r in conn.execute(q)]

    def dead_letters(
        self, connector: str | None = None, *, include_replayed: bool = False
    ) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = select(dead).order_by(dead.c.id)
            if connector:
                q = q.where(dead.c.connector == connector)
            if not include_replayed:
                q = q.where(dead.c.replayed_at.is_(None))
            return [dict(r._mapping) for r in conn.execute(q)]

    def dead_letter(self, dead_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(dead).where(dead.c.id == dead_id)).first()
            return dict(row._mapping) if row else None

    def mark_replayed(self, dead_ids: Sequence[int]) -> None:
        with self._tx() as conn:
            conn.execute(
                update(dead).where(dead.c.id.in_(list(dead_ids))).values(replayed_at=now_utc())
            )

    def rows(self, connector: str, state: str | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = select(queue).where(queue.c.connector == connector).order_by(queue.c.id)
            if state:
                q = q.where(queue.c.state == state)
            return [dict(r._mapping) for r in conn.execute(q)]

    def all_bindings(self, connector: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {
                r.local_id: r.remote_id
                for r in conn.execute(
                    select(bindings.c.local_id, bindings.c.remote_id).where(
                        bindings.c.connector == connector
                    )
                )
            }

    def next_due(self, connector: str) -> datetime | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.min(queue.c.next_at)).where(
                    queue.c.connector == connector, queue.c.state == "ready"
                )
            ).scalar_one()
        return _aware(value)

    def add_imported(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Keep records the relay imported (by id: importing the same again adds nothing)."""
        if not rows:
            return 0
        now = now_utc()
        with self._tx() as conn:
            have = {
                r.id
                for r in conn.execute(
                    select(imported.c.id).where(imported.c.id.in_([r["id"] for r in rows]))
                )
            }
            fresh = [dict(r, imported_at=now) for r in rows if r["id"] not in have]
            if fresh:
                conn.execute(insert(imported), fresh)
        return len(fresh)

    def imported_events(self, store: str | None = None) -> list[Event]:
        with self.engine.connect() as conn:
            q = select(imported).order_by(imported.c.pos)
            if store:
                q = q.where(imported.c.store == store)
            return [
                Event(r.id, r.type, r.store, "", int(r.pos), r.at, r.data, "import")
                for r in conn.execute(q)
            ]


def bulk_insert_ignore(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], conflict: Sequence[str]
) -> None:
    """INSERT … ON CONFLICT DO NOTHING through the driver's own executemany. The ledger and the
    queue write thousands of rows a batch, and SQLAlchemy's per-row parameter handling was most
    of their time; values are converted here as SQLAlchemy's types would (JSON text, SQLite's
    naive UTC datetime text, PostgreSQL's json cast)."""
    if not rows:
        return
    pg = conn.dialect.name == "postgresql"
    cols = list(rows[0])
    kinds = {c: table.c[c].type for c in cols}

    def place(c: str) -> str:
        if not pg:
            return f":{c}"
        return f"%({c})s::json" if isinstance(kinds[c], JSON) else f"%({c})s"

    def value(c: str, v: Any) -> Any:
        t = kinds[c]
        if v is None:
            return None
        if isinstance(t, JSON):
            return json.dumps(v)
        if isinstance(t, DateTime) and not pg:
            return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(t, Boolean) and not pg:
            return int(v)
        return v

    names = ", ".join(f'"{c}"' for c in cols)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join(place(c) for c in cols)}) '
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    )
    conn.exec_driver_sql(sql, [{c: value(c, r[c]) for c in cols} for r in rows])


def _ranges(
    behind: Sequence[str], positions: Mapping[str, int], tops: Mapping[str, int], limit: int
) -> list[tuple[str, int, int]]:
    """(stream, after, upto) to read next, at most `limit` events in all."""
    out = []
    for stream in behind:
        if limit <= 0:
            break
        start = positions.get(stream, 0)
        top = min(tops[stream], start + limit)
        if top > start:
            out.append((stream, start, top))
            limit -= top - start
    return out


def _alive(owner: str, me: str) -> bool:
    """Is the worker `host:pid:token` still running (same host as `me`)?"""
    import os

    parts = owner.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if str(pid) == me.split(":")[1]:
        return False  # our own pid with another token: an earlier life of this process id
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _coalesced_state() -> Any:
    """Keep a running row running (finish() sees the generation move); all else: ready."""
    from sqlalchemy import case

    return case((queue.c.state == "running", "running"), else_="ready")


def plan_safely(plan: Callable[[Event], Planned], ev: Event) -> Planned:
    """plan() with MissingMapping turned into a waiting outcome."""
    try:
        return plan(ev)
    except MissingMapping as err:
        return Planned("waiting", reason=str(err))


def _release(conn: Connection, claimed: Claimed, now: datetime, **values: Any) -> None:
    """End a worker's lease on a claimed command, setting `values` (its next state)."""
    conn.execute(
        update(queue)
        .where(queue.c.id == claimed.id)
        .values(lease_until=None, updated_at=now, **values)
    )
