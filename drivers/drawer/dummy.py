# purpose: DummyDrawer, the shipped stand-in drawer that a test can open, close, jam or unplug.
from __future__ import annotations

import time
from collections.abc import Callable

from .base import CashDrawer, Clock
from .errors import DrawerUnavailableError


class DummyDrawer(CashDrawer):
    """An in-memory drawer with a sensor; ``available=False`` makes kicks fail."""

    def __init__(self, *, max_kick_age_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        super().__init__(max_kick_age_s=max_kick_age_s, clock=clock)
        self.opened = False
        self.jammed = False
        self.available = True
        self.pulses = 0

    def close(self) -> None:
        """Push the drawer shut."""
        self.opened = False

    def is_open(self) -> bool | None:
        return self.opened

    def _pulse(self, still_wanted: Callable[[], bool]) -> bool:
        if not self.available:
            raise DrawerUnavailableError("The cash drawer is not connected. Use the drawer key.")
        if not still_wanted():
            return False
        self.pulses += 1
        if not self.jammed:
            self.opened = True
        return True

    def _verify(self) -> bool | None:
        return self.opened
