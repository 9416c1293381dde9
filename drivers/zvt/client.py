# ZVT client: runs one ECR command to its end and returns a typed, log-safe result.
"""``ZvtClient`` is synchronous and runs one command at a time.

Exceptions are raised only while the command has not reached the terminal (the
link cannot be opened, the frame is refused or never acknowledged): then nothing
happened and the caller may simply try again. Once the terminal has the command,
every ending is a ``ZvtResult``; timeouts and lost links come back with
``needs_recovery`` set, to be resolved with ``repeat_last_receipt`` and never by
charging again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType

from .codes import (
    CONNECTION_MESSAGE,
    PROTOCOL_MESSAGE,
    RECORD_MESSAGE,
    TERMINAL_STATUS,
    TIMEOUT_MESSAGE,
    Outcome,
    classify,
    result_message,
)
from .errors import (
    ZvtConnectionError,
    ZvtError,
    ZvtParseError,
    ZvtProtocolError,
    ZvtTimeoutError,
)
from .messages import (
    CONFIG_ECR_PRINTS,
    DEFAULT_PASSWORD,
    DEFAULT_PERMITTED,
    EUR,
    Ack,
    Completion,
    IntermediateStatus,
    OtherMessage,
    PrintLine,
    PtAbort,
    StatusInformation,
    TextBlock,
    TurnoverTotals,
    build_abort,
    build_ack,
    build_authorisation,
    build_end_of_day,
    build_negative_ack,
    build_refund,
    build_registration,
    build_repeat_receipt,
    build_reversal,
    build_status_enquiry,
    build_turnover_totals,
    encode_currency,
    encode_password,
    parse_message,
)
from .transport import ZvtTransport

log = logging.getLogger("drivers.zvt")

StatusCallback = Callable[[IntermediateStatus], None]
# Called with the terminal's result (04 0F) before it is acknowledged; raising refuses it.
ResultCallback = Callable[[StatusInformation], None]

# Read Card hands out card data; Tillbox must never ask for it (DESIGN.md section 6).
FORBIDDEN_COMMANDS = frozenset({(0x06, 0xC0)})
_ABORT_POLL = 0.1


class Command(StrEnum):
    REGISTRATION = "registration"
    AUTHORISATION = "authorisation"
    REVERSAL = "reversal"
    REFUND = "refund"
    END_OF_DAY = "end_of_day"
    TURNOVER_TOTALS = "turnover_totals"
    REPEAT_RECEIPT = "repeat_receipt"
    STATUS_ENQUIRY = "status_enquiry"


# Commands that move money: an unclear ending must be resolved before the next try.
MONEY_COMMANDS = frozenset({Command.AUTHORISATION, Command.REVERSAL, Command.REFUND})


@dataclass(frozen=True, slots=True)
class ZvtResult:
    """How one command ended. Amounts are int minor units; the PAN is always masked."""

    command: Command
    outcome: Outcome
    result_code: int | None
    message: str
    amount: int | None = None
    masked_pan: str | None = None
    brand: str | None = None
    card_type: int | None = None
    auth_code: str | None = None
    trace_number: int | None = None
    receipt_number: int | None = None
    terminal_id: str | None = None
    txn_date: str | None = None  # MMDD as the terminal sent it
    txn_time: str | None = None  # HHMMSS
    offline: bool = False
    receipt_lines: tuple[str, ...] = ()
    totals: TurnoverTotals | None = None
    terminal_status: int | None = None
    sw_version: str | None = None
    needs_recovery: bool = False
    refused: bool = False  # the terminal answered 84 xx: it did not take the command

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVED


@dataclass
class _Exchange:
    """What one command has gathered so far."""

    command: Command
    status: StatusInformation | None = None
    status_unreadable: bool = False
    status_refused: bool = False  # our result callback failed, so we refused the result
    completion: Completion | None = None
    abort: PtAbort | None = None
    refused: Ack | None = None
    lines: list[str] = field(default_factory=list)


class ZvtClient:
    """ECR side of ZVT over any ``ZvtTransport``; one command at a time."""

    def __init__(
        self,
        transport: ZvtTransport,
        *,
        password: str = DEFAULT_PASSWORD,
        currency: int = EUR,
        config_byte: int = CONFIG_ECR_PRINTS,
        line_width: int | None = None,
        text_blocks: bool = False,
        on_status: StatusCallback | None = None,
    ) -> None:
        # Bad settings fail here, when the till starts, not in the middle of a sale.
        encode_password(password)
        encode_currency(currency)
        if not 0 <= config_byte <= 0xFF:
            raise ValueError(f"config_byte {config_byte!r} is not a byte")
        if line_width is not None and not 1 <= line_width <= 99:
            raise ValueError(f"line_width {line_width!r} must be 1..99")
        self.transport = transport
        self.password = password
        self.currency = currency
        self.config_byte = config_byte
        self.line_width = line_width
        self.text_blocks = text_blocks
        self.on_status = on_status
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._running = False

    # --- life cycle -----------------------------------------------------------

    def connect(self) -> ZvtResult:
        """Open the link and register; raises ZvtError if the terminal refuses us."""
        self.transport.ensure_open()
        result = self.register()
        if not result.approved:
            raise ZvtProtocolError(f"registration failed: {result.message}")
        return result

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> ZvtClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- commands ---------------------------------------------------------------

    def register(self) -> ZvtResult:
        permitted = tuple(c for c in DEFAULT_PERMITTED if self.text_blocks or c != (0x06, 0xD3))
        apdu = build_registration(
            self.password,
            self.config_byte,
            self.currency,
            permitted_commands=permitted,
            line_width=self.line_width,
        )
        return self._run(Command.REGISTRATION, apdu, None)

    def authorise(
        self,
        amount: int,
        on_status: StatusCallback | None = None,
        on_result: ResultCallback | None = None,
    ) -> ZvtResult:
        """Take a card payment of ``amount`` minor units.

        ``on_result`` sees the result before the terminal gets our acknowledgement, so the
        caller can record it first; if it raises, the result is refused and the terminal
        reverses the payment itself.
        """
        apdu = build_authorisation(amount, self.currency)
        return self._run(Command.AUTHORISATION, apdu, on_status, on_result)

    def reverse(
        self,
        receipt_number: int,
        amount: int | None = None,
        on_status: StatusCallback | None = None,
        on_result: ResultCallback | None = None,
    ) -> ZvtResult:
        """Void a payment of the open batch by its terminal receipt number."""
        apdu = build_reversal(receipt_number, self.password, amount, self.currency)
        return self._run(Command.REVERSAL, apdu, on_status, on_result)

    def refund(
        self,
        amount: int,
        on_status: StatusCallback | None = None,
        on_result: ResultCallback | None = None,
    ) -> ZvtResult:
        apdu = build_refund(amount, self.password, self.currency)
        return self._run(Command.REFUND, apdu, on_status, on_result)

    def end_of_day(self, on_status: StatusCallback | None = None) -> ZvtResult:
        """Close the batch; the result carries per-brand totals and the receipt range."""
        return self._run(Command.END_OF_DAY, build_end_of_day(self.password), on_status)

    def turnover_totals(self, on_status: StatusCallback | None = None) -> ZvtResult:
        """The end-of-day totals without closing the batch."""
        return self._run(Command.TURNOVER_TOTALS, build_turnover_totals(self.password), on_status)

    def repeat_last_receipt(self, on_status: StatusCallback | None = None) -> ZvtResult:
        """What the terminal last booked: the recovery step after an unclear ending."""
        return self._run(Command.REPEAT_RECEIPT, build_repeat_receipt(self.password), on_status)

    def status_enquiry(self) -> ZvtResult:
        return self._run(Command.STATUS_ENQUIRY, build_status_enquiry(), None)

    def request_abort(self) -> bool:
        """Ask the running command to stop (06 B0); safe from another thread.

        Returns False when nothing runs. The terminal decides whether it can still
        stop; the command's result says what really happened.
        """
        if not self._running:
            return False
        self._abort.set()
        return True

    # --- the conversation -------------------------------------------------------

    def _send(self, apdu: bytes) -> None:
        if (apdu[0], apdu[1]) in FORBIDDEN_COMMANDS:
            raise ZvtProtocolError("Read Card (06 C0) is never sent: it exposes card data")
        self.transport.send_apdu(apdu)

    def _run(
        self,
        command: Command,
        apdu: bytes,
        on_status: StatusCallback | None,
        on_result: ResultCallback | None = None,
    ) -> ZvtResult:
        with self._lock:
            self._abort.clear()
            self._running = True
            try:
                return self._run_locked(command, apdu, on_status or self.on_status, on_result)
            finally:
                self._running = False

    def _run_locked(
        self,
        command: Command,
        apdu: bytes,
        on_status: StatusCallback | None,
        on_result: ResultCallback | None,
    ) -> ZvtResult:
        log.info("zvt: %s starts", command)
        try:
            self.transport.ensure_open()
            self.transport.discard_input()
            self._send(apdu)
        except ZvtError:
            # Nothing reached the terminal; a fresh link next time is the cheapest fix.
            self.transport.close()
            raise
        exchange = _Exchange(command)
        try:
            self._converse(exchange, on_status, on_result)
        except ZvtTimeoutError as err:
            log.warning("zvt: %s timed out: %s", command, err)
            return self._failed(exchange, Outcome.TIMEOUT, TIMEOUT_MESSAGE)
        except ZvtConnectionError as err:
            log.warning("zvt: %s lost the link: %s", command, err)
            return self._failed(exchange, Outcome.ERROR, CONNECTION_MESSAGE)
        except ZvtProtocolError as err:
            log.warning("zvt: %s protocol error: %s", command, err)
            return self._failed(exchange, Outcome.ERROR, PROTOCOL_MESSAGE)
        result = self._finish(exchange)
        log.info(
            "zvt: %s ended %s (code %s)",
            command,
            result.outcome,
            "-" if result.result_code is None else f"{result.result_code:02X}",
        )
        if result.needs_recovery:
            self.transport.close()
        return result

    def _reply(self, apdu: bytes) -> None:
        self.transport.send_apdu(apdu)

    def _receive(self, deadline: float) -> bytes:
        """Next APDU before ``deadline``, sending a pending abort request while waiting."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZvtTimeoutError("terminal went silent")
            if self._abort.is_set():
                self._abort.clear()
                log.info("zvt: sending abort")
                self._send(build_abort())
            try:
                return self.transport.receive_apdu(min(remaining, _ABORT_POLL))
            except ZvtTimeoutError:
                continue

    def _converse(
        self, ex: _Exchange, on_status: StatusCallback | None, on_result: ResultCallback | None
    ) -> None:
        t = self.transport.timeouts
        deadline = time.monotonic() + t.t3
        accepted = False
        while True:
            raw = self._receive(deadline)
            try:
                msg = parse_message(raw, status_enquiry=ex.command is Command.STATUS_ENQUIRY)
            except ZvtParseError as err:
                log.warning("zvt: unreadable message %02X %02X: %s", raw[0], raw[1], err)
                if raw[:2] == b"\x04\x0f":
                    # Refusing the status makes the terminal reverse what we cannot read.
                    ex.status_unreadable = True
                    self._reply(build_negative_ack(0x9A))
                else:
                    self._reply(build_ack())
                deadline = time.monotonic() + t.t4
                continue
            if isinstance(msg, Ack):
                if accepted:
                    continue  # the answer to our abort request
                if not msg.ok:
                    ex.refused = msg
                    return
                accepted = True
                deadline = time.monotonic() + t.t4
                continue
            # A terminal message before 80 00 still means it took the command.
            accepted = True
            if isinstance(msg, IntermediateStatus):
                self._reply(build_ack())
                self._notify(on_status, msg)
                minutes = msg.timeout_minutes or 0
                deadline = time.monotonic() + (minutes * 60 if minutes else t.t4)
            elif isinstance(msg, StatusInformation):
                ex.status = msg
                if self._record(on_result, msg):
                    self._reply(build_ack())
                else:
                    # Unrecorded means unacknowledged: the terminal must reverse it.
                    ex.status_refused = True
                    self._reply(build_negative_ack(0x66))
                deadline = time.monotonic() + t.t4
            elif isinstance(msg, PrintLine):
                ex.lines.extend(msg.lines())
                self._reply(build_ack())
            elif isinstance(msg, TextBlock):
                ex.lines.extend(msg.lines)
                self._reply(build_ack())
            elif isinstance(msg, Completion):
                ex.completion = msg
                self._reply(build_ack())
                return
            elif isinstance(msg, PtAbort):
                ex.abort = msg
                self._reply(build_ack())
                return
            elif isinstance(msg, OtherMessage):
                if (msg.cls, msg.instr) == (0x04, 0x01):
                    self._reply(build_ack())  # set date/time in ECR: not ours to change
                else:
                    log.info("zvt: refusing unsupported %02X %02X", msg.cls, msg.instr)
                    self._reply(build_negative_ack(0x83))

    @staticmethod
    def _notify(on_status: StatusCallback | None, msg: IntermediateStatus) -> None:
        if on_status is None:
            return
        try:
            on_status(msg)
        except Exception:
            # The payment must go on: the terminal reverses if we stop answering.
            log.exception("zvt: status callback failed")

    @staticmethod
    def _record(on_result: ResultCallback | None, msg: StatusInformation) -> bool:
        if on_result is None:
            return True
        try:
            on_result(msg)
        except Exception:
            log.exception("zvt: the result callback failed; refusing the result")
            return False
        return True

    def _result(
        self,
        ex: _Exchange,
        outcome: Outcome,
        code: int | None,
        message: str,
        needs_recovery: bool = False,
        refused: bool = False,
    ) -> ZvtResult:
        st = ex.status or StatusInformation()
        done = ex.completion or Completion()
        return ZvtResult(
            command=ex.command,
            outcome=outcome,
            result_code=code,
            message=message,
            amount=st.amount,
            masked_pan=st.masked_pan,
            brand=st.brand,
            card_type=st.card_type,
            auth_code=st.auth_code,
            trace_number=st.trace_number,
            receipt_number=st.receipt_number,
            terminal_id=st.terminal_id or done.terminal_id,
            txn_date=st.txn_date,
            txn_time=st.txn_time,
            offline=st.offline,
            receipt_lines=tuple(ex.lines),
            totals=st.totals,
            terminal_status=done.terminal_status,
            sw_version=done.sw_version,
            needs_recovery=needs_recovery,
            refused=refused,
        )

    def _failed(self, ex: _Exchange, outcome: Outcome, message: str) -> ZvtResult:
        self.transport.close()
        code = ex.status.result_code if ex.status is not None else None
        return self._result(ex, outcome, code, message, ex.command in MONEY_COMMANDS)

    def _finish(self, ex: _Exchange) -> ZvtResult:
        if ex.refused is not None:
            refused = ex.refused
            # 84 1E carries the real reason (6F, wrong currency) in its data.
            code = refused.data[0] if refused.code == 0x1E and refused.data else refused.code
            outcome = classify(code)
            if outcome is Outcome.APPROVED:
                outcome = Outcome.ERROR
            return self._result(ex, outcome, code, result_message(code), refused=True)
        if ex.status_refused:
            return self._result(
                ex, Outcome.ERROR, None, RECORD_MESSAGE, ex.command in MONEY_COMMANDS
            )
        if ex.status_unreadable:
            return self._result(
                ex, Outcome.ERROR, None, PROTOCOL_MESSAGE, ex.command in MONEY_COMMANDS
            )
        if ex.abort is not None:
            abort_code = ex.abort.result_code
            if abort_code is None or abort_code == 0:
                return self._result(ex, Outcome.ERROR, abort_code, result_message(0xFF))
            return self._result(ex, classify(abort_code), abort_code, result_message(abort_code))
        done = ex.completion or Completion()
        if ex.command is Command.STATUS_ENQUIRY:
            status = done.terminal_status
            if status in (None, 0):
                return self._result(ex, Outcome.APPROVED, 0, "Terminal ready.")
            text = TERMINAL_STATUS.get(status, f"status {status:02X}")
            return self._result(ex, Outcome.ERROR, status, f"Terminal not ready: {text}.")
        final = ex.status.result_code if ex.status is not None else done.result_code
        if final is None:
            final = 0
        return self._result(ex, classify(final), final, result_message(final))
