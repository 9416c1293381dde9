# purpose: the printer driver's errors, each with a message a cashier can act on.
from __future__ import annotations

from .status import PrinterHealth


class PrinterError(Exception):
    """Base of every error the printer driver raises; ``message`` says what to do next."""

    default_message = "The receipt printer cannot print right now. Check it, then print again."

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: str = "",
        health: PrinterHealth | None = None,
        during_print: bool = False,
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.health = health
        self.during_print = during_print
        super().__init__(self.message if not detail else f"{self.message} ({detail})")


class PrinterOfflineError(PrinterError):
    """The printer does not answer, cannot be found, or reports itself offline."""

    default_message = (
        "The receipt printer is not responding. Check that it is switched on and its cable "
        "or network is connected, then print again."
    )


class PaperOutError(PrinterError):
    """The roll is empty."""

    default_message = (
        "The receipt printer is out of paper. Load a new roll, close the cover, then print again."
    )


class CoverOpenError(PrinterError):
    """The paper cover is open."""

    default_message = "The receipt printer's cover is open. Close it firmly, then print again."


class PrinterFaultError(PrinterError):
    """A mechanical, cutter or head error."""

    default_message = (
        "The receipt printer reports a fault (paper jam or cutter). Open the cover, remove any "
        "jammed paper, close it, then print again. If it persists, switch the printer off and on."
    )


class PrinterTransportError(PrinterError):
    """Bytes could not be moved: the port, socket or USB link failed."""

    default_message = (
        "Tillbox lost the connection to the receipt printer. Check its cable or network, "
        "then print again; if it persists, restart the printer."
    )


INCOMPLETE_HINT = " The last receipt may be incomplete: check it and reprint if needed."
