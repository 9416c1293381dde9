# Shift totals kept up to date event by event, so an X or Z report never scans history.
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class TenderTotals:
    sales: int = 0
    refunds: int = 0
    count: int = 0


@dataclass(slots=True)
class RateTotals:
    code: str
    rate: str
    net: int = 0
    tax: int = 0
    gross: int = 0
    refund_net: int = 0
    refund_tax: int = 0
    refund_gross: int = 0


@dataclass(slots=True)
class ShiftTotals:
    opening_float: int
    sales_count: int = 0
    sales_total: int = 0
    sales_tax: int = 0
    discounts: int = 0
    rounding: int = 0
    refunds_count: int = 0
    refunds_total: int = 0
    voids_count: int = 0
    voids_total: int = 0
    no_sales: int = 0
    cash_in: int = 0
    cash_out: int = 0
    cash_sales: int = 0
    cash_refunds: int = 0
    tenders: dict[str, TenderTotals] = field(default_factory=dict)
    rates: dict[str, RateTotals] = field(default_factory=dict)

    @property
    def expected_cash(self) -> int:
        return (
            self.opening_float + self.cash_sales - self.cash_refunds + self.cash_in - self.cash_out
        )

    def add_sale(self, summary: Mapping[str, Any]) -> None:
        self.sales_count += 1
        self.sales_total += summary["total"]
        self.sales_tax += summary["tax"]
        self.discounts += summary["discount"]
        self.rounding += summary["rounding"]
        for p in summary["payments"]:
            t = self.tenders.setdefault(p["method"], TenderTotals())
            t.sales += p["amount"]
            t.count += 1
            if p["method"] == "cash":
                self.cash_sales += p["amount"]
        for tx in summary["taxes"]:
            r = self._rate(tx)
            r.net += tx["net"]
            r.tax += tx["tax"]
            r.gross += tx["gross"]

    def add_refund(self, refund: Mapping[str, Any]) -> None:
        self.refunds_count += 1
        self.refunds_total += refund["total"]
        for p in refund["payments"]:
            t = self.tenders.setdefault(p["method"], TenderTotals())
            t.refunds += p["amount"]
            if p["method"] == "cash":
                self.cash_refunds += p["amount"]
        for tx in refund["taxes"]:
            r = self._rate(tx)
            r.refund_net += tx["net"]
            r.refund_tax += tx["tax"]
            r.refund_gross += tx["gross"]

    def _rate(self, tx: Mapping[str, Any]) -> RateTotals:
        return self.rates.setdefault(tx["tax_class"], RateTotals(tx["code"], tx["rate"]))

    def to_data(self) -> dict[str, Any]:
        return {
            "sales": {
                "count": self.sales_count,
                "total": self.sales_total,
                "tax": self.sales_tax,
                "discounts": self.discounts,
                "rounding": self.rounding,
            },
            "refunds": {"count": self.refunds_count, "total": self.refunds_total},
            "voids": {"count": self.voids_count, "total": self.voids_total},
            "no_sales": self.no_sales,
            "net_total": self.sales_total - self.refunds_total,
            "tenders": {
                m: {
                    "sales": t.sales,
                    "refunds": t.refunds,
                    "net": t.sales - t.refunds,
                    "count": t.count,
                }
                for m, t in sorted(self.tenders.items())
            },
            "taxes": [
                {
                    "tax_class": name,
                    "code": r.code,
                    "rate": r.rate,
                    "net": r.net,
                    "tax": r.tax,
                    "gross": r.gross,
                    "refund_net": r.refund_net,
                    "refund_tax": r.refund_tax,
                    "refund_gross": r.refund_gross,
                }
                for name, r in sorted(self.rates.items(), key=lambda kv: kv[1].code)
            ],
            "cash": {
                "opening_float": self.opening_float,
                "sales": self.cash_sales,
                "refunds": self.cash_refunds,
                "cash_in": self.cash_in,
                "cash_out": self.cash_out,
                "expected": self.expected_cash,
            },
        }
