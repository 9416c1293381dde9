# DummyScanner: a scanner without hardware; tests and demos push scans into it.
from __future__ import annotations

import time

from .base import (
    BarcodeScanner,
    DropCallback,
    ErrorCallback,
    ScanCallback,
    ScannerState,
    StateCallback,
)
from .errors import ScannerDisconnectedError, ScannerError
from .framing import FramingConfig


class DummyScanner(BarcodeScanner):
    """Delivers pushed codes on the caller's thread, through the same framer as real ports."""

    def __init__(
        self,
        device_id: str = "dummy:0",
        *,
        on_scan: ScanCallback,
        framing: FramingConfig | None = None,
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

    def start(self) -> None:
        self._check_not_closed()
        self._connected()

    def stop(self) -> None:
        if self.state is not ScannerState.CLOSED:
            self._set_state(ScannerState.STOPPED)

    def push(self, code: str, *, now: float | None = None) -> None:
        """Scan code: send it with the configured suffix."""
        self.push_raw(code + self.framing.suffix.value, now=now)

    def push_raw(self, data: str | bytes, *, now: float | None = None) -> None:
        """Send anything the wire could carry: partial lines, garbage, overlong lines."""
        if self.state is not ScannerState.CONNECTED:
            raise ScannerDisconnectedError(
                f"scanner {self.device_id} is {self.state.value}; start() or replug() it first"
            )
        self._receive(data, time.monotonic() if now is None else now)

    def tick(self, now: float) -> None:
        """Let time pass with no data, so a stale partial line expires."""
        self._expire(now)

    def unplug(self, error: ScannerError | None = None) -> None:
        """Behave as a vanished device: report the error, abandon any partial line."""
        self._abandon_partial(time.monotonic())
        self._failed(error or ScannerDisconnectedError(f"scanner {self.device_id}: unplugged"))

    def replug(self) -> None:
        """The device is back."""
        self._check_not_closed()
        self._connected()
