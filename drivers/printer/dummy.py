# purpose: DummyPrinter, the shipped stand-in that keeps every byte and reports a settable health.
from __future__ import annotations

from typing import Any

from .base import ReceiptPrinter
from .status import PrinterHealth


class DummyPrinter(ReceiptPrinter):
    """Prints into memory: ``jobs`` holds each write, ``output`` all bytes so far.

    Set ``health`` to make it behave like a printer with no paper, an open cover or no
    power; the same ``PrinterError``s come out as from a real one.
    """

    def __init__(self, health: PrinterHealth | None = None, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "dummy receipt printer"), **kwargs)
        self.health = health or PrinterHealth.ready()
        self.jobs: list[bytes] = []
        self.closed = True

    @property
    def output(self) -> bytes:
        """Every byte written so far."""
        return b"".join(self.jobs)

    def clear(self) -> None:
        """Forget what was printed."""
        self.jobs.clear()

    def _open(self) -> None:
        self.closed = False

    def _write(self, data: bytes) -> None:
        self.jobs.append(bytes(data))

    def _close(self) -> None:
        self.closed = True

    def _read_health(self, timeout: float) -> PrinterHealth:
        return self.health
