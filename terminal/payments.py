# Card payments over ZVT: a journaled state machine, power-cut recovery and end-of-day.
"""One worker thread owns the ``ZvtClient``; the journal writer records; the event loop waits.

Every card operation (a payment, a refund to card, a reversal) is journaled before each
step, so a power cut at any moment is recoverable without charging twice::

    payment.intent ─06 01─▶ payment.result_received ─ack─▶ sale.payment_added (+ completed)
          │                        │ declined, cancelled       (sale.refunded, payment.reversed)
          │                        ▼
          ├──── not booked ──▶ payment.failed
          └──── unclear ─────▶ payment.needs_review ─manager─▶ payment.resolved

An operation left unfinished (a crash, a lost link, a silent terminal) is settled by asking
the terminal for its last receipt (06 20) and comparing it with the journal (``judge``);
anything that does not match goes to a manager, never to an automatic second charge.
docs/payments.md describes the rules for integrators.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from drivers.zvt import (
    TOTALS_BRANDS,
    IntermediateStatus,
    Outcome,
    ResultCallback,
    SerialTransport,
    StatusCallback,
    StatusInformation,
    TcpTransport,
    ZvtClient,
    ZvtError,
    ZvtResult,
    ZvtTimeouts,
    ZvtTransport,
    classify,
    result_message,
    totals_brand,
)

from .config import TerminalConfig
from .journal import Reader
from .sale import Conflict, NotFound, SaleError, Till
from .sale.till import CardOp, Event
from .service import Request, TillService, Unavailable, new_id

log = logging.getLogger("tillbox.payments")

# Test-only: `TILLBOX_TEST_CRASH_AFTER=<step>[@<n>]` makes the daemon die like a power cut
# right after the n-th time (default: the first) it passes that step: a journal event type,
# or "payment.acknowledged" (the terminal's final message taken, its booking not yet
# journaled). Never set it on a till.
CRASH_ENV = "TILLBOX_TEST_CRASH_AFTER"
_passed: dict[str, int] = {}
NOTHING_TO_REPEAT = 0x83  # 06 20 answered "function not possible": no receipt to repeat
_PAYMENT_EVENTS = (
    "payment.intent",
    "payment.result_received",
    "payment.failed",
    "payment.needs_review",
    "payment.resolved",
    "payment.reversed",
    "sale.payment_added",
    "sale.refunded",
)
_NOT_BOOKED = {
    "payment": "The terminal did not book this payment: nothing was charged. Take payment again.",
    "refund": "The terminal did not book this refund: nothing was paid back. Try again.",
    "reversal": "The terminal did not reverse this payment. Try the void again.",
}
_UNCLEAR = (
    "It is not clear whether the terminal booked this. Check the terminal's last receipt, "
    "then ask a manager to record it as paid or not paid."
)


def crash_point(step: str) -> None:
    """Test-only: die as in a power cut right after ``step`` (see CRASH_ENV)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != step:
        return
    _passed[step] = _passed.get(step, 0) + 1
    if _passed[step] == int(nth or 1):
        log.warning("test crash after %s", wanted)
        os._exit(137)


# -- what the terminal says it booked, and the rules for matching it (pure) -----------------


@dataclass(frozen=True, slots=True)
class Booking:
    """The terminal's last booking as 06 20 repeats it; card data already masked."""

    receipt: int
    trace: int | None
    amount: int | None
    terminal_id: str | None
    card: dict[str, Any]

    @classmethod
    def of(cls, r: ZvtResult) -> Booking:
        assert r.receipt_number is not None
        return cls(r.receipt_number, r.trace_number, r.amount, r.terminal_id, card_of(r))

    def key(self) -> dict[str, Any]:
        return {"receipt": self.receipt, "trace": self.trace, "amount": self.amount}


@dataclass(frozen=True, slots=True)
class Seen:
    """The answer to "what did you book last?": a booking, none at all, or no clear answer."""

    kind: Literal["booking", "none", "unclear"]
    booking: Booking | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Literal["paid", "not_paid", "review"]
    reason: str
    message: str
    card: dict[str, Any] | None = None


def judge(op: CardOp, seen: Seen) -> Verdict:
    """Settle an unfinished operation from the terminal's last booking (docs/payments.md).

    Paid only on a match of receipt number, trace number, amount and terminal id; not paid
    only when the terminal's last booking is still the one it had before the intent.
    """
    term = op.intent.get("terminal") or {}
    known = "last" in term
    before = term.get("last")
    our_tid = term.get("terminal_id")
    result = op.result
    if result is not None and result["outcome"] != Outcome.APPROVED:
        return Verdict("not_paid", "terminal", result.get("message") or _NOT_BOOKED[op.kind])
    if seen.kind == "unclear":
        return Verdict("review", "terminal_unreachable", f"{_UNCLEAR} ({seen.detail})")
    if seen.kind == "none":
        if known and before is None:
            return Verdict("not_paid", "recovery", _NOT_BOOKED[op.kind])
        return Verdict("review", "mismatch", f"{_UNCLEAR} (the terminal shows no last receipt)")
    b = seen.booking
    assert b is not None
    same_terminal = our_tid is None or b.terminal_id is None or b.terminal_id == our_tid
    if (
        known
        and before is not None
        and (b.receipt, b.trace) == (before["receipt"], before["trace"])
    ):
        return Verdict("not_paid", "recovery", _NOT_BOOKED[op.kind])
    lines = b.card.get("receipt_lines", [])
    if result is not None:
        card = dict(result.get("card") or {})
        if (
            same_terminal
            and b.amount == op.amount
            and (b.receipt, b.trace) == (card.get("receipt"), card.get("trace"))
        ):
            card["receipt_lines"] = lines
            return Verdict("paid", "recovery", "Booked by the terminal.", card)
        return Verdict("review", "mismatch", f"{_UNCLEAR} (its last receipt is another one)")
    # Only the intent was journaled: the booking must be the very next one, for our amount.
    newer = before is None or b.receipt == term.get("expected_receipt")
    if known and same_terminal and b.amount == op.amount and newer:
        return Verdict("paid", "recovery", "Booked by the terminal.", dict(b.card))
    return Verdict("review", "mismatch", f"{_UNCLEAR} (its last receipt is another one)")


def card_of(r: ZvtResult) -> dict[str, Any]:
    """The masked card data of a result, as the sale's events keep it."""
    return {
        "brand": r.brand,
        "card_type": r.card_type,
        "batch_brand": totals_brand(r.card_type),
        "masked_pan": r.masked_pan,
        "auth_code": r.auth_code,
        "trace": r.trace_number,
        "receipt": r.receipt_number,
        "terminal_id": r.terminal_id,
        "offline": r.offline,
        "receipt_lines": list(r.receipt_lines),
    }


def _status_card(st: StatusInformation) -> dict[str, Any]:
    return {
        "brand": st.brand,
        "card_type": st.card_type,
        "batch_brand": totals_brand(st.card_type),
        "masked_pan": st.masked_pan,
        "auth_code": st.auth_code,
        "trace": st.trace_number,
        "receipt": st.receipt_number,
        "terminal_id": st.terminal_id,
        "offline": st.offline,
    }


def journal_tally(reader: Reader) -> dict[str, Any]:
    """The journal's side of an end-of-day: terminal bookings since the last settlement.

    Counted as a terminal counts its batch: a payment adds one and its amount, a refund one
    and minus its amount, a reversal takes its payment out again.
    """
    last = reader.last_of(["payment.batch_settled"])
    since = last["seq"] + 1 if last else 1
    slots = {name: [0, 0] for name in TOTALS_BRANDS}
    receipts: list[int] = []
    rows = reader.conn.execute(
        "SELECT type, data FROM events WHERE type IN "
        "('sale.payment_added', 'sale.refunded', 'payment.reversed') AND seq >= ? ORDER BY seq",
        (since,),
    )

    def count(card: Mapping[str, Any] | None, n: int, amount: int) -> None:
        if not card or card.get("receipt") is None:
            return  # keyed in by hand, not booked by this terminal
        slot = slots[totals_brand(card.get("card_type"))]
        slot[0] += n
        slot[1] += amount
        receipts.append(int(card["receipt"]))

    for type_, raw in rows:
        data = json.loads(raw)
        if type_ == "sale.payment_added" and data["method"] == "card":
            count(data.get("card"), 1, data["amount"])
        elif type_ == "payment.reversed":
            count(data.get("card"), -1, -data["amount"])
        elif type_ == "sale.refunded":
            for p in data["payments"]:
                count(p.get("card_refund"), 1, -p["amount"])
    return {
        "receipt_from": min(receipts, default=0),
        "receipt_to": max(receipts, default=0),
        "brands": [{"name": n, "count": c, "total": t} for n, (c, t) in slots.items()],
        "since_seq": since,
    }


# -- the worker ------------------------------------------------------------------------------


class _Unknown:
    """The terminal's last booking is not known (not asked yet, or an unclear answer)."""


UNKNOWN = _Unknown()


@dataclass
class _Job:
    run: Callable[[Future[Any]], None]
    done: Future[Any] = field(default_factory=Future)


class _NeedsTerminal(Exception):
    """Raised inside a refund decision that has a card part: nothing is written yet."""


class Payments:
    """Card operations through the ZVT terminal; the API calls in, one worker talks to it."""

    def __init__(self, config: TerminalConfig, service: TillService) -> None:
        self.config = config
        self.settings = config.payment
        self.service = service
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._client: ZvtClient | None = None
        self._registered = False
        self._terminal_id: str | None = None
        self._last: Booking | _Unknown | None = UNKNOWN
        self._live: dict[str, dict[str, Any]] = {}
        self._queued = 0
        self._recovering = False
        self._running: str | None = None
        self._abort_wanted: str | None = None
        self._by_key: dict[str, tuple[str, str]] = {}
        self._link_problem: str | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    # -- life cycle (the router's lifespan, inside the app's) ---------------------------

    @asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            await asyncio.to_thread(self.stop)

    def start(self) -> None:
        if not self.enabled:
            return
        if self.settings.log_frames:
            logging.getLogger("drivers.zvt").setLevel(logging.DEBUG)
        self._thread = threading.Thread(target=self._serve, name="card-terminal", daemon=True)
        self._thread.start()
        log.info("card terminal over %s: %s", self.settings.transport, self._where())

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None and (self._thread is None or not self._thread.is_alive()):
            self._client.close()

    def _where(self) -> str:
        s = self.settings
        return f"{s.host}:{s.port}" if s.transport == "tcp" else f"{s.device} at {s.baud} baud"

    # -- what the API asks (on the event loop) -------------------------------------------

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise Conflict(
                "payments_disabled",
                "Card payments through the terminal are switched off on this till "
                "([payment] enabled). Take the card on a standalone terminal and record it.",
            )

    async def _submit(self, run: Callable[[Future[Any]], None]) -> Any:
        self._check_enabled()
        with self._lock:
            if self._queued or self._recovering:
                raise Conflict(
                    "terminal_busy",
                    "The card terminal is busy with another card operation. Wait for it to "
                    "finish, then try again.",
                )
            self._queued += 1
        job = _Job(run)
        self._jobs.put(job)
        return await asyncio.wrap_future(job.done)

    def _replayed(self, key: str | None) -> tuple[int, dict[str, Any]] | None:
        if not key or key not in self._by_key:
            return None
        what, ident = self._by_key[key]
        if what == "void":
            return self._void_answer(ident)
        return 202, self.view(ident)

    async def pay(
        self, sale_id: str, amount: int | None, request: Request | None
    ) -> tuple[int, dict[str, Any]]:
        """Start a card payment; answers once its intent is journaled."""
        replay = self._replayed(request.key if request else None)
        if replay is not None:
            return replay
        payment_id = new_id()
        answer: tuple[int, dict[str, Any]] = await self._submit(
            lambda done: self._pay(done, sale_id, payment_id, amount, request)
        )
        return answer

    async def refund(
        self,
        sale_id: str,
        lines: Mapping[str, Decimal] | None,
        reason: str,
        user: str,
        approved_by: str,
        request: Request | None,
    ) -> tuple[int, dict[str, Any]]:
        """A refund to the original tenders: its card part goes back through the terminal."""
        replay = self._replayed(request.key if request else None)
        if replay is not None:
            return replay
        refund_id = new_id()
        service = self.service

        def plain(till: Till) -> list[Event]:
            original, refunds = service.completed_sale(sale_id, service.read_in_writer())
            events = till.refund(
                original, refunds, refund_id, lines, "original", reason, user, approved_by
            )
            if any(p["method"] == "card" for p in events[0][1]["payments"]):
                raise _NeedsTerminal
            return events

        try:
            return 201, await service.write(plain, self._sale_answer(sale_id), request)
        except _NeedsTerminal:
            pass
        payment_id = new_id()
        answer: tuple[int, dict[str, Any]] = await self._submit(
            lambda done: self._refund(
                done, sale_id, refund_id, payment_id, lines, reason, user, approved_by, request
            )
        )
        return answer

    def reverses(self, sale_id: str) -> bool:
        """Whether voiding this sale means reversing card payments on the terminal first."""
        if not self.enabled:
            return False
        try:
            view = self.service.sale_view(sale_id)
        except NotFound:
            return False  # the void answers as for any sale that is not open
        return view["status"] == "open" and any(p["method"] == "card" for p in view["payments"])

    async def void(
        self, sale_id: str, reason: str, user: str, approved_by: str, request: Request | None
    ) -> tuple[int, dict[str, Any]]:
        """Reverse each card payment of an open sale (06 30), then void it."""
        replay = self._replayed(request.key if request else None)
        if replay is not None:
            return replay
        view = self.service.sale_view(sale_id)
        cards = [p for p in view.get("payments", []) if p["method"] == "card"]
        for p in cards:
            if not str((p.get("card") or {}).get("receipt", "")).isdigit():
                raise Conflict(
                    "no_card_receipt",
                    "This card payment has no terminal receipt number, so the terminal cannot "
                    "reverse it. Complete the sale and refund it instead.",
                )
        plan = [(new_id(), p["payment_id"]) for p in cards]
        answer: tuple[int, dict[str, Any]] = await self._submit(
            lambda done: self._void(done, sale_id, plan, reason, user, approved_by, request)
        )
        return answer

    def abort(self, payment_id: str) -> dict[str, Any]:
        """Ask the terminal to stop the running operation (06 B0); it decides if it still can."""
        live = self.view(payment_id)
        if live["state"] not in ("started", "in_progress"):
            raise Conflict(
                "payment_not_running",
                "That card payment is not running any more, so there is nothing to abort.",
            )
        self._abort_wanted = payment_id  # sent with the next status if not running yet
        if self._running == payment_id and self._client is not None:
            self._client.request_abort()
        return {"payment_id": payment_id, "abort_requested": True}

    async def resolve(
        self,
        payment_id: str,
        decision: str,
        card: Mapping[str, Any] | None,
        note: str,
        approved_by: str,
        request: Request | None,
    ) -> dict[str, Any]:
        """Record a manager's decision on a payment in review; `paid` needs the receipt data."""
        service = self.service
        seed = self.view(payment_id)

        def decide(till: Till) -> list[Event]:
            op = till.card_op(payment_id)
            given = None
            if card is not None:
                base = (op.result or {}).get("card") or (op.review or {}).get("terminal") or {}
                given = {k: v for k, v in base.items() if k != "amount"} | dict(card)
            original, refunds = self._original(op)
            return till.resolve_card_op(
                payment_id, decision, approved_by, note, given, original, refunds
            )

        await service.write(decide, lambda envs: envs, request)
        crash_point("payment.resolved")
        with self._lock:
            self._live.setdefault(payment_id, seed)
        self._last = UNKNOWN  # the manager read the terminal; ask it again before the next
        self._set(payment_id, "resolved", decision=decision)
        log.info("card operation %s resolved by a manager: %s", payment_id, decision)
        return self.view(payment_id)

    async def end_of_day(self, approved_by: str) -> dict[str, Any]:
        """Close the terminal's batch (06 50) and compare it with the journal."""
        answer: dict[str, Any] = await self._submit(
            lambda done: self._end_of_day(done, approved_by)
        )
        return answer

    # -- views ---------------------------------------------------------------------------

    def view(self, payment_id: str) -> dict[str, Any]:
        with self._lock:
            live = self._live.get(payment_id)
            if live is not None:
                return dict(live)
        op = self.service.snapshot(lambda t: t.state.card_ops.get(payment_id))
        if op is not None:
            return _op_view(op)
        reader = self.service.reader
        assert reader is not None
        found = _journal_view(reader, payment_id)
        if found is None:
            raise NotFound("unknown_payment", "No card payment with that id is on this till.")
        return found

    def review(self) -> list[dict[str, Any]]:
        ops = self.service.snapshot(
            lambda t: [op for op in t.state.card_ops.values() if op.state == "needs_review"]
        )
        return [_op_view(op) for op in ops]

    def _sale_answer(self, sale_id: str) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        return lambda _envs: self.service.sale_view(sale_id, self.service.read_in_writer())

    def _void_answer(self, sale_id: str) -> tuple[int, dict[str, Any]]:
        view = self.service.sale_view(sale_id)
        if view["status"] == "voided":
            return 200, view
        with self._lock:
            ops = [dict(v) for v in self._live.values() if v.get("void_of") == sale_id]
        return 202, {"sale_id": sale_id, "state": "reversing", "reversals": ops}

    def _set(self, payment_id: str, state: str, refresh: bool = False, **fields: Any) -> None:
        """Note a step of an operation and push it on the event stream.

        `refresh` rebuilds the view from the journaled operation first.
        """
        with self._lock:
            old = self._live.get(payment_id)
            view = None if refresh else old
            if view is None:
                op = self.service.snapshot(lambda t: t.state.card_ops.get(payment_id))
                view = _op_view(op) if op is not None else {"payment_id": payment_id}
                if old is not None and "void_of" in old:
                    view["void_of"] = old["void_of"]
                self._live[payment_id] = view
            view.update(state=state, **fields)
            message = {
                "type": "payment",
                "payment_id": payment_id,
                "sale_id": view.get("sale_id"),
                "kind": view.get("kind"),
                "state": state,
                "text": view.get("text"),
                "message": view.get("message"),
            }
        self.service.publish(message)

    # -- the worker thread ---------------------------------------------------------------

    def _serve(self) -> None:
        self._sweep()
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=self.settings.retry_s)
            except queue.Empty:
                self._sweep()
                continue
            if job is None:
                break
            try:
                job.run(job.done)
            except Exception as err:
                if job.done.done():
                    log.exception("card operation failed after it was accepted")
                else:
                    job.done.set_exception(err)
            finally:
                with self._lock:
                    self._queued -= 1
            self._sweep()

    def _sweep(self) -> None:
        """Settle operations left unfinished: after a restart, or a final write that failed."""
        ops = self.service.snapshot(
            lambda t: [
                op.payment_id for op in t.state.card_ops.values() if op.state != "needs_review"
            ]
        )
        if not ops:
            return
        with self._lock:
            self._recovering = True
        try:
            for payment_id in ops:
                if self._stop.is_set():
                    return
                try:
                    self._recover(payment_id)
                except (SaleError, Unavailable) as err:
                    log.error("card operation %s could not be settled yet: %s", payment_id, err)
                except Exception:
                    log.exception("card operation %s: settling it failed", payment_id)
        finally:
            with self._lock:
                self._recovering = False

    def _new_client(self) -> ZvtClient:
        s = self.settings
        timeouts = ZvtTimeouts(
            t1=s.byte_timeout_s,
            t2=s.ack_timeout_s,
            t3=s.answer_timeout_s,
            t4=s.completion_timeout_s,
        )
        transport: ZvtTransport
        if s.transport == "tcp":
            transport = TcpTransport(s.host, s.port, timeouts, s.connect_timeout_s)
        else:
            transport = SerialTransport(s.device, s.baud, timeouts)
        return ZvtClient(transport, password=s.password, currency=s.currency_code)

    def _connected(self) -> ZvtClient:
        """The client, registered with the terminal; Unavailable when it cannot be reached."""
        if self._client is None:
            self._client = self._new_client()
        client = self._client
        if self._registered and client.transport.is_open:
            return client
        try:
            registration = client.connect()
        except ZvtError as err:
            client.close()
            self._registered = False
            if self._link_problem is None:
                log.warning("card terminal at %s not reachable: %s", self._where(), err)
            self._link_problem = str(err)
            raise Unavailable(
                "terminal_unavailable",
                "The card terminal cannot be reached. Check that it is on and its cable or "
                "network, then try again, or take another payment method.",
            ) from err
        if self._link_problem is not None:
            log.info("card terminal reachable again")
            self._link_problem = None
        self._registered = True
        self._terminal_id = registration.terminal_id or self._terminal_id
        return client

    def _ask_last(self, patience: float) -> Seen:
        """Repeat last receipt (06 20) until there is a clear answer or patience runs out."""
        deadline = time.monotonic() + patience
        detail = "no answer"
        while True:
            try:
                r = self._connected().repeat_last_receipt()
                if r.approved and r.receipt_number is not None:
                    return Seen("booking", Booking.of(r))
                if r.result_code == NOTHING_TO_REPEAT and not r.refused and not r.needs_recovery:
                    return Seen("none")
                detail = f"the terminal answered: {r.message}"
                if r.needs_recovery:
                    self._registered = False
            except (ZvtError, Unavailable) as err:
                detail = f"the terminal cannot be reached: {err}"
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.wait(min(self.settings.retry_s, left)):
                return Seen("unclear", detail=detail)

    def _ready(self) -> dict[str, Any]:
        """Connect, learn the terminal's last booking, and describe both for the intent."""
        self._connected()
        if isinstance(self._last, _Unknown):
            seen = self._ask_last(self.settings.answer_timeout_s)
            if seen.kind == "unclear":
                raise Unavailable(
                    "terminal_unavailable",
                    "The card terminal did not say what it booked last, so no payment can "
                    "start safely. Check the terminal, then try again.",
                )
            self._last = seen.booking
        last = self._last
        return {
            "terminal_id": self._terminal_id,
            "last": None if last is None else last.key(),
            "expected_receipt": None if last is None else last.receipt % 9999 + 1,
        }

    def _intent(self, decide: Callable[[Till], list[Event]], request: Request | None) -> Any:
        envs: list[dict[str, Any]] = self.service.write_blocking(decide, lambda e: e, request)
        return envs

    def _pay(
        self,
        done: Future[Any],
        sale_id: str,
        payment_id: str,
        amount: int | None,
        request: Request | None,
    ) -> None:
        terminal = self._ready()
        envs = self._intent(
            lambda t: t.card_payment_intent(sale_id, payment_id, amount, terminal), request
        )
        first = envs[0]["data"]["payment_id"]
        if request is not None:
            self._by_key[request.key] = ("payment", first)
        if first != payment_id:  # a retried request: answer as the first time, do nothing
            done.set_result((202, self.view(first)))
            return
        self._set(payment_id, "started")
        done.set_result((202, self.view(payment_id)))
        log.info("card payment %s: %d on sale %s", payment_id, envs[0]["data"]["amount"], sale_id)
        crash_point("payment.intent")
        self._drive(payment_id, self._command("authorise", envs[0]["data"]["amount"]))

    def _refund(
        self,
        done: Future[Any],
        sale_id: str,
        refund_id: str,
        payment_id: str,
        lines: Mapping[str, Decimal] | None,
        reason: str,
        user: str,
        approved_by: str,
        request: Request | None,
    ) -> None:
        terminal = self._ready()
        service = self.service

        def decide(till: Till) -> list[Event]:
            original, refunds = service.completed_sale(sale_id, service.read_in_writer())
            return till.card_refund_intent(
                original,
                refunds,
                refund_id,
                payment_id,
                lines,
                reason,
                user,
                approved_by,
                terminal,
            )

        envs = self._intent(decide, request)
        first = envs[0]["data"]
        if envs[0]["type"] != "payment.intent":  # no card part after all
            done.set_result((201, service.sale_view(sale_id)))
            return
        if request is not None:
            self._by_key[request.key] = ("payment", first["payment_id"])
        if first["payment_id"] != payment_id:
            done.set_result((202, self.view(first["payment_id"])))
            return
        self._set(payment_id, "started")
        done.set_result((202, self.view(payment_id)))
        log.info("card refund %s: %d for sale %s", payment_id, first["amount"], sale_id)
        crash_point("payment.intent")
        self._drive(payment_id, self._command("refund", first["amount"]))

    def _void(
        self,
        done: Future[Any],
        sale_id: str,
        plan: list[tuple[str, str]],
        reason: str,
        user: str,
        approved_by: str,
        request: Request | None,
    ) -> None:
        if request is not None:
            self._by_key[request.key] = ("void", sale_id)
        for n, (payment_id, original_payment_id) in enumerate(plan):
            try:
                envs = self._reversal_intent(sale_id, payment_id, original_payment_id)
            except (SaleError, Unavailable):
                if n == 0:
                    self._by_key.pop(request.key if request else "", None)
                    raise
                log.exception("void of sale %s stopped before reversal %d", sale_id, n + 1)
                return
            self._set(payment_id, "started", void_of=sale_id)
            if n == 0:
                done.set_result(self._void_answer(sale_id))
            data = envs[0]["data"]
            receipt, amount = int(data["reversal"]["receipt"]), data["amount"]
            log.info("card reversal %s: receipt %d on sale %s", payment_id, receipt, sale_id)
            crash_point("payment.intent")
            if not self._drive(payment_id, self._command("reverse", (receipt, amount))):
                return  # the sale stays open; that reversal's view says why
        if not done.done():
            done.set_result(self._void_answer(sale_id))
        self.service.write_blocking(
            lambda t: t.void(sale_id, reason, user, approved_by), lambda e: e, request
        )
        log.info("sale %s voided after %d card reversal(s)", sale_id, len(plan))

    def _reversal_intent(
        self, sale_id: str, payment_id: str, original_payment_id: str
    ) -> list[dict[str, Any]]:
        terminal = self._ready()
        envs: list[dict[str, Any]] = self._intent(
            lambda t: t.card_reversal_intent(sale_id, payment_id, original_payment_id, terminal),
            None,
        )
        return envs

    def _command(
        self, command: str, arg: Any
    ) -> Callable[[StatusCallback, ResultCallback], ZvtResult]:
        """The driver call for an operation whose intent is journaled."""

        def call(on_status: StatusCallback, on_result: ResultCallback) -> ZvtResult:
            try:
                client = self._connected()
            except Unavailable as err:
                raise ZvtError("the terminal cannot be reached") from err
            if command == "authorise":
                return client.authorise(arg, on_status=on_status, on_result=on_result)
            if command == "refund":
                return client.refund(arg, on_status=on_status, on_result=on_result)
            receipt, amount = arg
            return client.reverse(receipt, amount, on_status=on_status, on_result=on_result)

        return call

    def _drive(
        self, payment_id: str, command: Callable[[StatusCallback, ResultCallback], ZvtResult]
    ) -> bool:
        """Send the journaled command and see it to a journaled end; True when booked."""

        def on_status(status: IntermediateStatus) -> None:
            if self._abort_wanted == payment_id and self._client is not None:
                self._client.request_abort()
            self._set(payment_id, "in_progress", text=status.text)

        def on_result(info: StatusInformation) -> None:
            # Journaled before the terminal gets our acknowledgement; if this raises, the
            # driver refuses the result and the terminal reverses the payment itself.
            code = info.result_code
            outcome = classify(code) if code is not None else Outcome.APPROVED
            result = {
                "outcome": str(outcome),
                "result_code": code,
                "message": result_message(code if code is not None else 0),
                "amount": info.amount,
                "card": _status_card(info),
            }
            self.service.write_blocking(lambda t: t.card_result(payment_id, result), lambda e: e)
            crash_point("payment.result_received")
            self._set(
                payment_id,
                "result_received",
                outcome=str(outcome),
                result_code=code,
                card=result["card"],
            )

        self._running = payment_id
        try:
            result = command(on_status, on_result)
        except ZvtError as err:
            # The driver raises only while the command has not reached the terminal.
            self._registered = False
            log.warning("card operation %s did not reach the terminal: %s", payment_id, err)
            self._fail(
                payment_id,
                "error",
                None,
                "The command did not reach the card terminal, so nothing was charged. Check "
                "the terminal and its cable or network, then try again.",
                "link",
            )
            return False
        finally:
            self._running = None
            self._abort_wanted = None
        amount = self.service.snapshot(lambda t: t.state.card_ops[payment_id].amount)
        if result.approved and result.amount in (None, amount):
            crash_point("payment.acknowledged")
            if result.receipt_number is not None:
                self._last = Booking.of(result)
            return self._book(payment_id, card_of(result))
        if result.needs_recovery or result.approved:
            self._registered = False
            return self._recover(payment_id, cause=result.message.split(". ")[0].rstrip(".") + ".")
        self._fail(payment_id, str(result.outcome), result.result_code, result.message, "terminal")
        return False

    def _original(self, op: CardOp) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """A refund's original sale and its earlier refunds (read in the writer)."""
        if op.kind != "refund":
            return None, []
        return self.service.completed_sale(op.sale_id, self.service.read_in_writer())

    def _book(self, payment_id: str, card: Mapping[str, Any]) -> bool:
        """Journal what the terminal booked: the sale paid, the refund or the reversal."""

        def decide(till: Till) -> list[Event]:
            original, refunds = self._original(till.card_op(payment_id))
            return till.card_done(payment_id, card, original, refunds)

        try:
            envs: list[dict[str, Any]] = self.service.write_blocking(decide, lambda e: e)
        except Unavailable as err:
            # The terminal booked it; the sweep records it once the journal takes writes.
            log.error("card operation %s booked but not recorded yet: %s", payment_id, err)
            self._set(payment_id, "recovering", message=err.message)
            return False
        except SaleError as err:
            self._review(payment_id, "cannot_record", err.message, None)
            return False
        crash_point(envs[0]["type"])
        completed = any(e["type"] == "sale.completed" for e in envs)
        shown = {k: v for k, v in card.items() if k != "receipt_lines"}
        self._set(payment_id, "approved", message="Approved.", card=shown, completed=completed)
        log.info("card operation %s booked (receipt %s)", payment_id, card.get("receipt"))
        return True

    def _fail(
        self, payment_id: str, outcome: str, code: int | None, message: str, reason: str
    ) -> None:
        self.service.write_blocking(
            lambda t: t.card_failed(payment_id, outcome, code, message, reason), lambda e: e
        )
        crash_point("payment.failed")
        self._set(payment_id, "failed", outcome=outcome, result_code=code, message=message)
        log.info("card operation %s not booked: %s (%s)", payment_id, outcome, reason)

    def _review(
        self, payment_id: str, reason: str, message: str, seen: Mapping[str, Any] | None
    ) -> None:
        self.service.write_blocking(
            lambda t: t.card_needs_review(payment_id, reason, message, seen), lambda e: e
        )
        crash_point("payment.needs_review")
        self._set(payment_id, "needs_review", refresh=True)
        log.warning("card operation %s needs a manager: %s", payment_id, reason)

    def _recover(self, payment_id: str, cause: str = "") -> bool:
        """Settle an unfinished operation from the terminal's last receipt; True when booked.

        `cause` is what went wrong, for the cashier, when it happened during this run.
        """
        self._set(payment_id, "recovering", text=None)
        op = self.service.snapshot(lambda t: t.state.card_ops.get(payment_id))
        if op is None:
            return False
        needs_terminal = op.result is None or op.result["outcome"] == Outcome.APPROVED
        seen = self._ask_last(self.settings.recovery_timeout_s) if needs_terminal else Seen("none")
        if seen.kind == "booking":
            self._last = seen.booking
        elif seen.kind == "none" and needs_terminal:
            self._last = None
        else:
            self._last = UNKNOWN
        verdict = judge(op, seen)
        log.info(
            "card operation %s recovered: %s (%s)", payment_id, verdict.decision, verdict.reason
        )
        if verdict.decision == "paid":
            assert verdict.card is not None
            return self._book(payment_id, verdict.card)
        if verdict.decision == "not_paid":
            outcome = op.result["outcome"] if op.result else "not_booked"
            code = op.result.get("result_code") if op.result else None
            message = f"{cause} {verdict.message}".strip()
            self._fail(payment_id, outcome, code, message, verdict.reason)
            return False
        booking = seen.booking
        shown = None if booking is None else booking.card | {"amount": booking.amount}
        self._review(payment_id, verdict.reason, verdict.message, shown)
        return False

    def _end_of_day(self, done: Future[Any], approved_by: str) -> None:
        pending = self.service.snapshot(lambda t: len(t.state.card_ops))
        if pending:
            raise Conflict(
                "card_ops_pending",
                f"{pending} card payment(s) are unfinished or wait for a manager's decision. "
                "Finish or resolve them first.",
            )
        client = self._connected()
        result = client.end_of_day()
        if not result.approved or result.totals is None:
            if result.needs_recovery:
                self._registered = False
            raise Conflict(
                "end_of_day_failed", f"The terminal's end-of-day failed: {result.message}"
            )
        totals = result.totals
        terminal = {
            "terminal_id": result.terminal_id or self._terminal_id,
            "receipt_from": totals.receipt_from,
            "receipt_to": totals.receipt_to,
            "brands": [{"name": b.name, "count": b.count, "total": b.total} for b in totals.brands],
        }
        settlement_id = new_id()
        service = self.service
        envs = service.write_blocking(
            lambda t: t.settle_batch(
                settlement_id, terminal, journal_tally(service.read_in_writer()), approved_by
            ),
            lambda e: e,
        )
        crash_point("payment.batch_settled")
        data = envs[0]["data"]
        log.info(
            "end-of-day %s: %s", settlement_id, "balanced" if data["balanced"] else "DIFFERENCES"
        )
        done.set_result(self.settlement_view(data))

    def settlement_view(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The settlement as journaled, with a plain-language `summary`."""
        money = self.config.minor_units

        def fmt(amount: int) -> str:
            sign = "-" if amount < 0 else ""
            whole, part = divmod(abs(amount), 10**money)
            return f"{sign}{whole}.{part:0{money}d}" if money else f"{sign}{whole}"

        t_count = sum(b["count"] for b in data["terminal"]["brands"])
        t_total = sum(b["total"] for b in data["terminal"]["brands"])
        if data["balanced"]:
            summary = (
                f"Balanced: the terminal and the till agree on {t_count} card booking(s), "
                f"{fmt(t_total)} {data['currency']}."
            )
        else:
            parts = [
                f"{d['brand']}: terminal {d['terminal']['count']} for "
                f"{fmt(d['terminal']['total'])}, till {d['journal']['count']} for "
                f"{fmt(d['journal']['total'])} (difference {d['count']:+d}, "
                f"{fmt(d['total'])})"
                for d in data["differences"]
            ]
            if not data["receipts_match"]:
                t, j = data["terminal"], data["journal"]
                parts.append(
                    f"receipt numbers: terminal {t['receipt_from']}-{t['receipt_to']}, "
                    f"till {j['receipt_from']}-{j['receipt_to']}"
                )
            summary = "Differences: " + "; ".join(parts) + "."
        return dict(data) | {"summary": summary}


def _op_view(op: CardOp) -> dict[str, Any]:
    """An unfinished operation as the journal has it."""
    result = op.result or {}
    review = op.review or {}
    return {
        "payment_id": op.payment_id,
        "kind": op.kind,
        "sale_id": op.sale_id,
        "amount": op.amount,
        "currency": op.intent.get("currency"),
        "state": op.state,
        "text": None,
        "outcome": result.get("outcome"),
        "result_code": result.get("result_code"),
        "message": review.get("message") or result.get("message"),
        "card": result.get("card"),
        "review": None
        if not review
        else {
            "reason": review.get("reason"),
            "terminal": review.get("terminal"),
            "expected": op.intent.get("terminal"),
        },
    }


def _journal_view(reader: Reader, payment_id: str) -> dict[str, Any] | None:
    """A finished operation, rebuilt from its journal events."""
    marks = ",".join("?" * len(_PAYMENT_EVENTS))
    rows = reader.conn.execute(
        f"SELECT type, data FROM events WHERE type IN ({marks}) AND "
        "(json_extract(data, '$.payment_id') = ? OR json_extract(data, '$.payment_op') = ?) "
        "ORDER BY seq",
        (*_PAYMENT_EVENTS, payment_id, payment_id),
    )
    view: dict[str, Any] | None = None
    for type_, raw in rows:
        data = json.loads(raw)
        if type_ == "payment.intent":
            op = CardOp(payment_id, data["kind"], data["sale_id"], data["amount"], data)
            view = _op_view(op)
        elif view is None:
            continue
        elif type_ == "payment.result_received":
            view.update(state="result_received", outcome=data["outcome"], card=data.get("card"))
            view.update(result_code=data.get("result_code"), message=data.get("message"))
        elif type_ in ("payment.failed", "payment.needs_review"):
            view.update(state=type_.split(".")[1], message=data["message"])
            if type_ == "payment.failed":
                view.update(outcome=data["outcome"], result_code=data["result_code"])
        elif type_ == "payment.resolved":
            view.update(state="resolved", decision=data["decision"])
        elif view["state"] != "resolved":
            view.update(state="approved", message="Approved.")
    return view
