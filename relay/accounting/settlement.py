# The acquirer's settlement report (CSV): card payouts with their fees, imported as records.
from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from tillbox.contract import valid_id

from .ledger import minor_digits

COLUMNS: Final = (
    "payout_id",
    "payout_date",
    "store",
    "card_terminal",
    "batch",
    "brand",
    "count",
    "gross",
    "fee",
    "net",
    "currency",
)
_NAMESPACE: Final = uuid.UUID("6f1d7c2e-4f6b-4b8e-9a55-0c2f1f1a7e10")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class SettlementError(Exception):
    """The settlement report cannot be imported; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Row:
    payout_id: str
    payout_date: str
    store: str
    card_terminal: str
    batch: str
    brand: str
    count: int
    gross: int
    fee: int
    net: int
    currency: str


def _minor(text: str, currency: str) -> int:
    value = Decimal(text.strip())
    scaled = value.scaleb(minor_digits(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text}: more decimals than {currency} has")
    return int(scaled)


def parse(text: str, where: str = "settlement.csv") -> list[Row]:
    """Read and check the whole report; raise SettlementError naming each row and column."""
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    if header != COLUMNS:
        raise SettlementError(
            f"{where}: the header must be exactly {','.join(COLUMNS)} (found {','.join(header)})"
        )
    problems: list[str] = []
    rows: list[Row] = []
    for n, raw in enumerate(reader, start=2):

        def bad(column: str, msg: str, n: int = n) -> None:
            problems.append(f"row {n}, column {column}: {msg}")

        cur = (raw["currency"] or "").strip()
        if not _CURRENCY.match(cur):
            bad("currency", "an ISO 4217 code such as EUR")
            continue
        try:
            date.fromisoformat(raw["payout_date"].strip())
        except ValueError:
            bad("payout_date", "a date as YYYY-MM-DD")
        if not valid_id(raw["store"].strip()):
            bad("store", "a store id (1-32 letters, digits, '-', '_')")
        for col in ("payout_id", "card_terminal", "batch", "brand"):
            if not raw[col].strip() or len(raw[col]) > 64:
                bad(col, "1-64 characters")
        amounts: dict[str, int] = {}
        for col in ("gross", "fee", "net"):
            try:
                amounts[col] = _minor(raw[col], cur)
            except (InvalidOperation, ValueError) as err:
                bad(col, f"an amount in {cur}, e.g. 12.34 ({err})")
        try:
            count = int(raw["count"])
            if count < 0:
                raise ValueError
        except ValueError:
            bad("count", "a whole number of transactions, 0 or more")
            count = 0
        if len(amounts) == 3 and amounts["gross"] - amounts["fee"] != amounts["net"]:
            bad("net", "gross - fee must equal net")
        if len(amounts) == 3:
            rows.append(
                Row(
                    raw["payout_id"].strip(),
                    raw["payout_date"].strip(),
                    raw["store"].strip(),
                    raw["card_terminal"].strip(),
                    raw["batch"].strip(),
                    raw["brand"].strip(),
                    count,
                    amounts["gross"],
                    amounts["fee"],
                    amounts["net"],
                    cur,
                )
            )
    if problems:
        raise SettlementError(
            f"{where}: {len(problems)} problem(s), nothing was imported:\n  "
            + "\n  ".join(problems)
        )
    return rows


def records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One `settlement.paid_out` record per payout and store, with deterministic ids (importing
    the same report twice adds nothing)."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.payout_id, r.store), []).append(r)
    out = []
    for (payout_id, store), group in sorted(groups.items()):
        currencies = {r.currency for r in group}
        if len(currencies) != 1:
            raise SettlementError(f"payout {payout_id}: rows in several currencies")
        day = min(r.payout_date for r in group)
        data = {
            "payout_id": payout_id,
            "day": day,
            "currency": group[0].currency,
            "gross": sum(r.gross for r in group),
            "fee": sum(r.fee for r in group),
            "net": sum(r.net for r in group),
            "batches": [
                {
                    "card_terminal": r.card_terminal,
                    "batch": r.batch,
                    "brand": r.brand,
                    "count": r.count,
                    "gross": r.gross,
                    "fee": r.fee,
                    "net": r.net,
                }
                for r in group
            ],
        }
        out.append(
            {
                "id": str(uuid.uuid5(_NAMESPACE, f"{payout_id}/{store}")),
                "type": "settlement.paid_out",
                "store": store,
                "at": f"{day}T12:00:00Z",
                "data": data,
            }
        )
    return out
