# purpose: the cash drawer driver's errors, each with a message a cashier can act on.
from __future__ import annotations


class DrawerError(Exception):
    """Base of every error the drawer driver raises; ``message`` says what to do next."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        self.message = message
        self.detail = detail
        super().__init__(message if not detail else f"{message} ({detail})")


class DrawerUnavailableError(DrawerError):
    """The pulse could not be sent (the printer that drives the drawer is away or stopped).

    The kick stays pending: ``retry_pending()`` fires it while it is fresh, drops it after.
    """
