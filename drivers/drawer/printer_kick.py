# purpose: PrinterKickDrawer, a drawer on the receipt printer's kick connector (ESC p).
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from drivers.printer import PrinterError, ReceiptPrinter

from .base import CashDrawer, Clock
from .errors import DrawerUnavailableError


class PrinterKickDrawer(CashDrawer):
    """The usual drawer: an RJ11/RJ12 cable into the printer, opened by a solenoid pulse on
    pin 2 (or pin 5 for a second drawer), its open switch read back on pin 3 through the
    printer's status (``DLE EOT 1``).

    ``verify_s`` > 0 polls the sensor that long after a pulse to tell a jammed drawer.
    """

    def __init__(
        self,
        printer: ReceiptPrinter,
        *,
        pin: Literal[2, 5] = 2,
        on_ms: int = 100,
        off_ms: int = 100,
        has_sensor: bool = True,
        verify_s: float = 0.5,
        max_kick_age_s: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(max_kick_age_s=max_kick_age_s, clock=clock)
        self.printer = printer
        self.pin: Literal[2, 5] = pin
        self.on_ms = on_ms
        self.off_ms = off_ms
        self.has_sensor = has_sensor
        self.verify_s = verify_s

    def _pulse(self, still_wanted: Callable[[], bool]) -> bool:
        try:
            return self.printer.kick_drawer(
                self.pin, on_ms=self.on_ms, off_ms=self.off_ms, only_if=still_wanted
            )
        except PrinterError as err:
            raise DrawerUnavailableError(
                "The cash drawer could not be opened: " + err.message + " Use the drawer key "
                "if the customer is waiting.",
                detail=err.detail,
            ) from err

    def is_open(self) -> bool | None:
        """The pin 3 sensor via the printer; None without a sensor or an answering printer."""
        if not self.has_sensor:
            return None
        try:
            health = self.printer.status()
        except PrinterError:
            return None
        if not health.responding or not health.reported:
            return None
        return health.drawer_open

    def _verify(self) -> bool | None:
        if not self.has_sensor or self.verify_s <= 0:
            return None
        deadline = time.monotonic() + self.verify_s
        while True:
            state = self.is_open()
            if state is None or state:
                return state
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
