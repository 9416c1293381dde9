# The till service: one writer thread turns decisions into journaled events, then folds them in.
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from .config import TerminalConfig
from .journal import Checkpointer, Journal, JournalError, NewEvent, Reader
from .sale import Catalog, Conflict, Event, NotFound, Sale, Till, cash_round

log = logging.getLogger("tillbox.service")
T = TypeVar("T")
Decide = Callable[[Till], list[Event]]
MAX_REMEMBERED_REQUESTS = 10_000
SALE_DONE = ("sale.completed", "sale.refunded", "sale.voided")


class Unavailable(Exception):
    """The box cannot take this step right now (journal not writable, disk full)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    """Idempotency of a POST: its key and a digest of what it asked for."""

    key: str
    digest: str

    @classmethod
    def of(cls, key: str | None, *parts: Any) -> Request | None:
        if not key:
            return None
        body = json.dumps(parts, sort_keys=True, default=str).encode()
        return cls(key[:128], hashlib.sha256(body).hexdigest()[:32])


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


class TillService:
    """Everything the API may ask of the till. Writes run on one thread, in order."""

    def __init__(self, config: TerminalConfig, catalog: Catalog) -> None:
        self.config = config
        self.catalog = catalog
        self.till = Till(config.policy())
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-writer")
        self._lock = threading.Lock()
        self._requests: dict[str, tuple[str, int]] = {}
        self._listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = (
            set()
        )
        self.journal_error: str | None = None
        self.journal: Journal | None = None
        self._wreader: Reader | None = None
        self._checkpointer: Checkpointer | None = None
        self.reader: Reader | None = None
        self.replayed = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.wrap_future(self._writer.submit(self._open))
        self.reader = Reader(self.config.journal_path, immutable=self.journal is None)

    def _open(self) -> None:
        try:
            self.journal = Journal(
                self.config.journal_path, self.config.store_id, self.config.terminal_id
            )
        except JournalError as err:
            # Come up anyway: the kiosk can show the problem and past sales stay readable.
            log.error("journal %s cannot be written: %s", self.config.journal_path, err)
            self.journal_error = str(err)
            if not self.config.journal_path.exists():
                raise
        self._wreader = Reader(self.config.journal_path, immutable=self.journal is None)
        if self.journal is not None:
            self._checkpointer = Checkpointer(self.config.journal_path)
        self.replayed = self._rebuild(self._wreader)
        log.info(
            "journal %s at seq %d; state rebuilt from %d events",
            self.config.journal_path,
            self.seq,
            self.replayed,
        )

    @property
    def seq(self) -> int:
        return self.journal.seq if self.journal else self.till.state.seq

    def _rebuild(self, reader: Reader) -> int:
        """Fold the events that still matter (from the open shift on) into a fresh state."""
        last = reader.last_of(["sale.completed", "sale.refunded"])
        if last:
            self.till.state.receipt_counter = int(last["data"]["receipt_no"].rsplit("-", 1)[1])
        mark = reader.last_of(["shift.opened", "shift.closed"])
        head = reader.last_seq()
        start = mark["seq"] if mark and mark["type"] == "shift.opened" else head + 1
        count = 0
        for env in reader.events_from(start):
            self.till.apply(env["type"], env["data"], env["seq"], env["at"])
            req = env["data"].get("request")
            if req:
                self._requests[req["id"]] = (req["digest"], env["seq"])
            count += 1
        self.till.state.seq = head
        return count

    async def stop(self) -> None:
        if self.reader:
            self.reader.close()

        def close() -> None:
            if self._checkpointer:
                self._checkpointer.close()
            if self._wreader:
                self._wreader.close()
            if self.journal:
                self.journal.close()

        await asyncio.wrap_future(self._writer.submit(close))
        self._writer.shutdown(wait=True)

    # -- the one write path ------------------------------------------------------------

    async def write(
        self,
        decide: Decide,
        view: Callable[[list[dict[str, Any]]], T],
        request: Request | None = None,
    ) -> T:
        """Decide, journal durably, fold in, notify; the answer comes only after the commit."""
        return await asyncio.wrap_future(self._writer.submit(self._unit, decide, view, request))

    def write_blocking(
        self,
        decide: Decide,
        view: Callable[[list[dict[str, Any]]], T],
        request: Request | None = None,
    ) -> T:
        """`write` for a thread that is not the event loop (the card-payment worker)."""
        return self._writer.submit(self._unit, decide, view, request).result()

    def _unit(
        self, decide: Decide, view: Callable[[list[dict[str, Any]]], T], request: Request | None
    ) -> T:
        if request is not None and request.key in self._requests:
            digest, seq = self._requests[request.key]
            if digest != request.digest:
                raise Conflict(
                    "request_reused",
                    "This request id was already used for a different request. Send a new id.",
                )
            return view([self.read_in_writer().event(seq)])
        events = decide(self.till)
        new = [NewEvent(new_id(), t, d) for t, d in events]
        if request is not None and new:
            new[0].data["request"] = {"id": request.key, "digest": request.digest}
        if self.journal is None:
            raise Unavailable("journal_unavailable", self.journal_error or "no journal")
        try:
            envelopes = self.journal.append(new, utcnow())
        except JournalError as err:
            if self.journal_error is None:
                log.error("journal write failed: %s", err)
            self.journal_error = str(err)
            raise Unavailable("journal_unavailable", str(err)) from err
        if self.journal_error is not None:
            log.warning("journal writable again")
            self.journal_error = None
        with self._lock:
            for env in envelopes:
                self.till.apply(env["type"], env["data"], env["seq"], env["at"])
        if request is not None and envelopes:
            self._requests[request.key] = (request.digest, envelopes[0]["seq"])
            if len(self._requests) > MAX_REMEMBERED_REQUESTS:
                # A retry comes within seconds; the oldest keys (dicts keep order) can go.
                del self._requests[next(iter(self._requests))]
        if self.journal.checkpoint_due() and self._checkpointer is not None:
            self._checkpointer.request()
        try:
            return view(envelopes)
        finally:
            # Listeners hear of the events once the answer is built: waking the event loop
            # earlier made this thread wait for the GIL in the middle of every write.
            for env in envelopes:
                self._publish({"type": env["type"], "seq": env["seq"], "data": env["data"]})

    def forget_outbox(self, upto: int) -> Future[int]:
        """Drop outbox rows up to `upto` (the relay stored them) in one writer transaction."""
        return self._writer.submit(self._forget_outbox, upto)

    def _forget_outbox(self, upto: int) -> int:
        if self.journal is None:
            raise JournalError(self.journal_error or "no journal")
        return self.journal.forget_outbox(upto)

    def read_in_writer(self) -> Reader:
        assert self._wreader is not None
        return self._wreader

    # -- event stream ------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._listeners.add((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._listeners = {(lp, q) for lp, q in self._listeners if q is not queue}

    def _publish(self, message: dict[str, Any]) -> None:
        for loop, queue in list(self._listeners):
            loop.call_soon_threadsafe(_offer, queue, message)

    def publish(self, message: dict[str, Any]) -> None:
        """Push a non-journal change (device health, outbox depth) to every listener."""
        self._publish(message)

    # -- health ------------------------------------------------------------------------

    def free_mb(self) -> int:
        try:
            return shutil.disk_usage(self.config.state_dir).free // (1024 * 1024)
        except OSError:
            return 0

    def check_room(self) -> None:
        """Refuse to start a new sale when the journal could not take it to the end."""
        if self.journal is None and self.journal_error:
            # Read-only since start-up; a failed write on a live journal is retried instead,
            # so the till recovers by itself once space is freed.
            raise Unavailable("journal_unavailable", self.journal_error)
        if self.free_mb() < self.config.min_free_mb:
            raise Unavailable(
                "disk_full",
                "The box's storage is almost full, so no new sale "
                "can start. Finish open sales, then free space or call support.",
            )

    # -- views (state snapshots for the API) -------------------------------------------

    def open_sale_view(self, sale: Sale) -> dict[str, Any]:
        totals = self.till.totals(sale)
        due = totals.total + sale.rounding - sale.paid
        return {
            "sale_id": sale.sale_id,
            "status": "open",
            "shift_id": sale.shift_id,
            "cashier": sale.cashier,
            "opened_at": sale.opened_at,
            "currency": self.config.currency,
            "lines": [
                {
                    "line_id": li.line_id,
                    "sku": li.sku,
                    "name": li.name,
                    "unit": li.unit,
                    "quantity": str(li.quantity),
                    "unit_price": li.unit_price,
                    "catalog_price": li.catalog_price,
                    "tax_class": li.tax_class,
                    "discount": li.discount.to_data() if li.discount else None,
                    "override": None
                    if li.override is None
                    else {"unit_price": li.override.unit_price, "reason": li.override.reason},
                    "base": pl.base,
                    "discount_amount": pl.line_discount + pl.cart_discount,
                    "amount": pl.amount,
                    "tax": pl.tax,
                }
                for li, pl in ((li, totals.by_line[li.line_id]) for li in sale.lines.values())
            ],
            "cart_discount": sale.discount.to_data() if sale.discount else None,
            "subtotal": totals.subtotal,
            "discount": totals.discount,
            "taxes": [t.to_data() for t in totals.taxes],
            "tax": totals.tax,
            "total": totals.total,
            "paid": sale.paid,
            "due": max(due, 0),
            "cash_due": max(cash_round(due, self.config.cash_increment), 0),
            "payments": [p.to_data() for p in sale.payments],
            "customer": sale.customer,
        }

    def sale_view(self, sale_id: str, reader: Reader | None = None) -> dict[str, Any]:
        with self._lock:
            sale = self.till.state.sales.get(sale_id)
            if sale is not None:
                return self.open_sale_view(sale)
        reader = reader or self.reader
        assert reader is not None
        events = reader.sale_events(sale_id, SALE_DONE)
        done = [e for e in events if e["type"] in ("sale.completed", "sale.voided")]
        if not done:
            raise NotFound("unknown_sale", "No sale with that id is on this till.")
        first = done[0]
        view = dict(first["data"])
        view.pop("request", None)
        view["status"] = "completed" if first["type"] == "sale.completed" else "voided"
        view["at"] = first["at"]
        view["refunds"] = [
            {k: v for k, v in e["data"].items() if k != "request"} | {"at": e["at"]}
            for e in events
            if e["type"] == "sale.refunded"
        ]
        return view

    def completed_sale(
        self, sale_id: str, reader: Reader
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        events = reader.sale_events(sale_id, ("sale.completed", "sale.refunded"))
        if not events or events[0]["type"] != "sale.completed":
            raise NotFound(
                "unknown_sale",
                "No completed sale with that id is on this till. "
                "Scan the receipt's barcode to find it.",
            )
        return events[0]["data"], [e["data"] for e in events[1:]]

    def shift_view(self) -> dict[str, Any] | None:
        with self._lock:
            shift = self.till.state.shift
            if shift is None:
                return None
            return {
                "shift_id": shift.shift_id,
                "cashier": shift.cashier,
                "opened_at": shift.opened_at,
                "open_sales": len(self.till.state.sales),
                "report": shift.totals.to_data(),
            }

    def open_sale_ids(self) -> list[str]:
        with self._lock:
            return list(self.till.state.sales)

    def snapshot(self, read: Callable[[Till], T]) -> T:
        """Read the till's state from any thread without racing the writer's fold."""
        with self._lock:
            return read(self.till)


def _offer(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    if queue.full():
        # A stalled listener loses its oldest message, never blocks the writer.
        queue.get_nowait()
    queue.put_nowait(message)
