# Pure planning for QuickBooks Online: Z reports and payouts -> receipts, journal, deposit.
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from relay.accounting.ledger import to_decimal
from relay.connectors.base import Command, Event, MissingMapping
from relay.connectors.keys import command_key
from relay.connectors.mapping import FieldMapping, canonical_rate


def reference(key: str) -> str:
    """A DocNumber for a command's documents (QuickBooks allows 21 characters)."""
    return "TB" + hashlib.sha256(key.encode()).hexdigest()[:12].upper()


def _m(amount: int, cur: str) -> str:
    return str(to_decimal(amount, cur))


def split(total: int, weights: Sequence[int]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder): the parts add up exactly."""
    whole = sum(weights)
    if whole == 0:
        return [total] + [0] * (len(weights) - 1) if weights else []
    raw = [total * w for w in weights]
    parts = [r // whole for r in raw]
    order = sorted(range(len(weights)), key=lambda i: (-(raw[i] % whole), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def receipts(
    tenders: Mapping[str, int], rates: Sequence[tuple[str, int, int]]
) -> dict[str, list[tuple[str, int, int]]]:
    """Per tender, lines (rate, gross, tax) that add up to exactly that tender's amount.

    The Z report has totals per tender and per tax rate, not per both; each rate is allocated
    over the tenders in proportion, and a last line ("rounding", at 0 %) takes the cash rounding
    and the cents the allocation leaves, so every receipt equals its tender's takings.
    """
    methods = [m for m, v in tenders.items() if v]
    weights = [tenders[m] for m in methods]
    out: dict[str, list[tuple[str, int, int]]] = {m: [] for m in methods}
    for rate, gross, tax in rates:
        for m, g, t in zip(methods, split(gross, weights), split(tax, weights)):
            if g or t:
                out[m].append((rate, g, t))
    for m in methods:
        rest = tenders[m] - sum(g for _, g, _ in out[m])
        if rest:
            out[m].append(("rounding", rest, 0))
    return out


def _doc(
    kind: str,
    m: FieldMapping,
    store: str,
    day: str,
    ref: str,
    method: str,
    lines: Sequence[tuple[str, int, int]],
    cur: str,
    note: str,
) -> dict[str, Any]:
    body: list[dict[str, Any]] = []
    for rate, gross, _ in lines:
        code = m.tax("0") if rate == "rounding" else m.tax(rate)
        text = "cash rounding and allocation" if rate == "rounding" else f"sales at {rate}%"
        body.append(
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": _m(gross, cur),
                "Description": text,
                "SalesItemLineDetail": {
                    "ItemRef": {"value": m.item("*")},
                    "TaxCodeRef": {"value": code},
                    "Qty": 1,
                    "UnitPrice": _m(gross, cur),
                },
            }
        )
    doc: dict[str, Any] = {
        "TxnDate": day,
        "DocNumber": f"{ref}{'R' if kind == 'RefundReceipt' else 'S'}{method[:4].upper()}",
        "PrivateNote": note,
        "DepositToAccountRef": {"value": m.tender(method)},
        "GlobalTaxCalculation": "TaxInclusive",
        "Line": body,
        "TxnTaxDetail": {"TotalTax": _m(sum(t for _, _, t in lines), cur)},
    }
    location = m.tracking_or_none(store)
    if location:
        doc["DepartmentRef"] = {"value": location}
    return doc


def _je_line(account: str, amount: int, cur: str, text: str) -> dict[str, Any]:
    return {
        "DetailType": "JournalEntryLineDetail",
        "Amount": _m(abs(amount), cur),
        "Description": text,
        "JournalEntryLineDetail": {
            "PostingType": "Debit" if amount > 0 else "Credit",
            "AccountRef": {"value": account},
        },
    }


def plan(ev: Event, m: FieldMapping | None, day: str, currency: str) -> list[Command]:
    if m is None:
        raise MissingMapping("no mapping file loaded")
    if ev.type == "shift.closed":
        return _shift(ev, m, day, currency)
    if ev.type == "settlement.paid_out":
        return [_payout(ev, m, day)]
    return []


def _shift(ev: Event, m: FieldMapping, day: str, cur: str) -> list[Command]:
    d = ev.data
    report = d["report"]
    key = command_key("quickbooks.shift", (ev.id,))
    ref = reference(key)
    summary = f"Z report {ev.store}/{ev.terminal} {day} (shift {d['shift_id'][:8]})"
    note = f"Tillbox {summary} {ref}"
    sales = {k: int(v["sales"]) for k, v in sorted(report.get("tenders", {}).items())}
    refunds = {k: int(v["refunds"]) for k, v in sorted(report.get("tenders", {}).items())}
    sale_rates, refund_rates = [], []
    for t in report.get("taxes", []):
        rate = canonical_rate(t["rate"]) or t["rate"]
        sale_rates.append((rate, int(t["gross"]), int(t["tax"])))
        refund_rates.append((rate, int(t.get("refund_gross", 0)), int(t.get("refund_tax", 0))))
    steps: list[dict[str, Any]] = []
    for method, lines in receipts(sales, sale_rates).items():
        doc = _doc("SalesReceipt", m, ev.store, day, ref, method, lines, cur, note)
        steps.append({"name": f"sales-{method}", "type": "SalesReceipt", "doc": doc})
    for method, lines in receipts(refunds, refund_rates).items():
        doc = _doc("RefundReceipt", m, ev.store, day, ref, method, lines, cur, note)
        steps.append({"name": f"refunds-{method}", "type": "RefundReceipt", "doc": doc})
    cash = report["cash"]
    je: list[dict[str, Any]] = []
    over_short = int(cash.get("over_short", 0))
    if over_short:
        word = "over" if over_short > 0 else "short"
        je.append(_je_line(m.account("over_short"), -over_short, cur, f"cash {word}"))
        je.append(_je_line(m.tender("cash"), over_short, cur, f"cash {word}"))
    moved = int(cash.get("cash_in", 0)) - int(cash.get("cash_out", 0))
    if moved:
        je.append(_je_line(m.tender("cash"), moved, cur, "cash in/out of the drawer"))
        je.append(_je_line(m.account("cash_moves"), -moved, cur, "cash in/out of the drawer"))
    if je:
        doc = {"TxnDate": day, "DocNumber": f"{ref}J", "PrivateNote": note, "Line": je}
        steps.append({"name": "cash", "type": "JournalEntry", "doc": doc})
    if not steps:
        return []
    return [
        Command("shift", key, (ev.id,), ev.store, day, {"reference": ref, "steps": steps}, summary)
    ]


def _payout(ev: Event, m: FieldMapping, day: str) -> Command:
    d = ev.data
    cur = d.get("currency", "EUR")
    key = command_key("quickbooks.payout", (ev.id,))
    ref = reference(key)
    lines = [
        {
            "Amount": _m(int(d["gross"]), cur),
            "DetailType": "DepositLineDetail",
            "Description": f"card payout {d['payout_id']}",
            "DepositLineDetail": {"AccountRef": {"value": m.tender("card")}},
        },
    ]
    if int(d["fee"]):
        lines.append(
            {
                "Amount": _m(-int(d["fee"]), cur),
                "DetailType": "DepositLineDetail",
                "Description": "card fees",
                "DepositLineDetail": {"AccountRef": {"value": m.account("fees")}},
            }
        )
    doc = {
        "TxnDate": day,
        "DocNumber": f"{ref}D",
        "PrivateNote": f"card payout {d['payout_id']} {ref}",
        "DepositToAccountRef": {"value": m.account("bank")},
        "Line": lines,
    }
    summary = f"card payout {d['payout_id']} to the bank"
    steps = [{"name": "deposit", "type": "Deposit", "doc": doc}]
    return Command(
        "payout", key, (ev.id,), ev.store, day, {"reference": ref, "steps": steps}, summary
    )
