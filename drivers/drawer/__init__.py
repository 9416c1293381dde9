# purpose: cash drawer driver: one base class with stale-kick protection, printer-kicked and dummy.
"""Cash drawers. ``PrinterKickDrawer`` is the reference implementation to copy."""

from __future__ import annotations

from .base import CashDrawer, KickOutcome, KickRequest, KickResult
from .dummy import DummyDrawer
from .errors import DrawerError, DrawerUnavailableError
from .printer_kick import PrinterKickDrawer

__all__ = [
    "CashDrawer",
    "DrawerError",
    "DrawerUnavailableError",
    "DummyDrawer",
    "KickOutcome",
    "KickRequest",
    "KickResult",
    "PrinterKickDrawer",
]
