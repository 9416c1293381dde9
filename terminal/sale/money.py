# Integer money arithmetic: rounding rules, proportional allocation, cash rounding.
from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Literal

RoundingMode = Literal["half_up", "half_even", "down"]
_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "down": ROUND_DOWN}


def round_minor(value: Decimal, mode: RoundingMode = "half_up") -> int:
    """Round a Decimal amount of minor units to a whole minor unit."""
    return int(value.quantize(Decimal(1), rounding=_MODES[mode]))


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights` so the parts always sum to `total`.

    Largest-remainder method; ties go to the earlier weight, so the result is deterministic.
    """
    if not weights:
        return []
    base = sum(weights)
    if base == 0:
        weights, base = [1] * len(weights), len(weights)  # nothing to weigh by: split evenly
    shares = [Decimal(total) * w / base for w in weights]
    parts = [int(s.to_integral_value(rounding=ROUND_DOWN)) for s in shares]
    left = total - sum(parts)
    step = 1 if left >= 0 else -1
    order = sorted(range(len(weights)), key=lambda i: (-(abs(shares[i] - parts[i])), i))
    for i in order[: abs(left)]:
        parts[i] += step
    return parts


def cash_round(amount: int, increment: int) -> int:
    """Round an amount due in cash to the smallest coin in circulation (e.g. 5 for CHF)."""
    if increment <= 1:
        return amount
    return round_minor(Decimal(amount) / increment) * increment


def format_money(
    amount: int,
    decimals: int,
    symbol: str,
    decimal_sep: str = ".",
    thousands_sep: str = ",",
    symbol_after: bool = False,
) -> str:
    """Human form of an amount, e.g. 1234 -> '12,34 €'; never goes through float."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals) if decimals else (abs(amount), 0)
    digits = f"{whole:,}".replace(",", thousands_sep)
    text = f"{digits}{decimal_sep}{frac:0{decimals}d}" if decimals else digits
    return f"{sign}{text} {symbol}" if symbol_after else f"{sign}{symbol}{text}"
