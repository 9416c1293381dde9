# purpose: ReceiptPrinter, the one abstract printer; transport subclasses only move bytes.
"""The printer contract the terminal codes against.

``ReceiptPrinter`` owns the sequence (status before, bytes, status after), error translation
and logging; a transport subclass implements four small hooks (open, write, read, close).
Copy ``network.py`` when adding a transport.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from ._escpos import DeviceNotFoundError, EscposError, kick_bytes
from .errors import (
    INCOMPLETE_HINT,
    CoverOpenError,
    PaperOutError,
    PrinterError,
    PrinterFaultError,
    PrinterOfflineError,
    PrinterTransportError,
)
from .receipt import Receipt, RenderOptions, render_receipt
from .status import (
    ERROR_CAUSE,
    OFFLINE_CAUSE,
    PAPER_SENSOR,
    PRINTER_STATUS,
    PrinterHealth,
    needs_error_cause,
    parse_health,
    pick_status_byte,
    status_request,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrintOutcome:
    """What a successful print saw before and after sending the bytes."""

    before: PrinterHealth
    after: PrinterHealth
    bytes_sent: int

    @property
    def paper_low(self) -> bool:
        """The roll is nearly empty: print on, but tell the cashier to have a roll ready."""
        return self.after.paper_low


def raise_for_health(health: PrinterHealth, *, during_print: bool = False) -> None:
    """Raise the matching ``PrinterError`` when ``health`` cannot print; do nothing otherwise."""
    if not health.reported:
        return
    hint = INCOMPLETE_HINT if during_print else ""
    error: PrinterError | None = None
    if not health.responding:
        error = PrinterOfflineError(PrinterOfflineError.default_message + hint)
    elif health.cover_open:
        error = CoverOpenError(CoverOpenError.default_message + hint)
    elif health.paper_out:
        error = PaperOutError(PaperOutError.default_message + hint)
    elif health.error or health.cutter_error or health.unrecoverable_error:
        error = PrinterFaultError(PrinterFaultError.default_message + hint)
    elif not health.online:
        error = PrinterOfflineError(
            "The receipt printer is offline (its feed button may be held or it is busy). "
            "Wait a moment, then print again." + hint
        )
    if error is not None:
        error.health = health
        error.during_print = during_print
        raise error


class ReceiptPrinter(ABC):
    """A receipt printer: print a receipt, read status, kick the drawer, close.

    Thread-safe; one instance per physical printer for the life of the process. A lost
    link is reopened on the next call, so a printer that comes back needs no new object.
    """

    supports_status: bool = True
    """False for write-only transports: ``status()`` then reports ``reported=False``."""

    def __init__(
        self,
        *,
        options: RenderOptions | None = None,
        status_timeout_s: float = 0.5,
        after_print_timeout_s: float = 3.0,
        drawer_open_high: bool = True,
        name: str = "receipt printer",
    ) -> None:
        self.options = options or RenderOptions()
        self.status_timeout_s = status_timeout_s
        self.after_print_timeout_s = after_print_timeout_s
        self.drawer_open_high = drawer_open_high
        self.name = name
        self._lock = threading.RLock()
        self._opened = False
        self._last_problems: tuple[str, ...] | None = None
        self._link_error: PrinterOfflineError | None = None

    # ------------------------------------------------------------------ public API

    def render(self, receipt: Receipt) -> bytes:
        """The ESC/POS bytes this printer would get for ``receipt`` (no I/O)."""
        return render_receipt(receipt, self.options)

    def print_receipt(self, receipt: Receipt) -> PrintOutcome:
        """Render and print one receipt; raise a ``PrinterError`` saying what to do if not."""
        return self.print_bytes(self.render(receipt))

    def print_bytes(self, data: bytes) -> PrintOutcome:
        """Send ready-made ESC/POS bytes, checking status before and after."""
        with self._lock:
            before = self._health(self.status_timeout_s)
            self._raise_for(before)
            try:
                self._ensure_open()
                self._write(data)
                self._flush()
            except PrinterError:
                self._invalidate()
                raise
            except (OSError, EscposError) as err:
                self._invalidate()
                raise self._transport_error(err, during_print=True) from err
            after = self._health(self.after_print_timeout_s, during_print=True)
            self._raise_for(after, during_print=True)
            return PrintOutcome(before=before, after=after, bytes_sent=len(data))

    def status(self) -> PrinterHealth:
        """Ask the printer how it is; a silent printer gives ``responding=False``, never raises
        for that. Raises ``PrinterTransportError`` only when the port itself is unusable."""
        with self._lock:
            return self._health(self.status_timeout_s)

    def kick_drawer(
        self,
        pin: Literal[2, 5] = 2,
        *,
        on_ms: int = 100,
        off_ms: int = 100,
        only_if: Callable[[], bool] | None = None,
    ) -> bool:
        """Pulse the drawer kick connector now, or raise: a printer that is stopped (cover,
        paper, error) would hold the pulse in its buffer and fire it late, so it is refused.

        ``only_if`` is asked once the printer is ready, right before the pulse goes out; when
        it says no (the kick went stale while we waited), nothing is sent and False returned.
        """
        with self._lock:
            health = self._health(self.status_timeout_s)
            self._raise_for(health)
            if only_if is not None and not only_if():
                return False
            try:
                self._ensure_open()
                self._write(kick_bytes(pin, on_ms, off_ms))
                self._flush()
            except PrinterError:
                self._invalidate()
                raise
            except (OSError, EscposError) as err:
                self._invalidate()
                raise self._transport_error(err) from err
            return True

    def close(self) -> None:
        """Release the port; the next call opens it again."""
        with self._lock:
            self._invalidate()

    def __enter__(self) -> ReceiptPrinter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ transport hooks

    @abstractmethod
    def _open(self) -> None:
        """Open the link; raise ``OSError`` or python-escpos's DeviceNotFoundError."""

    @abstractmethod
    def _write(self, data: bytes) -> None:
        """Write all of ``data``; raise ``OSError`` on failure."""

    @abstractmethod
    def _close(self) -> None:
        """Close the link; must not raise."""

    def _read_some(self, timeout: float) -> bytes:
        """Whatever arrives within ``timeout`` (b"" if nothing); ``OSError`` if the link died."""
        raise NotImplementedError

    def _drain(self) -> None:
        """Drop bytes that arrived unasked, so an old answer is not read as a new one."""
        return None

    def _flush(self) -> None:
        """Wait until written bytes have left this machine."""
        return None

    def _read_health(self, timeout: float) -> PrinterHealth:
        """Ask DLE EOT 1, then 2/4 (and 3 on error) and decode the answers."""
        p1 = self._ask(PRINTER_STATUS, timeout)
        if p1 is None:
            return PrinterHealth.silent()
        p2 = self._ask(OFFLINE_CAUSE, timeout)
        p3 = self._ask(ERROR_CAUSE, timeout) if needs_error_cause(p2) else None
        p4 = self._ask(PAPER_SENSOR, timeout)
        return parse_health(p1, p2, p3, p4, drawer_open_high=self.drawer_open_high)

    # ------------------------------------------------------------------ internals

    def _ask(self, n: int, timeout: float) -> int | None:
        self._drain()
        self._write(status_request(n))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            answer = pick_status_byte(self._read_some(left))
            if answer is not None:
                return answer
        return None

    def _raise_for(self, health: PrinterHealth, *, during_print: bool = False) -> None:
        """``raise_for_health``, chained to the error that kept the link from opening."""
        try:
            raise_for_health(health, during_print=during_print)
        except PrinterOfflineError as err:
            if self._link_error is None or health.responding:
                raise
            err.detail = self._link_error.detail
            raise err from self._link_error.__cause__

    def _ensure_open(self) -> None:
        if self._opened:
            return
        try:
            self._open()
        except PrinterError:
            raise
        except (OSError, ValueError, DeviceNotFoundError, EscposError) as err:
            self._close()
            # python-escpos wraps "permission denied" in its own not-found error.
            if isinstance(err, PermissionError) or "ermission denied" in str(err):
                raise PrinterTransportError(
                    f"Tillbox may not open the {self.name}. Check the device's group and "
                    "udev rule (see docs/printing.md).",
                    detail=str(err),
                ) from err
            raise PrinterOfflineError(detail=str(err), health=PrinterHealth.silent()) from err
        self._opened = True

    def _invalidate(self) -> None:
        self._opened = False
        self._close()

    def _health(self, timeout: float, *, during_print: bool = False) -> PrinterHealth:
        if not self.supports_status:
            return PrinterHealth.unreported()
        try:
            self._ensure_open()
        except PrinterOfflineError as err:
            self._link_error = err
            health = PrinterHealth.silent()
            self._note(health)
            return health
        self._link_error = None
        try:
            health = self._read_health(timeout)
        except (OSError, EscposError):
            # The link died under us (a network printer dropped the socket): reopen once.
            self._invalidate()
            try:
                self._ensure_open()
                health = self._read_health(timeout)
            except PrinterOfflineError as err:
                self._link_error = err
                health = PrinterHealth.silent()
            except (OSError, EscposError) as err:
                self._invalidate()
                raise self._transport_error(err, during_print=during_print) from err
        self._note(health)
        return health

    def _transport_error(self, err: BaseException, *, during_print: bool = False) -> PrinterError:
        message = PrinterTransportError.default_message
        if during_print:
            message += INCOMPLETE_HINT
        return PrinterTransportError(message, detail=str(err), during_print=during_print)

    def _note(self, health: PrinterHealth) -> None:
        """Log when the set of problems changes, not on every poll."""
        problems = health.problems()
        if problems == self._last_problems:
            return
        if problems:
            log.warning("%s: %s", self.name, ", ".join(problems))
        elif self._last_problems:
            log.info("%s: ready again", self.name)
        self._last_problems = problems
