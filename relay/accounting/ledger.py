# The internal double-entry ledger: pure entries from events, kept in the central store.
from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    func,
    select,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from relay.connectors.base import Event
from relay.connectors.mapping import canonical_rate
from relay.connectors.runtime import GiveWay, no_wait
from relay.connectors.state import ConnectorState, Planned, bulk_insert_ignore, cursors

log = logging.getLogger("tillbox.relay.ledger")

LEDGER: Final = "ledger"  # its cursor name in connector_cursors
metadata = MetaData()

txns = Table(
    "ledger_txns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(120), nullable=False, unique=True),
    Column("store", String(64), nullable=False),
    Column("terminal", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    Column("at", String(40), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("narration", Text, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("ref", String(120), nullable=False, default=""),
)
Index("ledger_txns_day", txns.c.store, txns.c.day)
postings = Table(
    "ledger_postings",
    metadata,
    Column("txn_id", Integer, nullable=False),
    Column("line", Integer, nullable=False),
    Column("store", String(64), nullable=False),
    Column("day", String(10), nullable=False),
    Column("account", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),
    UniqueConstraint("txn_id", "line", name="ledger_postings_line"),
)
Index("ledger_postings_day", postings.c.store, postings.c.day)
Index("ledger_postings_account", postings.c.account, postings.c.day)
accounts = Table(
    "ledger_accounts",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("first_day", String(10), nullable=False),
)

HANDLED: Final = frozenset(
    {
        "sale.completed",
        "sale.refunded",
        "shift.opened",
        "shift.cash_moved",
        "shift.closed",
        "payment.batch_settled",
        "settlement.paid_out",
    }
)
# Known, and nothing to post: the money of a voided sale never stayed; a no-sale moves none.
IGNORED: Final = frozenset(
    {
        "sale.opened",
        "sale.line_added",
        "sale.line_changed",
        "sale.line_removed",
        "sale.discount_set",
        "sale.customer_set",
        "sale.payment_added",
        "sale.voided",
        "drawer.opened",
        "customer.captured",
    }
)
# Every event type the relay understands; a connector ignores what it does not post.
KNOWN: Final = HANDLED | IGNORED
# The kinds of transaction after which an account is settled (asserted zero in Beancount).
SETTLING: Final = frozenset({"shift_close", "batch", "payout"})


class LedgerError(Exception):
    """An event the ledger cannot turn into a balanced transaction."""


@functools.lru_cache(maxsize=4096)
def component(value: str) -> str:
    """A Beancount account component from a store, terminal or method id: `s1` -> `S1`."""
    text = re.sub(r"[^A-Za-z0-9-]", "-", value)
    return (text[:1].upper() + text[1:]) or "X"


@functools.lru_cache(maxsize=1024)
def rate_component(rate: str) -> str:
    """`19` -> `R19`, `7.5` -> `R7-5`."""
    canon = canonical_rate(rate) or rate
    return "R" + canon.replace(".", "-")


class Chart:
    """The ledger's account names (valid Beancount accounts)."""

    @staticmethod
    def drawer(store: str, terminal: str) -> str:
        return f"Assets:Cash:Drawer:{component(store)}:{component(terminal)}"

    @staticmethod
    def safe(store: str) -> str:
        return f"Assets:Cash:Safe:{component(store)}"

    @staticmethod
    def clearing(store: str, terminal: str, method: str) -> str:
        """Where a tender waits until it is settled: card payments until the batch closes."""
        if method == "cash":
            return Chart.drawer(store, terminal)
        return f"Assets:Clearing:{component(method)}:{component(store)}:{component(terminal)}"

    @staticmethod
    def acquirer(store: str) -> str:
        """Closed card batches the acquirer has not paid out yet."""
        return f"Assets:Clearing:Acquirer:{component(store)}"

    @staticmethod
    def bank() -> str:
        return "Assets:Bank"

    @staticmethod
    def sales(store: str, rate: str) -> str:
        return f"Income:Sales:{component(store)}:{rate_component(rate)}"

    @staticmethod
    def returns(store: str, rate: str) -> str:
        return f"Income:Returns:{component(store)}:{rate_component(rate)}"

    @staticmethod
    def tax(store: str, rate: str) -> str:
        return f"Liabilities:Tax:{component(store)}:{rate_component(rate)}"

    @staticmethod
    def discounts(store: str, rate: str) -> str:
        return f"Expenses:Discounts:{component(store)}:{rate_component(rate)}"

    @staticmethod
    def rounding(store: str) -> str:
        return f"Income:Rounding:{component(store)}"

    @staticmethod
    def over_short(store: str) -> str:
        return f"Expenses:Cash:OverShort:{component(store)}"

    @staticmethod
    def fees(store: str) -> str:
        return f"Expenses:Fees:Card:{component(store)}"

    @staticmethod
    def card_differences(store: str) -> str:
        return f"Expenses:Card:Differences:{component(store)}"

    @staticmethod
    def suspense(store: str) -> str:
        return f"Equity:Suspense:{component(store)}"


@dataclass(frozen=True, slots=True)
class Txn:
    """One balanced ledger transaction, amounts in minor units."""

    key: str
    store: str
    terminal: str
    day: str
    at: str
    kind: str
    narration: str
    event_id: str
    currency: str
    postings: tuple[tuple[str, int], ...]
    ref: str = ""
    settles: tuple[str, ...] = ()

    def balanced(self) -> bool:
        return sum(a for _, a in self.postings) == 0


@dataclass(frozen=True, slots=True)
class Brand:
    count: int
    total: int


@dataclass(frozen=True, slots=True)
class BatchSide:
    """One side of a card batch: the terminal's totals, or the till journal's."""

    brands: Mapping[str, Brand]
    total: int
    count: int
    receipts: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class BatchView:
    """What the ledger and reconciliation read from `payment.batch_settled` (docs/accounting.md)."""

    card_terminal: str
    batch: str
    currency: str | None
    terminal: BatchSide
    journal: BatchSide | None
    differences: list[Any] = field(default_factory=list)


def _side(raw: Any) -> BatchSide | None:
    """One side of a batch: `brands` as a list of {name|brand, count, total} or a map by brand;
    the receipt range as `receipt_from`/`receipt_to` or `receipts` {first, last}."""
    if not isinstance(raw, Mapping):
        return None
    brands_raw = raw.get("brands", {})
    brands: dict[str, Brand] = {}
    if isinstance(brands_raw, Mapping):
        for name, b in brands_raw.items():
            brands[str(name)] = Brand(int(b.get("count", 0)), int(b.get("total", 0)))
    elif isinstance(brands_raw, list):
        for b in brands_raw:
            name = str(b.get("name", b.get("brand", "?")))
            brands[name] = Brand(int(b.get("count", 0)), int(b.get("total", 0)))
    total = int(raw.get("total", sum(b.total for b in brands.values())))
    count = int(raw.get("count", sum(b.count for b in brands.values())))
    rec = raw.get("receipts")
    first, last = raw.get("receipt_from"), raw.get("receipt_to")
    if isinstance(rec, Mapping):
        first, last = rec.get("first"), rec.get("last")
    receipts = None
    if str(first or "").isdigit() and str(last or "").isdigit():
        receipts = (int(str(first)), int(str(last)))
    return BatchSide(brands, total, count, receipts)


def batch_view(data: Mapping[str, Any]) -> BatchView:
    """Read a `payment.batch_settled` event's data; raise LedgerError if it lacks the totals.

    The batch is named by `batch` (the terminal's batch number) or else `settlement_id`; the
    card terminal by `terminal_id`, at the top or inside the terminal's side.
    """
    terminal = _side(data.get("terminal"))
    if terminal is None:
        raise LedgerError("payment.batch_settled without the terminal's totals ('terminal')")
    side = data.get("terminal") or {}
    card_terminal = data.get("terminal_id") or side.get("terminal_id") or ""
    return BatchView(
        str(card_terminal),
        str(data.get("batch") or data.get("settlement_id") or ""),
        data.get("currency"),
        terminal,
        _side(data.get("journal")),
        list(data.get("differences") or []),
    )


def _net_of(amount: int, rate: str, mode: str) -> int:
    """The part of a discount that is not tax (inclusive prices carry their tax)."""
    if mode != "inclusive":
        return amount
    r = Decimal(canonical_rate(rate) or "0")
    value = Decimal(amount) * 100 / (100 + r)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def entries(ev: Event, day: str, currency: str) -> list[Txn]:
    """The ledger transactions of one event (pure). [] for events that move no money."""
    d = ev.data
    s, t = ev.store, ev.terminal

    def txn(
        kind: str,
        narration: str,
        lines: Iterable[tuple[str, int]],
        ref: str = "",
        settles: Sequence[str] = (),
        cur: str | None = None,
    ) -> Txn:
        merged: dict[str, int] = {}
        for account, amount in lines:
            merged[account] = merged.get(account, 0) + amount
        kept = tuple((a, v) for a, v in merged.items() if v != 0)
        return Txn(
            ev.id,
            s,
            t,
            day,
            ev.at,
            kind,
            narration,
            ev.id,
            cur or currency,
            kept,
            ref,
            tuple(settles),
        )

    if ev.type == "sale.completed":
        cur = d.get("currency") or currency
        lines: list[tuple[str, int]] = []
        for p in d["payments"]:
            lines.append((Chart.clearing(s, t, p["method"]), int(p["amount"])))
        disc: dict[str, int] = {}
        for li in d.get("lines", []):
            if li.get("discount"):
                key = canonical_rate(li["rate"]) or li["rate"]
                disc[key] = disc.get(key, 0) + int(li["discount"])
        mode = d.get("tax_mode", "inclusive")
        for tx in d["taxes"]:
            rate = canonical_rate(tx["rate"]) or tx["rate"]
            off = _net_of(disc.get(rate, 0), rate, mode)
            lines.append((Chart.sales(s, rate), -(int(tx["net"]) + off)))
            if off:
                lines.append((Chart.discounts(s, rate), off))
            lines.append((Chart.tax(s, rate), -int(tx["tax"])))
        if d.get("rounding"):
            lines.append((Chart.rounding(s), -int(d["rounding"])))
        return [_balanced(txn("sale", f"sale {d['receipt_no']}", lines, d["receipt_no"], cur=cur))]
    if ev.type == "sale.refunded":
        cur = d.get("currency") or currency
        lines = [(Chart.clearing(s, t, p["method"]), -int(p["amount"])) for p in d["payments"]]
        for tx in d["taxes"]:
            rate = canonical_rate(tx["rate"]) or tx["rate"]
            lines.append((Chart.returns(s, rate), int(tx["net"])))
            lines.append((Chart.tax(s, rate), int(tx["tax"])))
        if d.get("rounding"):
            lines.append((Chart.rounding(s), int(d["rounding"])))
        narration = f"refund {d['receipt_no']} of {d.get('original_receipt_no', '?')}"
        return [_balanced(txn("refund", narration, lines, d["receipt_no"], cur=cur))]
    if ev.type == "shift.opened":
        amount = int(d.get("opening_float", 0))
        if not amount:
            return []
        lines = [(Chart.drawer(s, t), amount), (Chart.safe(s), -amount)]
        return [txn("float", f"opening float, shift {d['shift_id'][:8]}", lines)]
    if ev.type == "shift.cash_moved":
        amount = int(d["amount"])
        what = "cash in" if amount > 0 else "cash out"
        lines = [(Chart.drawer(s, t), amount), (Chart.safe(s), -amount)]
        return [txn("cash_move", f"{what}: {d.get('reason', '')}", lines)]
    if ev.type == "shift.closed":
        cash = d["report"]["cash"]
        expected, counted = int(cash["expected"]), int(cash["counted"])
        lines = [
            (Chart.safe(s), counted),
            (Chart.over_short(s), expected - counted),
            (Chart.drawer(s, t), -expected),
        ]
        narration = f"Z report, shift {d['shift_id'][:8]}: counted {counted}, expected {expected}"
        return [
            _balanced(txn("shift_close", narration, lines, d["shift_id"], [Chart.drawer(s, t)]))
        ]
    if ev.type == "payment.batch_settled":
        b = batch_view(d)
        ours = b.journal.total if b.journal is not None else b.terminal.total
        clearing = Chart.clearing(s, t, "card")
        lines = [
            (Chart.acquirer(s), b.terminal.total),
            (Chart.card_differences(s), ours - b.terminal.total),
            (clearing, -ours),
        ]
        narration = f"card batch {b.batch or '?'} of terminal {b.card_terminal or '?'} closed"
        ref = f"{b.card_terminal}/{b.batch}"
        return [
            _balanced(txn("batch", narration, lines, ref, [clearing], cur=b.currency or currency))
        ]
    if ev.type == "settlement.paid_out":
        gross, fee, net = int(d["gross"]), int(d["fee"]), int(d["net"])
        if gross - fee != net:
            raise LedgerError(f"payout {d['payout_id']}: gross - fee != net")
        lines = [(Chart.bank(), net), (Chart.fees(s), fee), (Chart.acquirer(s), -gross)]
        narration = f"card payout {d['payout_id']} ({len(d.get('batches', []))} batch(es))"
        return [
            _balanced(
                txn(
                    "payout",
                    narration,
                    lines,
                    d["payout_id"],
                    [Chart.acquirer(s)],
                    cur=d.get("currency") or currency,
                )
            )
        ]
    return []


def _balanced(t: Txn) -> Txn:
    """A transaction that does not balance is a bug or bad data: post the difference to the
    store's suspense account, where reconciliation shows it (never silently lost)."""
    total = sum(a for _, a in t.postings)
    if total == 0:
        return t
    log.error("ledger: %s %s does not balance by %d; difference to suspense", t.kind, t.key, total)
    return Txn(
        t.key,
        t.store,
        t.terminal,
        t.day,
        t.at,
        t.kind,
        t.narration,
        t.event_id,
        t.currency,
        (*t.postings, (Chart.suspense(t.store), -total)),
        t.ref,
        t.settles,
    )


class LedgerWorker:
    """Keeps the ledger tables up to date from the events, by its own cursor, each batch of
    events and its transactions in one database transaction."""

    def __init__(
        self,
        engine: Engine,
        state: ConnectorState,
        timezones: Any,
        *,
        currencies: Mapping[str, str] | None = None,
        default_currency: str = "EUR",
        poll_s: float = 0.5,
        give_way: GiveWay = no_wait,
    ) -> None:
        self.engine = engine
        self.give_way = give_way
        self.state = state
        self.timezones = timezones
        self.currencies = dict(currencies or {})
        self.default_currency = default_currency
        self.poll_s = poll_s
        self.dialect = engine.dialect.name
        metadata.create_all(engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_accounts: set[tuple[str, str]] = set()
        self._unpostable: set[str] = set()
        self._buffer: list[Txn] = []
        self.failing: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="connector-ledger", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.give_way(self._stop)
            try:
                busy = self.run_once() > 0
                if self.failing is not None:
                    log.warning("ledger: recovered")
                    self.failing = None
            except Exception as err:
                text = f"{type(err).__name__}: {err}"
                if self.failing != text:
                    log.exception("ledger: failing")
                self.failing = text
                busy = False
            if not busy:
                self._stop.wait(self.poll_s)

    def drain(self, timeout: float = 60.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.run_once() > 0:
            pass

    def currency(self, store: str) -> str:
        return self.currencies.get(store, self.default_currency)

    def _plan(self, ev: Event) -> Planned:
        if ev.type in HANDLED:
            return Planned("ignored")
        return Planned("ignored" if ev.type in IGNORED else "unknown")

    def run_once(self, limit: int = 2000) -> int:
        """Ledger what was stored since the cursor; the number of events read."""
        result = self.state.feed(
            LEDGER,
            self._plan,
            limit=limit,
            local=self._write,
            flush=self._flush,
            skips=IGNORED - HANDLED,
        )
        return result.events

    def _flush(self, conn: Connection) -> None:
        made, self._buffer = self._buffer, []
        write_txns(conn, made, self._insert, self._seen_accounts)

    def _write(self, conn: Connection, ev: Event, planned: Planned) -> None:
        if ev.type not in HANDLED:
            return
        day = self.timezones.event_day(ev)
        try:
            made = entries(ev, day, self.currency(ev.store))
        except (LedgerError, KeyError, TypeError, ValueError) as err:
            # Kept and reported as not understood (`tillbox relay connectors status`); the log
            # says it once per event type, not once per event.
            if ev.type not in self._unpostable:
                self._unpostable.add(ev.type)
                log.error(
                    "ledger: %s %s cannot be posted: %r (more are only counted)",
                    ev.type,
                    ev.id,
                    err,
                )
            self.state.record_unknown(conn, LEDGER, ev)
            return
        self._buffer += made

    def _insert(self, table: Table) -> Any:
        if self.dialect == "postgresql":
            return pg_dialect.insert(table)
        return sqlite_dialect.insert(table)

    def caught_up(self, stream: str, position: int) -> bool:
        """Has the ledger read `stream` up to `position` (a terminal's seq, an import's pos)?"""
        with self.engine.connect() as conn:
            pos = conn.execute(
                select(cursors.c.position).where(
                    cursors.c.connector == LEDGER, cursors.c.stream == stream
                )
            ).scalar_one_or_none()
        return pos is not None and int(pos) >= position


def write_txns(
    conn: Connection,
    made: Sequence[Txn],
    insert_for: Any,
    seen: set[tuple[str, str]] | None = None,
) -> None:
    """Insert transactions in bulk; a key already there is skipped, so the ledger is written once
    however often an event comes by. Ids are given here, in order (the caller holds the ledger's
    cursor locks, so no other writer numbers transactions meanwhile): postings then append to
    an index in id order instead of one keyed by random event ids."""
    kept = [t for t in made if t.postings]  # a batch of zero or a shift without cash moves none
    if not kept:
        return
    have = set()
    for i in range(0, len(kept), 500):
        chunk = [t.key for t in kept[i : i + 500]]
        have |= {r.key for r in conn.execute(select(txns.c.key).where(txns.c.key.in_(chunk)))}
    kept = [t for t in kept if t.key not in have]
    if not kept:
        return
    top = int(conn.execute(select(func.max(txns.c.id))).scalar_one() or 0)
    ids = {t.key: top + n for n, t in enumerate(kept, start=1)}
    bulk_insert_ignore(
        conn,
        txns,
        [
            {
                "id": ids[t.key],
                "key": t.key,
                "store": t.store,
                "terminal": t.terminal,
                "day": t.day,
                "at": t.at,
                "kind": t.kind,
                "narration": t.narration,
                "event_id": t.event_id,
                "currency": t.currency,
                "ref": t.ref,
            }
            for t in kept
        ],
        ["key"],
    )
    bulk_insert_ignore(
        conn,
        postings,
        [
            {"txn_id": ids[t.key], "line": i, "store": t.store, "day": t.day, "account": a,
             "amount": v}
            for t in kept
            for i, (a, v) in enumerate(t.postings)
        ],
        ["txn_id", "line"],
    )  # fmt: skip
    first: dict[str, tuple[str, str]] = {}
    for t in kept:
        for a, _ in t.postings:
            if (seen is None or (a, t.day) not in seen) and (a not in first or t.day < first[a][1]):
                first[a] = (t.currency, t.day)
    if first:
        stmt = insert_for(accounts)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[accounts.c.account],
                set_={
                    "first_day": case(
                        (stmt.excluded.first_day < accounts.c.first_day, stmt.excluded.first_day),
                        else_=accounts.c.first_day,
                    )
                },
            ),
            [{"account": a, "currency": c, "first_day": d} for a, (c, d) in first.items()],
        )
        if seen is not None:
            seen.update((a, t.day) for t in kept for a, _ in t.postings)


@dataclass(frozen=True, slots=True)
class LedgerTxn:
    id: int
    key: str
    store: str
    terminal: str
    day: str
    at: str
    kind: str
    narration: str
    event_id: str
    currency: str
    ref: str
    postings: list[tuple[str, int]]


def read_day(engine: Engine, store: str | None, day: str) -> list[LedgerTxn]:
    """A day's transactions (one store, or all), in ledger order."""
    with engine.connect() as conn:
        q = select(txns).where(txns.c.day == day)
        pq = select(postings.c.txn_id, postings.c.account, postings.c.amount).where(
            postings.c.day == day
        )
        if store is not None:
            q = q.where(txns.c.store == store)
            pq = pq.where(postings.c.store == store)
        by_txn: dict[int, list[tuple[str, int]]] = {}
        for p in conn.execute(pq.order_by(postings.c.txn_id, postings.c.line)):
            by_txn.setdefault(int(p.txn_id), []).append((p.account, int(p.amount)))
        return [
            LedgerTxn(
                int(r.id),
                r.key,
                r.store,
                r.terminal,
                r.day,
                r.at,
                r.kind,
                r.narration,
                r.event_id,
                r.currency,
                r.ref,
                by_txn.get(int(r.id), []),
            )
            for r in conn.execute(q.order_by(txns.c.id))
        ]


def balances(engine: Engine, upto_day: str | None = None, prefix: str = "") -> dict[str, int]:
    """Account balances (minor units) over every day up to and including `upto_day`."""
    with engine.connect() as conn:
        q = select(postings.c.account, func.sum(postings.c.amount).label("b")).group_by(
            postings.c.account
        )
        if upto_day is not None:
            q = q.where(postings.c.day <= upto_day)
        if prefix:
            q = q.where(postings.c.account.startswith(prefix))
        return {r.account: int(r.b) for r in conn.execute(q)}


def all_accounts(engine: Engine) -> list[tuple[str, str, str]]:
    """(account, currency, first day) of every account the ledger has used."""
    with engine.connect() as conn:
        return [
            (r.account, r.currency, r.first_day)
            for r in conn.execute(select(accounts).order_by(accounts.c.account))
        ]


def days(engine: Engine, store: str | None = None) -> list[tuple[str, str]]:
    """(store, day) pairs that have transactions."""
    with engine.connect() as conn:
        q = select(txns.c.store, txns.c.day).distinct()
        if store:
            q = q.where(txns.c.store == store)
        return sorted((r.store, r.day) for r in conn.execute(q))


def settled_accounts(t: LedgerTxn) -> list[str]:
    """Accounts a settling transaction brings to zero (for Beancount's balance assertions)."""
    if t.kind == "shift_close":
        return [a for a, _ in t.postings if a.startswith("Assets:Cash:Drawer:")]
    if t.kind == "batch":
        return [
            a for a, _ in t.postings if a.startswith("Assets:Clearing:") and "Acquirer" not in a
        ]
    if t.kind == "payout":
        return [a for a, _ in t.postings if a.startswith("Assets:Clearing:Acquirer:")]
    return []


MINOR_DIGITS: Final = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3}


def minor_digits(currency: str) -> int:
    return MINOR_DIGITS.get(currency, 2)


def to_decimal(amount: int, currency: str) -> Decimal:
    """Minor units as a Decimal in major units: 1234 EUR -> Decimal('12.34')."""
    return Decimal(amount).scaleb(-minor_digits(currency))
