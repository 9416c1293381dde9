# The durable journal: append-only events with a SHA-256 hash chain and their outbox rows.
from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from tillbox.contract import GENESIS_HASH, SCHEMA, canonical, envelope_bytes, event_hash

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    store TEXT NOT NULL,
    terminal TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    sale_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.sale_id')) VIRTUAL,
    receipt_no TEXT GENERATED ALWAYS AS (json_extract(data, '$.receipt_no')) VIRTUAL,
    shift_id TEXT GENERATED ALWAYS AS (json_extract(data, '$.shift_id')) VIRTUAL
);
CREATE INDEX IF NOT EXISTS events_sale ON events(sale_id, seq) WHERE sale_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_receipt ON events(receipt_no) WHERE receipt_no IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_type ON events(type, seq);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY REFERENCES events(seq),
    queued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS opened (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
"""

log = logging.getLogger("tillbox.journal")
CHECKPOINT_EVERY = 200  # events between WAL checkpoints (SQLite's own default is ~1000 pages)
COLUMNS = "seq, id, type, store, terminal, at, data, prev_hash, hash"


class JournalError(Exception):
    """The journal could not be written; nothing of the unit of work was kept."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: str
    type: str
    data: dict[str, Any]


def connect(
    path: Path | str, *, readonly: bool = False, immutable: bool = False
) -> sqlite3.Connection:
    """A connection with the journal's durability pragmas (WAL, synchronous=FULL).

    `immutable` reads a journal on read-only storage, where SQLite cannot create its
    shared-memory file; only safe while nobody writes, which read-only storage ensures.
    """
    if readonly:
        # With a WAL file left by a crash SQLite reads it read-only; immutable would skip it.
        immutable = immutable and not Path(f"{path}-wal").exists()
        mode = "ro&immutable=1" if immutable else "ro"
        conn = sqlite3.connect(
            f"file:{path}?mode={mode}", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    if readonly:
        # Readers look up a sale or a receipt by index; a small page cache each keeps the
        # daemon's memory within the box's budget (the writer keeps SQLite's default).
        conn.execute("PRAGMA cache_size=-512")
    return conn


def envelope(row: Sequence[Any]) -> dict[str, Any]:
    """Rebuild the wire envelope (DESIGN.md section 5) from an `events` row."""
    seq, id_, type_, store, terminal, at, data, prev_hash, hash_ = row
    return {
        "schema": SCHEMA,
        "id": id_,
        "type": type_,
        "store": store,
        "terminal": terminal,
        "seq": seq,
        "at": at,
        "prev_hash": prev_hash,
        "hash": hash_,
        "data": json.loads(data),
    }


def wire(row: Sequence[Any]) -> bytes:
    """The envelope as the uplink sends it: canonical JSON, written around the stored data
    (the journal keeps `data` canonical), so nothing is decoded and encoded again."""
    seq, id_, type_, store, terminal, at, data, prev_hash, hash_ = row
    return envelope_bytes(
        at=at,
        data=data.encode(),
        hash=hash_,
        id=id_,
        prev_hash=prev_hash,
        schema=SCHEMA,
        seq=seq,
        store=store,
        terminal=terminal,
        type=type_,
    )


class Journal:
    """Owns the write side of one terminal's journal. Use it from one thread only."""

    def __init__(self, path: Path, store: str, terminal: str) -> None:
        self.path = path
        self.store = store
        self.terminal = terminal
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(path)
            self.db = sqlite_utils.Database(self.conn)
            self.db.executescript(_SCHEMA_SQL)
            # Checkpoints are ours to schedule (after a reply, not inside a sale's commit).
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            row = self.conn.execute(
                "SELECT seq, hash, store, terminal FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            # SQLite opens read-only storage without complaint; find out now, not mid-sale.
            self.conn.execute(
                "INSERT OR REPLACE INTO opened (id, at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%fZ'))"
            )
        except (sqlite3.Error, OSError) as err:
            raise JournalError(_explain(err)) from err
        if row and (row[2], row[3]) != (store, terminal):
            raise JournalError(
                f"{path} belongs to store {row[2]!r} terminal {row[3]!r}, not {store!r} "
                f"{terminal!r}. Point state_dir at this terminal's own journal."
            )
        self.seq: int = row[0] if row else 0
        self._since_checkpoint = 0
        self.hash: str = row[1] if row else GENESIS_HASH

    def append(self, events: Sequence[NewEvent], at: str) -> list[dict[str, Any]]:
        """Write events, their chain links and outbox rows in one durable transaction."""
        seq, prev = self.seq, self.hash
        rows: list[tuple[Any, ...]] = []
        envelopes: list[dict[str, Any]] = []
        for ev in events:
            seq += 1
            env = {
                "schema": SCHEMA,
                "id": ev.id,
                "type": ev.type,
                "store": self.store,
                "terminal": self.terminal,
                "seq": seq,
                "at": at,
                "prev_hash": prev,
                "data": ev.data,
            }
            env["hash"] = prev = event_hash(env)
            rows.append(
                (
                    seq,
                    ev.id,
                    ev.type,
                    self.store,
                    self.terminal,
                    at,
                    canonical(ev.data).decode(),
                    env["prev_hash"],
                    env["hash"],
                )
            )
            envelopes.append(env)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany(
                    f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                self.conn.executemany(
                    "INSERT INTO outbox (seq, queued_at) VALUES (?, ?)", [(r[0], at) for r in rows]
                )
                self.conn.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (a failed COMMIT on a full disk does).
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise JournalError(_explain(err)) from err
        self.seq, self.hash = seq, prev
        self._since_checkpoint += len(rows)
        return envelopes

    def forget_outbox(self, upto: int) -> int:
        """Drop outbox rows up to `upto` (the relay stored them durably) in one transaction."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                count = self.conn.execute("DELETE FROM outbox WHERE seq <= ?", (upto,)).rowcount
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise JournalError(_explain(err)) from err
        return int(count)

    def checkpoint_due(self) -> bool:
        """True once enough was written; resets, so the caller starts one checkpoint."""
        if self._since_checkpoint < CHECKPOINT_EVERY:
            return False
        self._since_checkpoint = 0
        return True

    def close(self) -> None:
        """Fold the WAL into the main file, so read-only storage later reads it whole."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as err:
            log.warning("journal checkpoint on close failed: %s", err)
        self.conn.close()


class Checkpointer:
    """Folds the WAL into the database on its own connection and thread.

    A PASSIVE checkpoint never blocks the writer, so no sale waits for it; SQLite's automatic
    checkpoint would run inside whichever commit crossed the threshold.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-checkpoint")
        self._conn: sqlite3.Connection | None = None
        self._busy = False

    def request(self) -> None:
        if not self._busy:
            self._busy = True
            self._pool.submit(self._run)

    def _run(self) -> None:
        try:
            if self._conn is None:
                self._conn = connect(self._path)
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as err:
            log.warning("journal checkpoint failed: %s", err)
        finally:
            self._busy = False

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()


class Reader:
    """Read side of the journal; safe to use while the writer appends (WAL)."""

    def __init__(self, path: Path, immutable: bool = False) -> None:
        self.conn = connect(path, readonly=True, immutable=immutable)
        self.db = sqlite_utils.Database(self.conn)

    def events_from(self, seq: int) -> Iterator[dict[str, Any]]:
        cur = self.conn.execute(f"SELECT {COLUMNS} FROM events WHERE seq >= ? ORDER BY seq", (seq,))
        for row in cur:
            yield envelope(row)

    def last_seq(self) -> int:
        row = self.conn.execute("SELECT max(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def event(self, seq: int) -> dict[str, Any]:
        row = self.conn.execute(f"SELECT {COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise KeyError(seq)
        return envelope(row)

    def sale_events(self, sale_id: str, types: Sequence[str]) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(types))
        cur = self.conn.execute(
            f"SELECT {COLUMNS} FROM events WHERE sale_id = ? AND type IN ({marks}) ORDER BY seq",
            (sale_id, *types),
        )
        return [envelope(r) for r in cur]

    def by_receipt(self, receipt_no: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {COLUMNS} FROM events WHERE receipt_no = ?", (receipt_no,)
        ).fetchone()
        return envelope(row) if row else None

    def last_of(self, types: Sequence[str]) -> dict[str, Any] | None:
        """The newest event of the given types (found through the type index)."""
        best: tuple[Any, ...] | None = None
        for t in types:
            row = self.conn.execute(
                f"SELECT {COLUMNS} FROM events WHERE type = ? ORDER BY seq DESC LIMIT 1", (t,)
            ).fetchone()
            if row and (best is None or row[0] > best[0]):
                best = row
        return envelope(best) if best else None

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        """Every event of one type, oldest first (through the type index)."""
        cur = self.conn.execute(
            f"SELECT {COLUMNS} FROM events WHERE type = ? ORDER BY seq", (type_,)
        )
        return [envelope(r) for r in cur]

    def shift_closed(self, shift_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT {COLUMNS} FROM events WHERE type = 'shift.closed' AND shift_id = ?",
            (shift_id,),
        ).fetchone()
        return envelope(row) if row else None

    def outbox_stats(self) -> tuple[int, str | None]:
        """Rows waiting to be sent and the time the oldest was queued.

        Rows go in with consecutive seqs and leave by prefix (acks cover `upto`), so the
        outbox is always one run of seqs: two index lookups, never a scan of a long backlog.
        """
        low, high = self.conn.execute("SELECT min(seq), max(seq) FROM outbox").fetchone()
        if low is None:
            return 0, None
        row = self.conn.execute("SELECT queued_at FROM outbox WHERE seq = ?", (low,)).fetchone()
        return int(high - low + 1), row[0] if row else None

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    events: int
    problem: str | None = None
    seq: int | None = None
    event_id: str | None = None


def verify(path: Path) -> Verdict:
    """Walk the whole chain; name the first event that was edited, removed, moved or added."""
    try:
        conn = connect(path, readonly=True)
    except sqlite3.DatabaseError as err:
        return Verdict(False, 0, f"the journal cannot be read: {err}")
    try:
        expected_seq, prev = 1, GENESIS_HASH
        first: tuple[str, str] | None = None
        count = 0
        for row in conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq"):
            count += 1
            seq, id_ = row[0], row[1]
            try:
                env = envelope(row)
            except (ValueError, TypeError):
                return Verdict(False, count, "its data is not valid JSON", seq, id_)
            if first is None:
                first = (env["store"], env["terminal"])
            if seq != expected_seq:
                what = "missing" if seq > expected_seq else "out of order"
                return Verdict(
                    False,
                    count,
                    f"seq {expected_seq} is {what} (found {seq} "
                    "next): an event was deleted or inserted",
                    seq,
                    id_,
                )
            if (env["store"], env["terminal"]) != first:
                return Verdict(False, count, "belongs to another store/terminal", seq, id_)
            if env["prev_hash"] != prev:
                return Verdict(
                    False,
                    count,
                    "prev_hash does not link to the event before it: "
                    "an event was deleted, inserted or reordered",
                    seq,
                    id_,
                )
            if event_hash(env) != env["hash"]:
                return Verdict(
                    False, count, "hash does not match its content: the event was edited", seq, id_
                )
            prev = env["hash"]
            expected_seq += 1
        return Verdict(True, count)
    except sqlite3.DatabaseError as err:
        return Verdict(False, 0, f"the journal cannot be read: {err}")
    finally:
        conn.close()


def _explain(err: sqlite3.Error | OSError) -> str:
    text = str(err)
    if "full" in text or "disk I/O" in text:
        return (
            "The journal's disk is full or failing, so the sale could not be recorded. "
            "Free space on the box or call support; nothing was lost."
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return (
            "The journal is read-only, so the sale could not be recorded. Check the "
            "storage (it may have been remounted read-only after an error)."
        )
    return f"The journal could not be written ({text}). Nothing of this step was recorded."
