# Down-sync: catalog, stock and customer snapshots and deltas from the relay into cache.sqlite.
from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from tillbox.contract import TOPIC_PREFIX

from .config import TerminalConfig
from .sale import Catalog, SaleError
from .service import utcnow

if TYPE_CHECKING:
    from .service import TillService

log = logging.getLogger("tillbox.downsync")

Family = Literal["catalog", "stock", "customers"]
Kind = Literal["snapshot", "delta"]
FAMILIES: Final[tuple[Family, ...]] = ("catalog", "stock", "customers")
KINDS: Final[tuple[Kind, ...]] = ("snapshot", "delta")
SCHEMAS: Final[dict[tuple[Family, Kind], str]] = {
    ("catalog", "snapshot"): "tillbox.catalog/1",
    ("catalog", "delta"): "tillbox.catalog-delta/1",
    ("stock", "snapshot"): "tillbox.stock/1",
    ("stock", "delta"): "tillbox.stock-delta/1",
    ("customers", "snapshot"): "tillbox.customers/1",
    ("customers", "delta"): "tillbox.customers-delta/1",
}
# A terminal asks for a family's snapshot again at most this often.
RESYNC_INTERVAL_S: Final = 5.0

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS versions (
    family TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS catalog_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    currency TEXT NOT NULL,
    categories TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS catalog_items (sku TEXT PRIMARY KEY, item TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, level TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    doc TEXT NOT NULL
);
"""


class SyncError(ValueError):
    """A down-sync document that cannot be applied; nothing of it was kept."""


def parse_topic(store: str, topic: str) -> tuple[Family, Kind] | None:
    """(family, kind) of one of the store's down-sync topics, else None."""
    prefix = f"{TOPIC_PREFIX}/{store}/"
    if not topic.startswith(prefix):
        return None
    family, _, kind = topic[len(prefix) :].partition("/")
    for f in FAMILIES:
        for k in KINDS:
            if (family, kind) == (f, k):
                return f, k
    return None


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """The cache is rebuilt from the relay's snapshots, so NORMAL sync is durable enough."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA_SQL)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


# -- validation (pure) -----------------------------------------------------------------


def _version(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SyncError(f"{key} must be a whole number, 0 or more")
    return value


def _list(doc: Mapping[str, Any], key: str, default: list[Any] | None = None) -> list[Any]:
    value = doc.get(key, default)
    if not isinstance(value, list):
        raise SyncError(f"{key} must be a list")
    return value


def _strings(doc: Mapping[str, Any], key: str) -> list[str]:
    values = _list(doc, key, [])
    if not all(isinstance(v, str) for v in values):
        raise SyncError(f"{key} must be a list of strings")
    return values


def check_catalog(
    config: TerminalConfig, currency: Any, categories: Any, items: Iterable[Any]
) -> Catalog:
    """The catalog as the till would sell from it, or SyncError saying why not."""
    if currency != config.currency:
        raise SyncError(f"currency {currency!r} is not this store's {config.currency}")
    try:
        return Catalog.from_dict(
            {"categories": categories, "items": list(items)}, tax_classes=config.tax.classes.keys()
        )
    except SaleError as err:
        raise SyncError(err.message) from err
    except (AttributeError, ValueError) as err:
        raise SyncError(f"catalog entry is malformed: {err}") from err


def check_level(sku: Any, level: Any) -> tuple[str, str]:
    if not isinstance(sku, str) or not sku:
        raise SyncError("a stock SKU must be a non-empty string")
    if not isinstance(level, str):
        raise SyncError(f"stock level of {sku} must be a decimal number as a string")
    try:
        ok = Decimal(level).is_finite()
    except InvalidOperation:
        ok = False
    if not ok:
        raise SyncError(f"stock level of {sku} is not a number: {level!r}")
    return sku, level


def check_customer(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SyncError("a customer must be an object")
    cid = raw.get("id")
    if not isinstance(cid, str) or not cid:
        raise SyncError("a customer's id must be a non-empty string")
    checks = {
        "name": isinstance(raw.get("name"), str),
        "email": raw.get("email") is None or isinstance(raw.get("email"), str),
        "phone": raw.get("phone") is None or isinstance(raw.get("phone"), str),
        "marketing_consent": isinstance(raw.get("marketing_consent"), bool),
        "loyalty_points": isinstance(raw.get("loyalty_points"), int)
        and not isinstance(raw.get("loyalty_points"), bool),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise SyncError(f"customer {cid}: bad or missing {', '.join(bad)}")
    return raw


# -- the cache database ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FamilyState:
    version: int | None
    applied_at: str | None
    error: str | None

    def view(self) -> dict[str, Any]:
        return {"version": self.version, "applied_at": self.applied_at, "error": self.error}


class Cache:
    """Write side of cache.sqlite. Only the down-sync thread uses it (one writer)."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)

    def close(self) -> None:
        self.conn.close()

    def versions(self) -> dict[str, tuple[int, str]]:
        rows = self.conn.execute("SELECT family, version, applied_at FROM versions")
        return {f: (v, at) for f, v, at in rows}

    def catalog_parts(self) -> tuple[str, list[Any], list[dict[str, Any]]] | None:
        return _catalog_parts(self.conn)

    def apply(self, family: Family, kind: Kind, doc: Mapping[str, Any], check: _Check) -> Any:
        """Write one document in one transaction; `check` may refuse the result (rolled back)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = _WRITERS[family](conn, kind, doc, check)
            conn.execute(
                "INSERT INTO versions (family, version, applied_at) VALUES (?, ?, ?) "
                "ON CONFLICT(family) DO UPDATE SET version = excluded.version, "
                "applied_at = excluded.applied_at",
                (family, doc["version"], utcnow()),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result


_Check = Callable[[Any, Any, list[Any]], Catalog]


def _catalog_parts(conn: sqlite3.Connection) -> tuple[str, list[Any], list[dict[str, Any]]] | None:
    meta = conn.execute("SELECT currency, categories FROM catalog_meta WHERE id = 1").fetchone()
    if meta is None:
        return None
    items = [
        json.loads(r[0]) for r in conn.execute("SELECT item FROM catalog_items ORDER BY rowid")
    ]
    return meta[0], json.loads(meta[1]), items


def _write_catalog(
    conn: sqlite3.Connection, kind: Kind, doc: Mapping[str, Any], check: _Check
) -> Catalog:
    upsert_sql = (
        "INSERT INTO catalog_items (sku, item) VALUES (?, ?) "
        "ON CONFLICT(sku) DO UPDATE SET item = excluded.item"
    )
    if kind == "snapshot":
        items = _list(doc, "items")
        catalog = check(doc.get("currency"), _list(doc, "categories", []), items)
        conn.execute("DELETE FROM catalog_items")
        conn.executemany(upsert_sql, [(i["sku"], json.dumps(i)) for i in items])
        currency, categories = doc["currency"], doc.get("categories", [])
    else:
        # The relay's first delta (base_version 0) carries currency and categories itself.
        current = _catalog_parts(conn) or (doc.get("currency"), [], [])
        upserts = _list(doc, "upsert", [])
        if not all(isinstance(i, dict) and isinstance(i.get("sku"), str) for i in upserts):
            raise SyncError("upsert must be a list of items, each with a sku")
        conn.executemany(upsert_sql, [(i["sku"], json.dumps(i)) for i in upserts])
        conn.executemany(
            "DELETE FROM catalog_items WHERE sku = ?", [(s,) for s in _strings(doc, "delete")]
        )
        currency = doc.get("currency", current[0])
        categories = _list(doc, "categories", current[1])
        parts = _catalog_parts(conn)
        assert parts is not None
        catalog = check(currency, categories, parts[2])
    conn.execute(
        "INSERT OR REPLACE INTO catalog_meta (id, currency, categories) VALUES (1, ?, ?)",
        (currency, json.dumps(categories)),
    )
    return catalog


def _write_stock(conn: sqlite3.Connection, kind: Kind, doc: Mapping[str, Any], _: _Check) -> None:
    levels = doc.get("levels")
    if not isinstance(levels, dict):
        raise SyncError('levels must be an object of {"sku": "level"}')
    rows = [check_level(sku, level) for sku, level in levels.items()]
    if kind == "snapshot":
        conn.execute("DELETE FROM stock")
    conn.executemany("INSERT OR REPLACE INTO stock (sku, level) VALUES (?, ?)", rows)


def _write_customers(
    conn: sqlite3.Connection, kind: Kind, doc: Mapping[str, Any], _: _Check
) -> None:
    if kind == "snapshot":
        customers = [check_customer(c) for c in _list(doc, "customers")]
        conn.execute("DELETE FROM customers")
    else:
        customers = [check_customer(c) for c in _list(doc, "upsert", [])]
        conn.executemany(
            "DELETE FROM customers WHERE id = ?", [(i,) for i in _strings(doc, "delete")]
        )
    conn.executemany(
        "INSERT OR REPLACE INTO customers (id, name, email, phone, doc) VALUES (?, ?, ?, ?, ?)",
        [(c["id"], c["name"], c.get("email"), c.get("phone"), json.dumps(c)) for c in customers],
    )


_WRITERS: Final[
    dict[Family, Callable[[sqlite3.Connection, Kind, Mapping[str, Any], _Check], Any]]
] = {
    "catalog": _write_catalog,
    "stock": _write_stock,
    "customers": _write_customers,
}


def cached_catalog(config: TerminalConfig) -> Catalog | None:
    """The last catalog the relay sent, if there is one the current tax setup can sell from."""
    path = config.cache_path
    if not path.exists():
        return None
    try:
        conn = connect(path, readonly=True)
        try:
            parts = _catalog_parts(conn)
        finally:
            conn.close()
    except sqlite3.Error as err:
        log.warning("cache %s cannot be read (%s); using the configured catalog", path, err)
        return None
    if parts is None:
        return None
    try:
        return check_catalog(config, *parts)
    except SyncError as err:
        log.warning("cached catalog in %s is not usable (%s); using the configured one", path, err)
        return None


class CacheReader:
    """Read side of cache.sqlite for the API: stock levels and customer search."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.exists():
            conn = connect(self.path, readonly=True)
            conn.create_function("casefold", 1, _casefold, deterministic=True)
            conn.create_function("digits", 1, _digits, deterministic=True)
            self._conn = conn
        return self._conn

    def version(self, family: Family) -> int | None:
        with self._lock:
            conn = self._connection()
            row = _maybe(conn, "SELECT version FROM versions WHERE family = ?", (family,))
        return None if row is None else int(row[0])

    def stock(self, sku: str) -> tuple[str | None, int | None]:
        """The level of one SKU (None when the relay sent none) and the stock version."""
        with self._lock:
            conn = self._connection()
            row = _maybe(conn, "SELECT level FROM stock WHERE sku = ?", (sku,))
            ver = _maybe(conn, "SELECT version FROM versions WHERE family = 'stock'", ())
        return (None if row is None else str(row[0])), (None if ver is None else int(ver[0]))

    def customers(self, text: str, limit: int) -> list[dict[str, Any]]:
        """Customers whose name, email, phone (digits) or id match `text`, by name."""
        needle = text.casefold().strip()
        digits = _digits(needle)
        with self._lock:
            conn = self._connection()
            if conn is None:
                return []
            try:
                rows = conn.execute(
                    "SELECT doc FROM customers WHERE id = ? OR instr(casefold(name), ?) > 0 "
                    "OR instr(casefold(coalesce(email, '')), ?) > 0 "
                    "OR (? != '' AND instr(digits(coalesce(phone, '')), ?) > 0) "
                    "ORDER BY casefold(name), id LIMIT ?",
                    (text, needle, needle, digits, digits, limit),
                ).fetchall()
            except sqlite3.OperationalError:
                return []  # the cache exists but the down-sync has not made its tables yet
        return [json.loads(r[0]) for r in rows]

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """One customer by id, or None."""
        with self._lock:
            conn = self._connection()
            row = _maybe(conn, "SELECT doc FROM customers WHERE id = ?", (customer_id,))
        return None if row is None else dict(json.loads(row[0]))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _maybe(conn: sqlite3.Connection | None, sql: str, args: tuple[Any, ...]) -> Any:
    if conn is None:
        return None
    try:
        return conn.execute(sql, args).fetchone()
    except sqlite3.OperationalError:
        return None


def _casefold(value: str | None) -> str:
    return (value or "").casefold()


def _digits(value: str | None) -> str:
    return "".join(c for c in value or "" if c.isdigit())


# -- the down-sync thread --------------------------------------------------------------


class DownSync:
    """Applies what the relay publishes, in arrival order, on its own thread."""

    def __init__(
        self,
        config: TerminalConfig,
        service: TillService,
        resync: Callable[[Family], None],
    ) -> None:
        self.config = config
        self.service = service
        self._resync = resync
        self._queue: queue.Queue[tuple[Family, Kind, bytes] | None] = queue.Queue()
        self._states: dict[Family, FamilyState] = {
            f: FamilyState(None, None, None) for f in FAMILIES
        }
        self._logged: dict[Family, str | None] = dict.fromkeys(FAMILIES)
        self._asked: dict[Family, float] = {}

    def submit(self, family: Family, kind: Kind, payload: bytes) -> None:
        """Called from the MQTT thread: hand the message over, never block it."""
        self._queue.put((family, kind, payload))

    def stop(self) -> None:
        self._queue.put(None)

    def states(self) -> dict[str, dict[str, Any]]:
        return {f: s.view() for f, s in self._states.items()}

    def run(self, stopped: threading.Event) -> None:
        """The thread body: open the cache, then apply messages until `stop()`."""
        cache = Cache(self.config.cache_path)
        try:
            known = cache.versions()
            for family in FAMILIES:
                if family in known:
                    self._states[family] = FamilyState(*known[family], None)
            while not stopped.is_set():
                try:
                    message = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if message is None:
                    return
                self.handle(cache, *message)
        finally:
            cache.close()

    def handle(self, cache: Cache, family: Family, kind: Kind, payload: bytes) -> None:
        """Check one document against the local version, then apply, skip or ask for a resync."""
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict):
                raise SyncError("not a JSON object")
            if doc.get("schema") != SCHEMAS[family, kind]:
                raise SyncError(f"schema is not {SCHEMAS[family, kind]}")
            version = _version(doc, "version")
            local = self._states[family].version or 0
            if version <= local:
                return  # already here (a retained snapshot seen again, a delta we have)
            if kind == "delta" and _version(doc, "base_version") != local:
                log.info(
                    "%s delta %d builds on version %d but this till has %d: asking for a snapshot",
                    family,
                    version,
                    doc["base_version"],
                    local,
                )
                self._ask(family)
                return
            result = cache.apply(family, kind, doc, self._check)
        except (SyncError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
            self._refuse(family, kind, payload, str(err))
            return
        except sqlite3.Error as err:
            # The document was fine but the cache could not take it: ask for it again later.
            self._refuse(family, kind, payload, f"the cache cannot be written: {err}")
            self._ask(family)
            return
        if isinstance(result, Catalog):
            self.service.catalog = result  # open sales keep their line snapshots
        self._states[family] = FamilyState(version, utcnow(), None)
        if self._logged[family] is not None:
            self._logged[family] = None
        log.info("%s %s version %d applied", family, kind, version)

    def _check(self, currency: Any, categories: Any, items: list[Any]) -> Catalog:
        return check_catalog(self.config, currency, categories, items)

    def _refuse(self, family: Family, kind: Kind, payload: bytes, why: str) -> None:
        state = self._states[family]
        self._states[family] = FamilyState(state.version, state.applied_at, why)
        if self._logged[family] != why:
            self._logged[family] = why
            log.warning(
                "refused a %s %s (%d bytes); keeping version %s: %s",
                family,
                kind,
                len(payload),
                state.version,
                why,
            )

    def _ask(self, family: Family) -> None:
        now = time.monotonic()
        if now - self._asked.get(family, -RESYNC_INTERVAL_S) >= RESYNC_INTERVAL_S:
            self._asked[family] = now
            self._resync(family)
