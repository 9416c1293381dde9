# GS1 barcode check digits (EAN-13, EAN-8, UPC-A) and receipt barcodes.
from __future__ import annotations

GTIN_LENGTHS = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13"}


def gs1_check_digit(body: str) -> int:
    """Check digit for the digits before it (weights 3,1,3,… from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_problem(code: str) -> str | None:
    """Why `code` is not a valid EAN-13/EAN-8/UPC-A, or None when it is."""
    if not code.isascii() or not code.isdigit():
        return "a product barcode has digits only"
    kind = GTIN_LENGTHS.get(len(code))
    if kind is None:
        return "a product barcode has 8, 12 or 13 digits"
    if gs1_check_digit(code[:-1]) != int(code[-1]):
        return f"the {kind} check digit is wrong (misread: scan again)"
    return None


def is_gtin(code: str) -> bool:
    return gtin_problem(code) is None
