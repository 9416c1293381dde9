# A realistic shop day as hash-chained envelopes, decided by the real (pure) sale domain.
from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from terminal.sale import Discount, Item, Policy, TaxClass, TaxSetup, Till
from tillbox.contract import GENESIS_HASH, SCHEMA, event_hash

ROOT = Path(__file__).resolve().parents[2]
BRANDS = ("VISA", "MASTERCARD", "GIROCARD")
MASKED = {
    "VISA": "476173******0010",
    "MASTERCARD": "545454******5454",
    "GIROCARD": "672559******1234",
}
CARD_TERMINAL = "52500001"


def policy(store: str, terminal: str, mode: str = "inclusive") -> Policy:
    classes = {
        "standard": TaxClass("standard", Decimal("19"), "A"),
        "reduced": TaxClass("reduced", Decimal("7"), "B"),
        "zero": TaxClass("zero", Decimal("0"), "C"),
    }
    return Policy(store, terminal, "EUR", TaxSetup(mode, classes))  # type: ignore[arg-type]


def demo_items() -> list[Item]:
    doc = json.loads((ROOT / "terminal" / "demo" / "catalog.json").read_text(encoding="utf-8"))
    return [
        Item(i["sku"], i["name"], i["price"], i["tax_class"], i["unit"], tuple(i["barcodes"]))
        for i in doc["items"]
    ]


@dataclass
class ShopDay:
    """The envelopes of one till's day, and what a card acquirer would pay for its batch."""

    store: str
    terminal: str
    day: str
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    brands: dict[str, dict[str, int]] = field(default_factory=dict)  # terminal side of the batch
    batch: str = "1"
    shortage: int = 0
    expected_cash: int = 0

    @property
    def last_hash(self) -> str:
        return self.envelopes[-1]["hash"] if self.envelopes else GENESIS_HASH

    def types(self) -> list[str]:
        return [e["type"] for e in self.envelopes]

    def settlement_csv(self, payout_id: str = "PO-1001", fee_per_mille: int = 9) -> str:
        """The acquirer's settlement report for this day's batch (amounts in major units)."""
        lines = [
            "payout_id,payout_date,store,card_terminal,batch,brand,count,gross,fee,net,currency"
        ]
        payout_day = (datetime.fromisoformat(self.day) + timedelta(days=1)).date().isoformat()
        for brand, b in sorted(self.brands.items()):
            fee = b["total"] * fee_per_mille // 1000
            lines.append(
                f"{payout_id},{payout_day},{self.store},{CARD_TERMINAL},{self.batch},{brand},"
                f"{b['count']},{_major(b['total'])},{_major(fee)},{_major(b['total'] - fee)},EUR"
            )
        return "\n".join(lines) + "\n"


def _major(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


class _Journal:
    """Folds decisions into the till and wraps them as chained envelopes."""

    def __init__(
        self, till: Till, out: ShopDay, start: datetime, rng: random.Random, seq0: int, prev: str
    ) -> None:
        self.till, self.out, self.now, self.rng = till, out, start, rng
        self.seq, self.prev = seq0, prev

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def tick(self, seconds: int = 20) -> None:
        self.now += timedelta(seconds=seconds)

    def write(self, decided: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        at = self.now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.now.microsecond // 1000:03d}Z"
        out = []
        for type_, data in decided:
            self.seq += 1
            env: dict[str, Any] = {
                "schema": SCHEMA,
                "id": self.uid(),
                "type": type_,
                "store": self.out.store,
                "terminal": self.out.terminal,
                "seq": self.seq,
                "at": at,
                "prev_hash": self.prev,
                "data": data,
            }
            env["hash"] = self.prev = event_hash(env)
            self.till.apply(type_, data, self.seq, at)
            self.out.envelopes.append(env)
            out.append(env)
        return out


def shop_day(
    store: str = "s1",
    terminal: str = "t1",
    day: str = "2026-11-27",
    *,
    sales: int = 30,
    seed: int = 7,
    shortage: int = 350,
    timezone: str = "Europe/Berlin",
    mode: str = "inclusive",
    batch: str = "1",
) -> ShopDay:
    """Open a shift, sell (cash and card, weighed items, a discount), refund one card and one
    cash sale, void one, a no-sale, cash in and out, close the card batch, close the shift with
    `shortage` minor units missing from the drawer."""
    rng = random.Random(seed)
    till = Till(policy(store, terminal, mode))
    items = demo_items()
    start = datetime.fromisoformat(f"{day}T08:00:00").replace(tzinfo=ZoneInfo(timezone))
    out = ShopDay(store, terminal, day, batch=batch, shortage=shortage)
    j = _Journal(till, out, start.astimezone(UTC), rng, 0, GENESIS_HASH)
    shift_id = j.uid()
    j.write(till.open_shift(shift_id, "anna", 10000))
    card_receipt = 100
    completed: list[dict[str, Any]] = []
    for n in range(sales):
        j.tick(rng.randint(60, 600))
        sale_id = j.uid()
        j.write(till.open_sale(sale_id, "anna"))
        for _ in range(rng.randint(1, 4)):
            item = rng.choice(items)
            qty = f"{rng.randint(150, 1500) / 1000:.3f}" if item.unit == "kg" else rng.randint(1, 3)
            j.write(
                till.add_line(
                    sale_id, j.uid(), item, qty, item.barcodes[0] if item.barcodes else None
                )
            )
        if n % 9 == 4:
            j.write(till.set_discount(sale_id, Discount(percent=Decimal("10")), approved_by="mia"))
        sale = till.sale(sale_id)
        due = till.due(sale)
        if n % 3 == 0:
            brand = BRANDS[(n // 3) % len(BRANDS)]
            card_receipt += 1
            card = {
                "brand": brand,
                "masked_pan": MASKED[brand],
                "auth_code": f"{n:06d}",
                "trace": f"{card_receipt:06d}",
                "receipt": f"{card_receipt:04d}",
                "terminal_id": CARD_TERMINAL,
                "offline": False,
            }
            done = j.write(till.add_payment(sale_id, j.uid(), "card", card=card))
        else:
            tendered = ((due // 500) + 1) * 500
            done = j.write(till.add_payment(sale_id, j.uid(), "cash", tendered=tendered))
        completed += [e["data"] for e in done if e["type"] == "sale.completed"]
    # Refunds: one card sale and one cash sale, wholly, back to their tenders.
    card_sale = next(s for s in completed if s["payments"][0]["method"] == "card")
    cash_sale = next(s for s in completed if s["payments"][0]["method"] == "cash")
    for original in (card_sale, cash_sale):
        j.tick()
        j.write(till.refund(original, [], j.uid(), None, "original", "changed mind", "anna", "mia"))
    # A sale voided before payment, and a no-sale.
    j.tick()
    void_id = j.uid()
    j.write(till.open_sale(void_id, "anna"))
    j.write(till.add_line(void_id, j.uid(), items[0], 2))
    j.write(till.void(void_id, "customer left", "anna", "mia"))
    j.tick()
    j.write(till.no_sale("change for the bakery next door", "anna", "mia"))
    j.tick()
    j.write(till.move_cash(2000, "coins from the bank", "anna", "mia"))
    j.tick()
    j.write(till.move_cash(-5000, "to the safe", "anna", "mia"))
    # Card batch: the terminal's totals per brand, net of refunds, as the ZVT end-of-day gives,
    # in the shape of the till's `settle_batch` (terminal and journal sides agree here).
    brands: dict[str, dict[str, int]] = {}
    receipts: list[int] = []
    for env in out.envelopes:
        if env["type"] not in ("sale.completed", "sale.refunded"):
            continue
        sign = 1 if env["type"] == "sale.completed" else -1
        for p in env["data"]["payments"]:
            if p["method"] == "card":
                b = brands.setdefault(p["card"]["brand"], {"count": 0, "total": 0})
                b["count"] += 1
                b["total"] += sign * p["amount"]
                if sign > 0:
                    receipts.append(int(p["card"]["receipt"]))
    side = {
        "receipt_from": min(receipts),
        "receipt_to": max(receipts),
        "brands": [{"name": k, **v} for k, v in sorted(brands.items())],
    }
    out.brands = brands
    j.tick(120)
    settled = {
        "settlement_id": j.uid(),
        "approved_by": "mia",
        "currency": "EUR",
        "terminal_id": CARD_TERMINAL,
        "batch": batch,
        "terminal": side,
        "journal": json.loads(json.dumps(side)),
        "differences": [],
        "receipts_match": True,
        "balanced": True,
    }
    j.write([("payment.batch_settled", settled)])
    j.tick(60)
    expected = till.shift().totals.expected_cash
    out.expected_cash = expected
    j.write(till.close_shift(expected - shortage, "anna"))
    return out


def extend(
    envelopes: list[dict[str, Any]],
    type_: str,
    data: dict[str, Any],
    at: str = "2026-11-27T19:00:00.000Z",
) -> dict[str, Any]:
    """Append one more event to a chain (e.g. a type no connector knows)."""
    last = envelopes[-1]
    env: dict[str, Any] = {
        "schema": SCHEMA,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, last["hash"])),
        "type": type_,
        "store": last["store"],
        "terminal": last["terminal"],
        "seq": last["seq"] + 1,
        "at": at,
        "prev_hash": last["hash"],
        "data": data,
    }
    env["hash"] = event_hash(env)
    envelopes.append(env)
    return env
