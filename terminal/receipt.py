# The receipt model of a journaled sale or refund, ready for the printer driver to lay out.
from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .config import TerminalConfig
from .sale import NotFound

_SYMBOLS = {
    "EUR": "€",
    "USD": "$",
    "GBP": "£",
    "JPY": "¥",
    "CHF": "CHF",
    "SEK": "kr",
    "NOK": "kr",
    "DKK": "kr",
    "PLN": "zł",
    "CZK": "Kč",
}
# (decimal separator, thousands separator, symbol after the amount) by language.
_STYLES = {
    "de": (",", ".", True),
    "fr": (",", " ", True),
    "es": (",", ".", True),
    "it": (",", ".", True),
    "nl": (",", ".", False),
    "en": (".", ",", False),
}


def money_format(config: TerminalConfig) -> dict[str, Any]:
    dec, thousands, after = _STYLES.get(config.locale[:2], (".", ",", False))
    return {
        "symbol": _SYMBOLS.get(config.currency, config.currency),
        "decimals": config.minor_units,
        "decimal_sep": dec,
        "thousands_sep": thousands,
        "symbol_after": after,
    }


def local_time(config: TerminalConfig, at: str) -> str:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(config.timezone)).strftime("%Y-%m-%d %H:%M")


def receipt_model(
    config: TerminalConfig, sale: dict[str, Any], refund_id: str | None = None
) -> dict[str, Any]:
    """The receipt for a completed sale, or for one of its refunds; reprints give the same."""
    if sale["status"] != "completed":
        raise NotFound("no_receipt", "Only a completed sale has a receipt. Finish the sale first.")
    names = {c.id: c.name for c in config.cashiers}
    header = {
        "store": {
            "name": config.store.name,
            "address": list(config.store.address),
            "tax_id": config.store.tax_id,
        },
        "money": money_format(config),
        "footer": list(config.store.footer),
    }
    if refund_id is None:
        return header | {
            "kind": "sale",
            "receipt_no": sale["receipt_no"],
            "barcode": sale["receipt_no"],
            "at": local_time(config, sale["at"]),
            "cashier": names.get(sale["cashier"], sale["cashier"]),
            "lines": [
                {
                    "name": li["name"],
                    "quantity": li["quantity"],
                    "unit": li["unit"],
                    "unit_price": li["unit_price"],
                    "amount": li["base"],
                    "discount": li["line_discount"],
                    "tax_code": li["code"],
                    "note": (
                        f"Price override: {li['override']['reason']}"
                        if li.get("override")
                        else None
                    ),
                }
                for li in sale["lines"]
            ],
            "subtotal": sale["subtotal"],
            "discount": sale["discount"],
            "total": sale["total"],
            "taxes": [_tax(t) for t in sale["taxes"]],
            "payments": [
                {
                    "method": p["method"],
                    "amount": p["amount"],
                    "tendered": p.get("tendered"),
                    "card": p.get("card"),
                }
                for p in sale["payments"]
            ],
            "change": sale["change"],
            "rounding": sale["rounding"],
            "card_receipt_lines": [
                line
                for p in sale["payments"]
                for line in (p.get("card") or {}).get("receipt_lines", [])
            ],
        }
    refund = next((r for r in sale["refunds"] if r["refund_id"] == refund_id), None)
    if refund is None:
        raise NotFound("unknown_refund", "That sale has no refund with this id.")
    return header | {
        "kind": "refund",
        "receipt_no": refund["receipt_no"],
        "barcode": refund["receipt_no"],
        "original_receipt_no": refund["original_receipt_no"],
        "at": local_time(config, refund["at"]),
        "cashier": names.get(refund["user"], refund["user"]),
        "lines": [
            {
                "name": li["name"],
                "quantity": li["quantity"],
                "unit": li["unit"],
                "unit_price": None,
                "amount": li["gross"],
                "discount": 0,
                "tax_code": li["code"],
                "note": None,
            }
            for li in refund["lines"]
        ],
        "subtotal": refund["total"],
        "discount": 0,
        "total": refund["total"],
        "taxes": [_tax(t) for t in refund["taxes"]],
        "payments": [
            {"method": p["method"], "amount": p["amount"], "tendered": None, "card": p.get("card")}
            for p in refund["payments"]
        ],
        "change": 0,
        "rounding": refund["rounding"],
        "card_receipt_lines": [],
    }


def _tax(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "code": t["code"],
        "rate": t["rate"],
        "net": t["net"],
        "tax": t["tax"],
        "gross": t["gross"],
    }
