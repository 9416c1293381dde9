# End-of-day reconciliation per store and day: tenders, card batches, bank payouts, cash, sequences.
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    and_,
    select,
    union_all,
)

from relay.accounting.ledger import BatchView, LedgerError, batch_view, to_decimal
from relay.connectors.state import imported
from relay.store import alerts, events, heads, reading

if TYPE_CHECKING:
    from relay.config import RelayConfig

ALERT_SCHEMA: Final = "tillbox.alert/1"
MONEY_TYPES: Final = ("sale.completed", "sale.refunded", "shift.closed", "payment.batch_settled")
DAYS_KEPT: Final = 128  # store-days whose folded events a Reconciler keeps in memory

metadata = MetaData()
reports = Table(
    "reconciliations",
    metadata,
    Column("store", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("report", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("published_digest", String(64), nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Difference:
    kind: str
    where: str
    expected: int | str | None
    actual: int | str | None
    detail: str


@dataclass(slots=True)
class TenderLine:
    sales: int = 0
    refunds: int = 0
    count: int = 0

    @property
    def net(self) -> int:
        return self.sales - self.refunds


@dataclass(slots=True)
class Report:
    store: str
    day: str
    currency: str
    tenders: dict[str, TenderLine] = field(default_factory=dict)
    card_brands: dict[str, TenderLine] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    payouts: list[dict[str, Any]] = field(default_factory=list)
    cash: list[dict[str, Any]] = field(default_factory=list)
    terminals: list[dict[str, Any]] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "tillbox.reconciliation/1",
            "store": self.store,
            "day": self.day,
            "currency": self.currency,
            "tenders": {
                m: {"sales": t.sales, "refunds": t.refunds, "net": t.net, "count": t.count}
                for m, t in sorted(self.tenders.items())
            },
            "card_brands": {
                b: {"sales": t.sales, "refunds": t.refunds, "net": t.net, "count": t.count}
                for b, t in sorted(self.card_brands.items())
            },
            "batches": self.batches,
            "payouts": self.payouts,
            "cash": self.cash,
            "terminals": self.terminals,
            "differences": [asdict(d) for d in self.differences],
            "pending": self.pending,
            "ok": not self.differences,
        }

    def digest(self) -> str:
        body = json.dumps([asdict(d) for d in self.differences], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass(slots=True)
class _TillDay:
    """One till's money events of one business day, folded in as they are stored. A till's
    events are stored append-only and gap-free by seq, so what is folded never changes and
    the next report reads only the events past `upto`."""

    upto: int = 0
    currency: Any = None
    tenders: dict[str, TenderLine] = field(default_factory=dict)
    card_brands: dict[str, TenderLine] = field(default_factory=dict)
    card_sales: bool = False
    receipts: list[tuple[int, int]] = field(default_factory=list)  # (number, seq)
    closings: list[dict[str, Any]] = field(default_factory=list)  # shift and batch closes

    def add(self, e: Mapping[str, Any]) -> None:
        d = e["data"]
        if not self.currency and d.get("currency"):
            self.currency = d["currency"]
        if e["type"] in ("shift.closed", "payment.batch_settled"):
            self.closings.append(dict(e))
            return
        sale = e["type"] == "sale.completed"
        for p in d["payments"]:
            t = self.tenders.setdefault(p["method"], TenderLine())
            card = p.get("card") if sale else _booked_card(p)
            b = self.card_brands.setdefault(card.get("brand", "?"), TenderLine()) if card else None
            if sale:
                t.sales += int(p["amount"])
                t.count += 1
                if b is not None:
                    b.sales += int(p["amount"])
                    b.count += 1
                self.card_sales = self.card_sales or p["method"] == "card"
            else:
                t.refunds += int(p["amount"])
                if b is not None:
                    b.refunds += int(p["amount"])
        n = _receipt_int(str(d.get("receipt_no", "")).rsplit("-", 1)[-1])
        if n is not None:
            self.receipts.append((n, int(e["seq"])))


@dataclass(slots=True)
class _Day:
    """A store-day as folded so far, and the look-backs of its closes (fixed once computed:
    they read only a till's events before the close, all stored when the close was)."""

    tills: dict[str, _TillDay] = field(default_factory=dict)
    looked_back: dict[tuple[str, str | int], Any] = field(default_factory=dict)

    def upto(self, till: str) -> int:
        """The till's last seq folded in (0: none yet)."""
        folded = self.tills.get(till)
        return folded.upto if folded else 0


def _added(lines: Iterable[Mapping[str, TenderLine]]) -> dict[str, TenderLine]:
    out: dict[str, TenderLine] = {}
    for part in lines:
        for name, line in part.items():
            t = out.setdefault(name, TenderLine())
            t.sales += line.sales
            t.refunds += line.refunds
            t.count += line.count
    return out


def business_day(text: str) -> str:
    """A business day as asked for by an operator; ValueError saying what to send."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a day: send a date as YYYY-MM-DD, e.g. 2026-11-27")


def for_config(config: RelayConfig, engine: Engine) -> Reconciler:
    """The reconciler with the configured shops' time zones and currency."""
    from relay.connectors.runtime import Timezones

    led = config.ledger
    zones = Timezones(led.timezone, {s: v.timezone for s, v in led.stores.items() if v.timezone})
    return Reconciler(engine, zones, led.currency)


def _bounds(day: str, tz: ZoneInfo) -> tuple[str, str]:
    """UTC text bounds [start, end) of a local day, comparable with events' `at`."""
    start = datetime.combine(date.fromisoformat(day), time(0), tz).astimezone(UTC)
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%S"), end.strftime("%Y-%m-%dT%H:%M:%S")


def _local_day(at: str, tz: ZoneInfo) -> str:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return moment.astimezone(tz).date().isoformat()


def _same_batch(terminal_a: str, batch_a: str, terminal_b: str, batch_b: str) -> bool:
    """The same card batch: same batch name, and the same card terminal where both name one
    (a `payment.batch_settled` without `terminal_id` matches on the batch alone)."""
    if batch_a != batch_b or not batch_a:
        return False
    return not terminal_a or not terminal_b or terminal_a == terminal_b


def _receipt_int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


def _booked_card(payment: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The card the terminal booked a payment on: for a card refund, the card it paid back
    to (`card_refund`, which may be another card than the sale's), else the sale's card."""
    card = payment.get("card_refund") or payment.get("card")
    return card if isinstance(card, Mapping) else None


def _money(amount: int | None, currency: str) -> str:
    return "-" if amount is None else f"{to_decimal(amount, currency)}"


class Reconciler:
    """Builds reports from the central store (events, imports, heads, alerts) and keeps them.

    Each store-day's money events are folded in memory as they arrive, so a report reads only
    what was stored since the last one (the first report of a day in a process reads it all).
    """

    def __init__(self, engine: Engine, timezone_of: Any, default_currency: str = "EUR") -> None:
        self.engine = engine
        self.tz = timezone_of
        self.default_currency = default_currency
        self._days: OrderedDict[tuple[str, str], _Day] = OrderedDict()
        self._lock = threading.Lock()
        metadata.create_all(engine)

    # ----- reading --------------------------------------------------------------------------

    def knows(self, store: str) -> bool:
        """Whether any terminal of this store has sent the relay events."""
        with reading(self.engine) as conn:
            row = conn.execute(select(heads.c.store).where(heads.c.store == store).limit(1))
            return row.first() is not None

    def _fold(self, store: str, day: str) -> _Day:
        """The store-day with the money events stored since the last call folded in: per till,
        only seqs past what was folded and up to its head (all stored, none to come)."""
        key = (store, day)
        folded = self._days.pop(key, None) or _Day()
        tz = self.tz(store)
        lo, hi = _bounds(day, tz)
        with reading(self.engine) as conn:
            moved = {
                r.terminal: int(r.seq)
                for r in conn.execute(
                    select(heads.c.terminal, heads.c.seq).where(heads.c.store == store)
                )
                if int(r.seq) > folded.upto(r.terminal)
            }
            # one indexed range search per till (an OR of the ranges scans the store's events)
            ranges = [
                select(
                    events.c.id,
                    events.c.type,
                    events.c.terminal,
                    events.c.seq,
                    events.c.at,
                    events.c.data,
                ).where(
                    events.c.store == store,
                    events.c.terminal == t,
                    events.c.seq > folded.upto(t),
                    events.c.seq <= top,
                    events.c.type.in_(MONEY_TYPES),
                    events.c.at >= lo,
                    events.c.at < hi,
                )
                for t, top in sorted(moved.items())
            ]
            rows: list[Any] = []
            for i in range(0, len(ranges), 200):
                rows += conn.execute(union_all(*ranges[i : i + 200])).all()
        rows.sort(key=lambda r: (r.terminal, int(r.seq)))
        for r in rows:
            if _local_day(r.at, tz) != day:
                continue
            e = {"id": r.id, "type": r.type, "terminal": r.terminal, "seq": int(r.seq)}
            # one that cannot be read raises here: the fold is not kept, the next report reads
            # the day afresh
            folded.tills.setdefault(r.terminal, _TillDay()).add({**e, "at": r.at, "data": r.data})
        for t, top in moved.items():
            folded.tills.setdefault(t, _TillDay()).upto = top
        self._days[key] = folded
        while len(self._days) > DAYS_KEPT:
            self._days.popitem(last=False)
        return folded

    def _terminal_events(
        self, store: str, terminal: str, after: int, upto: int, types: Sequence[str]
    ) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(events.c.type, events.c.seq, events.c.data)
                .where(
                    events.c.store == store,
                    events.c.terminal == terminal,
                    events.c.seq > after,
                    events.c.seq < upto,
                    events.c.type.in_(list(types)),
                )
                .order_by(events.c.seq)
            ).all()
        return [{"type": r.type, "seq": int(r.seq), "data": r.data} for r in rows]

    def _last_before(
        self, store: str, terminal: str, seq: int, types: Sequence[str]
    ) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            r = conn.execute(
                select(events.c.type, events.c.seq, events.c.data)
                .where(
                    events.c.store == store,
                    events.c.terminal == terminal,
                    events.c.seq < seq,
                    events.c.type.in_(list(types)),
                )
                .order_by(events.c.seq.desc())
                .limit(1)
            ).first()
        return {"type": r.type, "seq": int(r.seq), "data": r.data} if r else None

    def batch_days(self, store: str, batches: Iterable[tuple[str, str]]) -> list[str]:
        """Business days on which these (card terminal, batch) were closed."""
        wanted = list(batches)
        tz = self.tz(store)
        out: set[str] = set()
        with reading(self.engine) as conn:
            for r in conn.execute(
                select(events.c.at, events.c.data).where(
                    events.c.store == store, events.c.type == "payment.batch_settled"
                )
            ):
                try:
                    b = batch_view(r.data)
                except LedgerError:
                    continue
                if any(_same_batch(b.card_terminal, b.batch, t, n) for t, n in wanted):
                    out.add(_local_day(r.at, tz))
        return sorted(out)

    # ----- the report -------------------------------------------------------------------------

    def report(self, store: str, day: str) -> Report:
        with self._lock:
            folded = self._fold(store, day)
            tills = [folded.tills[t] for t in sorted(folded.tills)]
            currency = next((t.currency for t in tills if t.currency), self.default_currency)
            rep = Report(store, day, currency)
            rep.tenders = _added(t.tenders for t in tills)
            rep.card_brands = _added(t.card_brands for t in tills)
            closings = [e for t in tills for e in t.closings]
            card_tills = {name for name, t in folded.tills.items() if t.card_sales}
            batches = self._batches(rep, store, closings, card_tills, folded.looked_back)
            self._payouts(rep, store, batches)
            self._cash(rep, store, closings, folded.looked_back)
            receipts = {name: t.receipts for name, t in folded.tills.items() if t.receipts}
            self._sequences(rep, store, receipts, folded.looked_back)
            return rep

    def _batches(
        self,
        rep: Report,
        store: str,
        evs: Sequence[Mapping[str, Any]],
        card_tills: set[str],
        looked_back: dict[tuple[str, str | int], Any],
    ) -> list[tuple[str, str, BatchView]]:
        """Each card batch closed this day: the terminal's totals per brand against the card
        payments and refunds the relay holds for that till since its previous batch."""
        out: list[tuple[str, str, BatchView]] = []
        closed_tills = set()
        for e in evs:
            if e["type"] != "payment.batch_settled":
                continue
            where = f"{store}/{e['terminal']}"
            try:
                b = batch_view(e["data"])
            except (LedgerError, KeyError, TypeError, ValueError) as err:
                rep.differences.append(
                    Difference("batch_unreadable", where, None, None, f"batch event: {err}")
                )
                continue
            closed_tills.add(e["terminal"])
            out.append((e["terminal"], e["id"], b))
            mine_before = looked_back.get(("batch", e["id"]))
            if mine_before is None:
                mine_before = looked_back[("batch", e["id"])] = self._batch_journal(store, e)
            ours, receipts = mine_before
            brands = []
            for brand in sorted(set(ours) | set(b.terminal.brands)):
                mine = ours.get(brand, TenderLine())
                theirs = b.terminal.brands.get(brand)
                t_total = theirs.total if theirs else 0
                t_count = theirs.count if theirs else 0
                brands.append(
                    {
                        "brand": brand,
                        "journal_net": mine.net,
                        "journal_count": mine.count,
                        "terminal_total": t_total,
                        "terminal_count": t_count,
                    }
                )
                label = f"{where} batch {b.batch or '?'} {brand}"
                if mine.net != t_total:
                    rep.differences.append(
                        Difference(
                            "card_batch_total",
                            label,
                            mine.net,
                            t_total,
                            f"the journal has {_money(mine.net, rep.currency)} in card payments, "
                            f"the terminal's batch {_money(t_total, rep.currency)}",
                        )
                    )
            rng = b.terminal.receipts
            if rng is not None and receipts and (min(receipts) < rng[0] or max(receipts) > rng[1]):
                rep.differences.append(
                    Difference(
                        "card_receipt_range",
                        f"{where} batch {b.batch or '?'}",
                        f"{min(receipts)}-{max(receipts)}",
                        f"{rng[0]}-{rng[1]}",
                        "card payments were journaled with receipt numbers outside the "
                        "batch's range",
                    )
                )
            for diff in b.differences:
                brand = diff.get("brand", "?") if isinstance(diff, Mapping) else "?"
                rep.differences.append(
                    Difference(
                        "card_batch_reported",
                        f"{where} batch {b.batch or '?'} {brand}",
                        None,
                        None,
                        f"the till found its journal and the terminal apart: {diff}",
                    )
                )
            rep.batches.append(
                {
                    "terminal": e["terminal"],
                    "card_terminal": b.card_terminal,
                    "batch": b.batch,
                    "total": b.terminal.total,
                    "count": b.terminal.count,
                    "brands": brands,
                    "reported_differences": b.differences,
                }
            )
        for till in sorted(card_tills - closed_tills):
            rep.pending.append(f"{store}/{till}: card batch not closed yet")
        return out

    def _batch_journal(
        self, store: str, e: Mapping[str, Any]
    ) -> tuple[dict[str, TenderLine], list[int]]:
        """The card payments and refunds the relay holds for a till between its previous
        batch close and this one, per the terminal's totals group, and their receipt numbers."""
        prev = self._last_before(store, e["terminal"], e["seq"], ["payment.batch_settled"])
        ours: dict[str, TenderLine] = {}
        receipts: list[int] = []
        for x in self._terminal_events(
            store,
            e["terminal"],
            prev["seq"] if prev else 0,
            e["seq"],
            ["sale.completed", "sale.refunded"],
        ):
            for p in x["data"]["payments"]:
                card = _booked_card(p)
                if p["method"] != "card" or not card:
                    continue
                # the terminal's totals group ("Eurocard/Mastercard"), where the till sent it
                group = card.get("batch_brand") or card.get("brand", "?")
                line = ours.setdefault(group, TenderLine())
                line.count += 1
                if x["type"] == "sale.completed":
                    line.sales += int(p["amount"])
                    n = _receipt_int(card.get("receipt"))
                    if n is not None:
                        receipts.append(n)
                else:
                    line.refunds += int(p["amount"])
        return ours, receipts

    def _payouts(
        self, rep: Report, store: str, batches: Sequence[tuple[str, str, BatchView]]
    ) -> None:
        if not batches:
            return
        wanted = {(b.card_terminal, b.batch): (till, b) for till, _, b in batches}
        found: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        with reading(self.engine) as conn:
            for r in conn.execute(
                select(imported.c.data).where(
                    and_(imported.c.store == store, imported.c.type == "settlement.paid_out")
                )
            ):
                for row in r.data.get("batches", []):
                    for key in wanted:
                        if _same_batch(*key, str(row["card_terminal"]), str(row["batch"])):
                            found.setdefault(key, {})[str(row["brand"])] = dict(
                                row, payout_id=r.data["payout_id"], payout_day=r.data["day"]
                            )
        for key, (till, b) in sorted(wanted.items()):
            rows = found.get(key)
            where = f"{store}/{till} batch {b.batch or '?'}"
            if not rows:
                rep.pending.append(f"{where}: not paid out yet (no settlement report imported)")
                continue
            for brand in sorted(set(rows) | set(b.terminal.brands)):
                paid = rows.get(brand)
                term = b.terminal.brands.get(brand)
                gross = int(paid["gross"]) if paid else 0
                t_total = term.total if term else 0
                rep.payouts.append(
                    {
                        "batch": b.batch,
                        "card_terminal": b.card_terminal,
                        "brand": brand,
                        "terminal_total": t_total,
                        "gross": gross,
                        "fee": int(paid["fee"]) if paid else 0,
                        "net": int(paid["net"]) if paid else 0,
                        "payout_id": paid["payout_id"] if paid else None,
                        "payout_day": paid["payout_day"] if paid else None,
                    }
                )
                if gross != t_total:
                    rep.differences.append(
                        Difference(
                            "payout_gross",
                            f"{where} {brand}",
                            t_total,
                            gross,
                            f"the acquirer paid out {_money(gross, rep.currency)} gross for a "
                            f"batch total of {_money(t_total, rep.currency)}",
                        )
                    )

    def _cash(
        self,
        rep: Report,
        store: str,
        evs: Sequence[Mapping[str, Any]],
        looked_back: dict[tuple[str, str | int], Any],
    ) -> None:
        for e in evs:
            if e["type"] != "shift.closed":
                continue
            d = e["data"]
            cash = d["report"]["cash"]
            where = f"{store}/{e['terminal']} shift {d['shift_id'][:8]}"
            expected, counted = int(cash["expected"]), int(cash["counted"])
            if ("cash", e["id"]) not in looked_back:
                looked_back[("cash", e["id"])] = self._expected_cash(
                    store, e["terminal"], e["seq"], d["shift_id"]
                )
            ours = looked_back[("cash", e["id"])]
            rep.cash.append(
                {
                    "terminal": e["terminal"],
                    "shift_id": d["shift_id"],
                    "expected": expected,
                    "counted": counted,
                    "over_short": counted - expected,
                    "relay_expected": ours,
                }
            )
            if counted != expected:
                word = "short" if counted < expected else "over"
                rep.differences.append(
                    Difference(
                        "cash_over_short",
                        where,
                        expected,
                        counted,
                        f"cash {word} by {_money(abs(counted - expected), rep.currency)}: counted "
                        f"{_money(counted, rep.currency)}, "
                        f"expected {_money(expected, rep.currency)}",
                    )
                )
            if ours is not None and ours != expected:
                rep.differences.append(
                    Difference(
                        "z_report_cash",
                        where,
                        ours,
                        expected,
                        "the Z report's expected cash differs from the shift's journaled events",
                    )
                )

    def _expected_cash(
        self, store: str, terminal: str, close_seq: int, shift_id: str
    ) -> int | None:
        opened = self._last_before(store, terminal, close_seq, ["shift.opened"])
        if opened is None or opened["data"].get("shift_id") != shift_id:
            return None
        total = int(opened["data"].get("opening_float", 0))
        for x in self._terminal_events(
            store,
            terminal,
            opened["seq"],
            close_seq,
            ["sale.completed", "sale.refunded", "shift.cash_moved"],
        ):
            d = x["data"]
            if x["type"] == "shift.cash_moved":
                total += int(d["amount"])
                continue
            sign = 1 if x["type"] == "sale.completed" else -1
            total += sign * sum(int(p["amount"]) for p in d["payments"] if p["method"] == "cash")
        return total

    def _sequences(
        self,
        rep: Report,
        store: str,
        by_till: Mapping[str, Sequence[tuple[int, int]]],
        looked_back: dict[tuple[str, str | int], Any],
    ) -> None:
        with reading(self.engine) as conn:
            hrows = conn.execute(select(heads).where(heads.c.store == store)).all()
            open_alerts = conn.execute(
                select(alerts.c.terminal, alerts.c.kind, alerts.c.detail).where(
                    alerts.c.store == store, alerts.c.resolved_at.is_(None)
                )
            ).all()
        for h in hrows:
            rep.terminals.append(
                {"terminal": h.terminal, "head": int(h.seq), "waiting": int(h.waiting)}
            )
            if int(h.waiting) > 0:
                rep.differences.append(
                    Difference(
                        "events_missing",
                        f"{store}/{h.terminal}",
                        int(h.seq) + 1,
                        None,
                        f"event seq {int(h.seq) + 1} has not arrived; {int(h.waiting)} later "
                        "event(s) wait behind it",
                    )
                )
        for a in open_alerts:
            if a.kind in ("conflict", "broken_chain"):
                rep.differences.append(
                    Difference(f"events_{a.kind}", f"{store}/{a.terminal}", None, None, a.detail)
                )
        for till, numbers in sorted(by_till.items()):
            where = f"{store}/{till}"
            first_seq = min(s for _, s in numbers)
            if (till, first_seq) not in looked_back:
                looked_back[(till, first_seq)] = self._receipt_before(store, till, first_seq)
            start = looked_back[(till, first_seq)]
            nums = sorted(n for n, _ in numbers)
            seen: set[int] = set()
            for n in nums:
                if n in seen:
                    rep.differences.append(
                        Difference(
                            "receipt_duplicate", where, None, n, f"receipt number {n} used twice"
                        )
                    )
                seen.add(n)
            lo = (start + 1) if start is not None else nums[0]
            missing = sorted(set(range(lo, nums[-1] + 1)) - seen)
            if missing:
                shown = ", ".join(str(m) for m in missing[:20]) + (
                    " …" if len(missing) > 20 else ""
                )
                rep.differences.append(
                    Difference(
                        "receipt_missing",
                        where,
                        len(missing),
                        None,
                        f"receipt number(s) {shown} missing",
                    )
                )

    def _receipt_before(self, store: str, till: str, seq: int) -> int | None:
        """The receipt number of the till's last sale or refund before `seq`."""
        before = self._last_before(store, till, seq, ["sale.completed", "sale.refunded"])
        if before is None:
            return None
        return _receipt_int(str(before["data"].get("receipt_no", "")).rsplit("-", 1)[-1])

    # ----- keeping and alerting ---------------------------------------------------------------

    def save(self, rep: Report) -> bool:
        """Keep the report; True when its differences changed since the last one published."""
        body = rep.to_json()
        digest = rep.digest()
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(reports.c.published_digest).where(
                    reports.c.store == rep.store, reports.c.day == rep.day
                )
            ).first()
            if row is None:
                conn.execute(
                    reports.insert().values(
                        store=rep.store,
                        day=rep.day,
                        report=body,
                        digest=digest,
                        published_digest="",
                        updated_at=now,
                    )
                )
                published = ""
            else:
                conn.execute(
                    reports.update()
                    .where(reports.c.store == rep.store, reports.c.day == rep.day)
                    .values(report=body, digest=digest, updated_at=now)
                )
                published = row.published_digest
        clean = Report(rep.store, rep.day, rep.currency).digest()
        if not published:
            return digest != clean
        return digest != published

    def mark_published(self, store: str, day: str, digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                reports.update()
                .where(reports.c.store == store, reports.c.day == day)
                .values(published_digest=digest)
            )

    def stored(self, store: str, day: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(reports.c.report).where(reports.c.store == store, reports.c.day == day)
            ).first()
        return dict(row.report) if row else None


def alert_payload(rep: Report, at: str) -> dict[str, Any]:
    return {
        "schema": ALERT_SCHEMA,
        "kind": "reconciliation",
        "store": rep.store,
        "day": rep.day,
        "at": at,
        "ok": not rep.differences,
        "differences": [asdict(d) for d in rep.differences],
        "pending": rep.pending,
    }


def render(rep: Report) -> str:
    """A readable table of the report."""
    cur = rep.currency
    out = [f"Reconciliation of store {rep.store} for {rep.day} ({cur})", ""]
    out.append(f"{'tender':<14}{'sales':>12}{'refunds':>12}{'net':>12}{'count':>7}")
    for m, t in sorted(rep.tenders.items()):
        out.append(
            f"{m:<14}{_money(t.sales, cur):>12}{_money(t.refunds, cur):>12}"
            f"{_money(t.net, cur):>12}{t.count:>7}"
        )
    for b, t in sorted(rep.card_brands.items()):
        out.append(
            f"  card {b:<9}{_money(t.sales, cur):>12}{_money(t.refunds, cur):>12}"
            f"{_money(t.net, cur):>12}{t.count:>7}"
        )
    if rep.batches:
        out += ["", f"{'card batch':<28}{'brand':<12}{'journal':>12}{'terminal':>12}"]
        for bt in rep.batches:
            name = f"{bt['terminal']} {bt['card_terminal']}/{bt['batch']}"
            for br in bt["brands"]:
                out.append(
                    f"{name:<28}{br['brand']:<12}{_money(br['journal_net'], cur):>12}"
                    f"{_money(br['terminal_total'], cur):>12}"
                )
    if rep.payouts:
        out += ["", f"{'payout':<20}{'brand':<12}{'batch':>12}{'gross':>12}{'fee':>10}{'net':>12}"]
        for p in rep.payouts:
            out.append(
                f"{p['payout_id'] or '-':<20}{p['brand']:<12}{_money(p['terminal_total'], cur):>12}"
                f"{_money(p['gross'], cur):>12}{_money(p['fee'], cur):>10}"
                f"{_money(p['net'], cur):>12}"
            )
    if rep.cash:
        out += ["", f"{'cash (shift)':<28}{'expected':>12}{'counted':>12}{'over/short':>12}"]
        for c in rep.cash:
            name = f"{c['terminal']} {c['shift_id'][:8]}"
            out.append(
                f"{name:<28}{_money(c['expected'], cur):>12}{_money(c['counted'], cur):>12}"
                f"{_money(c['over_short'], cur):>12}"
            )
    out.append("")
    if rep.differences:
        out.append(f"DIFFERENCES ({len(rep.differences)}):")
        out += [f"  {d.kind} at {d.where}: {d.detail}" for d in rep.differences]
    else:
        out.append("No differences.")
    if rep.pending:
        out.append("Not yet complete:")
        out += [f"  {p}" for p in rep.pending]
    return "\n".join(out) + "\n"
