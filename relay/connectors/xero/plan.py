# Pure planning for Xero: events + mapping -> the documents to create (golden-file tested).
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from relay.accounting.ledger import to_decimal
from relay.connectors.base import Command, Event
from relay.connectors.keys import command_key
from relay.connectors.mapping import FieldMapping, canonical_rate

Mode = Literal["journal", "invoice", "per_sale"]


@dataclass(frozen=True, slots=True)
class Options:
    """The parts of the connector's config that shape documents."""

    mode: Mode = "journal"
    tracking_category: str | None = None
    contact: str = "Tillbox sales"
    acquirer: str = "Card acquirer"
    journal_status: str = "POSTED"


def reference(key: str) -> str:
    """A short, unique, searchable reference of a command (Narration / Reference in Xero)."""
    return "TB-" + hashlib.sha256(key.encode()).hexdigest()[:16].upper()


def _m(amount: int, currency: str) -> str:
    return str(to_decimal(amount, currency))


def _tracking(m: FieldMapping, o: Options, store: str) -> list[dict[str, str]]:
    if not o.tracking_category:
        return []
    return [{"Name": o.tracking_category, "Option": m.tracking(store)}]


def _line(
    account: str,
    amount: int,
    cur: str,
    text: str,
    track: list[dict[str, str]],
    tax_type: str = "NONE",
    tax: int | None = None,
) -> dict[str, Any]:
    """A manual-journal line: `amount` to `account` (negative: a credit)."""
    line = {"Description": text, "AccountCode": account, "LineAmount": _m(amount, cur)}
    return _taxed(line, cur, tax_type, tax, track)


def _item(
    text: str,
    amount: int,
    cur: str,
    account: str,
    tax_type: str = "NONE",
    tax: int | None = None,
    track: list[dict[str, str]] | None = None,
    item_code: str | None = None,
) -> dict[str, Any]:
    """An invoice or credit-note line: one unit of `amount`."""
    item: dict[str, Any] = {} if item_code is None else {"ItemCode": item_code}
    item |= {
        "Description": text,
        "Quantity": "1",
        "UnitAmount": _m(amount, cur),
        "AccountCode": account,
    }
    return _taxed(item, cur, tax_type, tax, track)


def _taxed(
    line: dict[str, Any],
    cur: str,
    tax_type: str,
    tax: int | None,
    track: list[dict[str, str]] | None,
) -> dict[str, Any]:
    """A line's tax type, its tax amount when given, and its tracking when there is one."""
    line["TaxType"] = tax_type
    if tax is not None:
        line["TaxAmount"] = _m(tax, cur)
    if track:
        line["Tracking"] = track
    return line


def _step(name: str, type_: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": doc}


def _payment(
    m: FieldMapping, method: str, amount: int, cur: str, day: str, ref: str, target: str
) -> dict[str, Any]:
    """The step paying one tender's `amount` into the invoice (`$invoice`) or out of the
    credit note (`$credit`) an earlier step of the command created."""
    ref_key, id_key = (
        ("CreditNote", "CreditNoteID") if target == "$credit" else ("Invoice", "InvoiceID")
    )
    doc = {
        ref_key: {id_key: target},
        "Account": {"Code": m.tender(method)},
        "Date": day,
        "Amount": _m(amount, cur),
        "Reference": f"{ref} {method}",
    }
    return _step(f"payment-{method}", "Payment", doc)


def _cash_lines(
    m: FieldMapping, o: Options, store: str, cash: Mapping[str, Any], cur: str
) -> list[dict[str, Any]]:
    """Over/short and cash in/out of a Z report as journal lines (balanced pairs)."""
    track = _tracking(m, o, store)
    lines: list[dict[str, Any]] = []
    over_short = int(cash.get("over_short", 0))
    if over_short:
        word = "over" if over_short > 0 else "short"
        lines.append(_line(m.account("over_short"), -over_short, cur, f"cash {word}", track))
        lines.append(_line(m.tender("cash"), over_short, cur, f"cash {word}", track))
    moved = int(cash.get("cash_in", 0)) - int(cash.get("cash_out", 0))
    if moved:
        lines.append(_line(m.tender("cash"), moved, cur, "cash in/out of the drawer", track))
        lines.append(
            _line(m.account("cash_moves"), -moved, cur, "cash in/out of the drawer", track)
        )
    return lines


def _summary_parts(
    m: FieldMapping, report: Mapping[str, Any]
) -> tuple[dict[str, int], list[tuple[str, int, int]], int]:
    """(net per tender, [(rate, net, tax)], rounding) of a Z report, refunds taken off."""
    tenders = {k: int(v["net"]) for k, v in sorted(report.get("tenders", {}).items())}
    rates: list[tuple[str, int, int]] = []
    for t in report.get("taxes", []):
        rate = canonical_rate(t["rate"]) or t["rate"]
        net = int(t["net"]) - int(t.get("refund_net", 0))
        tax = int(t["tax"]) - int(t.get("refund_tax", 0))
        if net or tax:
            rates.append((rate, net, tax))
    rounding = sum(tenders.values()) - sum(n + t for _, n, t in rates)
    return tenders, rates, rounding


def plan(ev: Event, m: FieldMapping | None, o: Options, day: str, currency: str) -> list[Command]:
    """Xero commands for one event. Raises MissingMapping (via the mapping's lookups)."""
    if m is None:
        from relay.connectors.base import MissingMapping

        raise MissingMapping("no mapping file loaded")
    if ev.type == "shift.closed":
        return _shift(ev, m, o, day, currency)
    if ev.type == "settlement.paid_out":
        return [_payout(ev, m, o, day)]
    if o.mode == "per_sale" and ev.type == "sale.completed":
        return [_sale(ev, m, o, day)]
    if o.mode == "per_sale" and ev.type == "sale.refunded":
        return [_refund(ev, m, o, day)]
    return []


def _command(
    kind: str, ev: Event, day: str, steps: Sequence[dict[str, Any]], summary: str, key: str
) -> Command:
    return Command(
        kind=kind,
        key=key,
        sources=(ev.id,),
        store=ev.store,
        day=day,
        payload={"reference": reference(key), "steps": list(steps)},
        summary=summary,
    )


def _shift(ev: Event, m: FieldMapping, o: Options, day: str, cur: str) -> list[Command]:
    d = ev.data
    report = d["report"]
    key = command_key(f"xero.{o.mode}.shift", (ev.id,))
    ref = reference(key)
    track = _tracking(m, o, ev.store)
    where = f"{ev.store}/{ev.terminal}"
    summary = f"Z report {where} {day} (shift {d['shift_id'][:8]})"
    tenders, rates, rounding = _summary_parts(m, report)
    steps: list[dict[str, Any]] = []
    cash_lines = _cash_lines(m, o, ev.store, report["cash"], cur)
    summarised = o.mode in ("journal", "invoice")
    as_invoice = o.mode == "invoice" and all(v >= 0 for v in tenders.values())
    if summarised and not as_invoice:
        lines = [
            _line(m.tender(method), net, cur, f"{method} takings", track)
            for method, net in tenders.items()
            if net
        ]
        for rate, net, tax in rates:
            lines.append(
                _line(m.account("sales"), -net, cur, f"sales at {rate}%", track, m.tax(rate), -tax)
            )
        if rounding:
            lines.append(_line(m.account("rounding"), -rounding, cur, "cash rounding", track))
        lines += cash_lines
        if lines:
            journal = {
                "Narration": f"Tillbox {summary} {ref}",
                "Date": day,
                "Status": o.journal_status,
                "LineAmountTypes": "Exclusive",
                "JournalLines": lines,
            }
            steps.append(_step("journal", "ManualJournal", journal))
        return [_command("journal", ev, day, steps, summary, key)] if steps else []
    if as_invoice:
        items = [
            _item(f"sales at {rate}%", net, cur, m.account("sales"), m.tax(rate), tax, track)
            for rate, net, tax in rates
        ]
        if rounding:
            items.append(_item("cash rounding", rounding, cur, m.account("rounding")))
        if items:
            invoice = {
                "Type": "ACCREC",
                "Contact": {"Name": o.contact},
                "Date": day,
                "DueDate": day,
                "LineAmountTypes": "Exclusive",
                "Reference": ref,
                "CurrencyCode": cur,
                "Status": "AUTHORISED",
                "LineItems": items,
            }
            steps.append(_step("invoice", "Invoice", invoice))
            steps += [
                _payment(m, method, net, cur, day, ref, "$invoice")
                for method, net in tenders.items()
                if net
            ]
    if cash_lines:
        steps.append(
            _step(
                "cash",
                "ManualJournal",
                {
                    "Narration": f"Tillbox cash of {summary} {ref}",
                    "Date": day,
                    "Status": o.journal_status,
                    "LineAmountTypes": "NoTax",
                    "JournalLines": cash_lines,
                },
            )
        )
    return [_command(o.mode, ev, day, steps, summary, key)] if steps else []


def _payments(
    ev: Event, m: FieldMapping, day: str, cur: str, ref: str, target: str
) -> list[dict[str, Any]]:
    """A payment per tender against the invoice (or refunded from the credit note)."""
    by_method: dict[str, int] = {}
    for p in ev.data["payments"]:
        by_method[p["method"]] = by_method.get(p["method"], 0) + int(p["amount"])
    return [
        _payment(m, method, amount, cur, day, ref, target)
        for method, amount in sorted(by_method.items())
        if amount
    ]


def _sale_items(m: FieldMapping, o: Options, ev: Event, cur: str) -> list[dict[str, Any]]:
    """The lines of a sale or refund, then its cash rounding."""
    track = _tracking(m, o, ev.store)
    items = []
    for li in ev.data["lines"]:
        rate = canonical_rate(li["rate"]) or li["rate"]
        code = m.item(li["sku"])
        text = f"{li['name']} × {li['quantity']}"
        amount, tax = int(li["amount"]), int(li["tax"])
        items.append(
            _item(text, amount, cur, m.account("sales"), m.tax(rate), tax, track, item_code=code)
        )
    if ev.data.get("rounding"):
        items.append(_item("cash rounding", int(ev.data["rounding"]), cur, m.account("rounding")))
    return items


def _sale(ev: Event, m: FieldMapping, o: Options, day: str) -> Command:
    d = ev.data
    cur = d.get("currency", "EUR")
    key = command_key("xero.sale", (ev.id,))
    ref = reference(key)
    items = _sale_items(m, o, ev, cur)
    inclusive = d.get("tax_mode", "inclusive") == "inclusive"
    invoice = {
        "Type": "ACCREC",
        "Contact": {"Name": o.contact},
        "Date": day,
        "DueDate": day,
        "LineAmountTypes": "Inclusive" if inclusive else "Exclusive",
        "InvoiceNumber": d["receipt_no"],
        "Reference": ref,
        "CurrencyCode": cur,
        "Status": "AUTHORISED",
        "LineItems": items,
    }
    steps = [_step("invoice", "Invoice", invoice), *_payments(ev, m, day, cur, ref, "$invoice")]
    return _command("sale", ev, day, steps, f"sale {d['receipt_no']}", key)


def _refund(ev: Event, m: FieldMapping, o: Options, day: str) -> Command:
    d = ev.data
    cur = d.get("currency", "EUR")
    key = command_key("xero.refund", (ev.id,))
    ref = reference(key)
    items = _sale_items(m, o, ev, cur)
    taxed = any(int(li["gross"]) != int(li["amount"]) for li in d["lines"])
    credit = {
        "Type": "ACCRECCREDIT",
        "Contact": {"Name": o.contact},
        "Date": day,
        "LineAmountTypes": "Exclusive" if taxed else "Inclusive",
        "CreditNoteNumber": d["receipt_no"],
        "Reference": ref,
        "CurrencyCode": cur,
        "Status": "AUTHORISED",
        "LineItems": items,
    }
    steps = [_step("credit", "CreditNote", credit), *_payments(ev, m, day, cur, ref, "$credit")]
    return _command("refund", ev, day, steps, f"refund {d['receipt_no']}", key)


def _payout(ev: Event, m: FieldMapping, o: Options, day: str) -> Command:
    d = ev.data
    cur = d.get("currency", "EUR")
    key = command_key("xero.payout", (ev.id,))
    ref = reference(key)
    items = [
        {
            "Description": f"card payout {d['payout_id']}",
            "AccountCode": m.tender("card"),
            "LineAmount": _m(int(d["gross"]), cur),
            "TaxType": "NONE",
        },
    ]
    if int(d["fee"]):
        items.append(
            {
                "Description": "card fees",
                "AccountCode": m.account("fees"),
                "LineAmount": _m(-int(d["fee"]), cur),
                "TaxType": "NONE",
            }
        )
    bank = {
        "Type": "RECEIVE",
        "Contact": {"Name": o.acquirer},
        "BankAccount": {"Code": m.account("bank")},
        "Date": day,
        "Reference": f"{d['payout_id']} {ref}",
        "CurrencyCode": cur,
        "LineAmountTypes": "NoTax",
        "Status": "AUTHORISED",
        "LineItems": items,
    }
    summary = f"card payout {d['payout_id']} to the bank"
    return _command("payout", ev, day, [_step("payout", "BankTransaction", bank)], summary, key)
