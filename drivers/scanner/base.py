# BarcodeScanner: the one base of every scanner transport, and the reconnecting read loop.
from __future__ import annotations

import abc
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from .errors import (
    ScannerConfigError,
    ScannerDisconnectedError,
    ScannerError,
    ScannerNotFoundError,
)
from .framing import Dropped, DropReason, FramerOutput, FramingConfig, Line, LineFramer

logger = logging.getLogger(__name__)

RETRY_INTERVAL_RANGE = (0.01, 60.0)
READ_TIMEOUT_RANGE = (0.01, 5.0)


@dataclass(frozen=True, slots=True)
class Scan:
    """One scanned code, raw as the scanner sent it (suffix removed)."""

    code: str
    device_id: str
    at: float  # time.monotonic() when the suffix arrived


@dataclass(frozen=True, slots=True)
class DroppedScan:
    """A line the driver threw away; data is what had arrived, for the log."""

    device_id: str
    reason: DropReason
    data: str
    at: float


class ScannerState(enum.Enum):
    STOPPED = "stopped"  # built, not started (or stopped)
    CONNECTING = "connecting"  # started, first open not yet tried
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # started, device absent or failed; retrying
    CLOSED = "closed"


ScanCallback = Callable[[Scan], None]
DropCallback = Callable[[DroppedScan], None]
ErrorCallback = Callable[[str, ScannerError], None]
StateCallback = Callable[[str, ScannerState], None]


def _log_drop(dropped: DroppedScan) -> None:
    logger.warning(
        "scanner %s: dropped %s line %r", dropped.device_id, dropped.reason.value, dropped.data
    )


def _log_error(device_id: str, err: ScannerError) -> None:
    logger.warning("scanner %s: %s", device_id, err)


def _failure_kind(err: ScannerError) -> type[ScannerError]:
    # A device that vanishes mid-read is then not found on re-open: one outage, one report.
    if isinstance(err, ScannerNotFoundError):
        return ScannerDisconnectedError
    return type(err)


def _bounded(name: str, value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if not low <= value <= high:
        raise ScannerConfigError(f"scanner {name} {value} is out of range {low}..{high} seconds")
    return value


class BarcodeScanner(abc.ABC):
    """A scanner delivers each scan to on_scan with its raw code and a stable device id.

    Callbacks run on the scanner's reader thread (or the caller's, for DummyScanner); an
    exception in one is logged and never stops the scanner. on_error is called once when
    the device fails, not on every retry; on_state is called on every state change.
    """

    def __init__(
        self,
        device_id: str,
        *,
        on_scan: ScanCallback,
        framing: FramingConfig | None = None,
        on_drop: DropCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_state: StateCallback | None = None,
    ) -> None:
        if not device_id:
            raise ScannerConfigError("scanner device_id must not be empty")
        self._device_id = device_id
        self._framer = LineFramer(framing)
        self._on_scan = on_scan
        self._on_drop = on_drop or _log_drop
        self._on_error = on_error or _log_error
        self._on_state = on_state
        self._state = ScannerState.STOPPED
        self._failure: type[ScannerError] | None = None

    @property
    def device_id(self) -> str:
        """Stable id of the device (its configured path), the same across re-plugs."""
        return self._device_id

    @property
    def state(self) -> ScannerState:
        return self._state

    @property
    def framing(self) -> FramingConfig:
        return self._framer.config

    @abc.abstractmethod
    def start(self) -> None:
        """Begin delivering scans; a missing device is reported, not raised."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop delivering scans and release the device; start() may follow."""

    def close(self) -> None:
        """Stop for good."""
        self.stop()
        self._set_state(ScannerState.CLOSED)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_not_closed(self) -> None:
        if self._state is ScannerState.CLOSED:
            raise ScannerError(f"scanner {self._device_id} is closed; build a new one")

    def _receive(self, data: str | bytes, now: float) -> None:
        self._dispatch(self._framer.feed(data, now), now)

    def _expire(self, now: float) -> None:
        self._dispatch(self._framer.poll(now), now)

    def _abandon_partial(self, now: float) -> None:
        self._dispatch(self._framer.reset(), now)

    def _dispatch(self, outputs: list[FramerOutput], now: float) -> None:
        for out in outputs:
            if isinstance(out, Line):
                self._call(self._on_scan, Scan(out.code, self._device_id, now))
            elif isinstance(out, Dropped):
                self._call(self._on_drop, DroppedScan(self._device_id, out.reason, out.data, now))

    def _set_state(self, state: ScannerState) -> None:
        if state is self._state:
            return
        self._state = state
        if self._on_state is not None:
            self._call(self._on_state, self._device_id, state)

    def _connected(self) -> None:
        if self._failure is not None:
            logger.info("scanner %s: connected again", self._device_id)
        else:
            logger.info("scanner %s: connected", self._device_id)
        self._failure = None
        self._set_state(ScannerState.CONNECTED)

    def _failed(self, err: ScannerError) -> None:
        """Report a failure once per kind, however often the retry loop meets it."""
        self._set_state(ScannerState.DISCONNECTED)
        kind = _failure_kind(err)
        if kind is self._failure:
            return
        self._failure = kind
        self._call(self._on_error, self._device_id, err)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("scanner %s: callback %r failed", self._device_id, callback)


class ReconnectingScanner(BarcodeScanner):
    """A scanner on a port that can vanish: reads on a thread and re-opens the same path.

    Subclasses only open, read and close their port; they translate OSError into
    ScannerError. run() is the blocking loop; start() runs it on a daemon thread.
    """

    def __init__(
        self,
        device_id: str,
        *,
        on_scan: ScanCallback,
        framing: FramingConfig | None = None,
        retry_interval: float = 1.0,
        read_timeout: float = 0.1,
        on_drop: DropCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_state: StateCallback | None = None,
    ) -> None:
        super().__init__(
            device_id,
            on_scan=on_scan,
            framing=framing,
            on_drop=on_drop,
            on_error=on_error,
            on_state=on_state,
        )
        self.retry_interval = _bounded("retry_interval", retry_interval, RETRY_INTERVAL_RANGE)
        self.read_timeout = _bounded("read_timeout", read_timeout, READ_TIMEOUT_RANGE)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def _open(self) -> None:
        """Open the port; raise ScannerError."""

    @abc.abstractmethod
    def _read(self) -> str | bytes:
        """Wait at most read_timeout for data; return it, or empty if none came."""

    @abc.abstractmethod
    def _close_port(self) -> None:
        """Release the port; never raise."""

    def _prepare(self) -> None:
        """Check what must hold before the loop starts (dependencies); raise ScannerError."""

    def start(self) -> None:
        self._check_not_closed()
        if self._thread is not None and self._thread.is_alive():
            return
        self._prepare()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"scanner {self.device_id}", daemon=True
        )
        self._set_state(ScannerState.CONNECTING)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._thread = None
        if self._state is not ScannerState.CLOSED:
            self._set_state(ScannerState.STOPPED)

    def run(self) -> None:
        """Read and deliver scans until stop(); for callers that own the thread."""
        self._check_not_closed()
        self._prepare()
        self._stopping.clear()
        self._set_state(ScannerState.CONNECTING)
        self._loop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._open()
            except ScannerError as err:
                self._failed(err)
                self._stopping.wait(self.retry_interval)
                continue
            self._connected()
            try:
                self._read_until_failure()
            finally:
                self._close_port()
                self._abandon_partial(time.monotonic())
            if not self._stopping.is_set():
                self._stopping.wait(self.retry_interval)

    def _read_until_failure(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._read()
            except ScannerError as err:
                self._failed(err)
                return
            except Exception as err:
                # A bug or an unexpected library error must not end the thread silently.
                logger.exception("scanner %s: unexpected read failure", self.device_id)
                self._failed(ScannerDisconnectedError(f"scanner {self.device_id}: {err!r}"))
                return
            now = time.monotonic()
            if data:
                self._receive(data, now)
            else:
                self._expire(now)
