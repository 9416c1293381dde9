# purpose: a sample receipt model (the documented shape) for demos, tests and the benchmark.
from __future__ import annotations

import copy

from .receipt import MoneyFormat, Receipt, ReceiptLine

EURO_DE: MoneyFormat = {
    "symbol": "€",
    "decimals": 2,
    "decimal_sep": ",",
    "thousands_sep": ".",
    "symbol_after": True,
}

_SAMPLE: Receipt = {
    "kind": "sale",
    "receipt_no": "s1-t1-000042",
    "barcode": "s1-t1-000042",
    "at": "2026-11-27 10:15",
    "cashier": "Anna",
    "store": {
        "name": "Café Müller",
        "address": ["Hauptstr. 1", "10115 Berlin"],
        "tax_id": "DE123456789",
    },
    "money": EURO_DE,
    "lines": [
        {
            "name": "Brötchen",
            "quantity": "2",
            "unit": "each",
            "unit_price": 45,
            "amount": 90,
            "discount": 0,
            "tax_code": "B",
            "note": None,
        },
        {
            "name": "Äpfel Elstar",
            "quantity": "0.452",
            "unit": "kg",
            "unit_price": 299,
            "amount": 135,
            "discount": 0,
            "tax_code": "B",
            "note": None,
        },
    ],
    "subtotal": 225,
    "discount": 0,
    "total": 225,
    "taxes": [{"code": "B", "rate": "7", "net": 210, "tax": 15, "gross": 225}],
    "payments": [
        {"method": "cash", "amount": 500, "tendered": 500, "card": None},
        {
            "method": "card",
            "amount": 225,
            "tendered": None,
            "card": {
                "brand": "girocard",
                "masked_pan": "************1234",
                "auth_code": "123456",
                "trace": "000123",
                "receipt": "0042",
                "terminal_id": "52500038",
            },
        },
    ],
    "change": 275,
    "rounding": 0,
    "card_receipt_lines": ["KUNDENBELEG", "girocard", "Betrag EUR 2,25", "Zahlung erfolgt"],
    "footer": ["Danke für Ihren Einkauf!"],
}


def sample_receipt(extra_lines: int = 0) -> Receipt:
    """A fresh copy of the sample receipt, with ``extra_lines`` more items (for benchmarks).

    Extra items change the line list only; totals stay those of the two-line sample.
    """
    receipt = copy.deepcopy(_SAMPLE)
    for i in range(extra_lines):
        weighed = i % 3 == 0
        line: ReceiptLine = {
            "name": f"Käse Nr. {i} – Gouda mittelalt",
            "quantity": "0.452" if weighed else str(1 + i % 4),
            "unit": "kg" if weighed else "each",
            "unit_price": 1299 if weighed else 45 + i,
            "amount": 587 if weighed else (1 + i % 4) * (45 + i),
            "discount": 10 if i % 7 == 0 else 0,
            "tax_code": "B",
            "note": "Price override: damaged" if i % 11 == 0 else None,
        }
        receipt["lines"].append(line)
    return receipt
