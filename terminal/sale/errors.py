# Errors of the sale domain; each carries a stable code and a message a cashier can act on.
from __future__ import annotations


class SaleError(Exception):
    """Base of every refusal by the sale domain."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Invalid(SaleError):
    """The request itself is wrong (bad quantity, bad barcode, too much)."""

    status = 422


class NotFound(SaleError):
    status = 404


class Conflict(SaleError):
    """The request does not fit the current state (sale already completed, no shift open)."""

    status = 409


class Forbidden(SaleError):
    """The action needs a manager."""

    status = 403
