# purpose: the reprint queue: unprinted receipts in their own SQLite file, across restarts.
"""Receipts owed to customers, oldest first, in ``<state_dir>/printq.sqlite``.

Not the journal (append-only, and a receipt is not a sale) and not ``cache.sqlite`` (the
down-sync's writer owns it). One writer: the device thread. Readers (the API) see a copy
of the rows kept in memory, updated after every commit. The file also keeps the journal
sequence number up to which completed sales have been handled, so a receipt due when the
daemon stopped is queued when it starts again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("tillbox.devices")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reprints (
    receipt_no TEXT PRIMARY KEY,
    sale_id TEXT NOT NULL,
    refund_id TEXT,
    kind TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    model TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """One receipt waiting to be printed."""

    receipt_no: str
    sale_id: str
    refund_id: str | None
    kind: str
    queued_at: str
    attempts: int
    reason: str
    message: str
    model: dict[str, Any]

    def view(self) -> dict[str, Any]:
        """What the cashier's screen shows (the receipt model stays in the file)."""
        return {
            "receipt_no": self.receipt_no,
            "sale_id": self.sale_id,
            "refund_id": self.refund_id,
            "kind": self.kind,
            "queued_at": self.queued_at,
            "attempts": self.attempts,
            "reason": self.reason,
            "message": self.message,
        }


class ReprintQueue:
    """Durable queue of receipts to print; write only from one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        try:
            self._conn = self._open(str(path))
        except (OSError, sqlite3.Error) as err:
            # Read-only or full storage: the till still sells; receipts owed are kept in
            # memory until the daemon stops, and /healthz says so.
            log.error("reprint queue %s cannot be written (%s); kept in memory only", path, err)
            self.error = str(err)
            self._conn = self._open(":memory:")
        self._lock = threading.Lock()
        self._rows: list[Queued] = []
        self._load()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        return conn

    def _load(self) -> None:
        cur = self._conn.execute(
            "SELECT receipt_no, sale_id, refund_id, kind, queued_at, attempts, reason, message,"
            " model FROM reprints ORDER BY queued_at, rowid"
        )
        rows = [
            Queued(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7], json.loads(r[8]))
            for r in cur
        ]
        with self._lock:
            self._rows = rows

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(sql, args)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._load()

    def put(
        self,
        model: dict[str, Any],
        *,
        sale_id: str,
        refund_id: str | None,
        at: str,
        reason: str,
        message: str,
    ) -> Queued:
        """Queue a receipt, or note one more failed attempt of one already queued."""
        self._write(
            "INSERT INTO reprints (receipt_no, sale_id, refund_id, kind, queued_at, attempts,"
            " reason, message, model) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)"
            " ON CONFLICT(receipt_no) DO UPDATE SET attempts = attempts + 1,"
            " reason = excluded.reason, message = excluded.message",
            (
                model["receipt_no"],
                sale_id,
                refund_id,
                model["kind"],
                at,
                reason,
                message,
                json.dumps(model, ensure_ascii=False),
            ),
        )
        return next(q for q in self.items() if q.receipt_no == model["receipt_no"])

    def remove(self, receipt_no: str) -> bool:
        """Take a printed receipt off the queue; whether it was there."""
        if not any(q.receipt_no == receipt_no for q in self.items()):
            return False
        self._write("DELETE FROM reprints WHERE receipt_no = ?", (receipt_no,))
        return True

    def items(self) -> list[Queued]:
        """The queue, oldest first (safe from any thread)."""
        with self._lock:
            return list(self._rows)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def mark(self, name: str) -> int | None:
        row = self._conn.execute("SELECT value FROM marks WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def set_mark(self, name: str, value: int) -> None:
        self._write(
            "INSERT INTO marks (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def close(self) -> None:
        self._conn.close()
