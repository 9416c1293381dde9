# plan() and the ledger are pure: their output for fixed events is kept in golden files.
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from relay.accounting.ledger import entries
from relay.accounting.settlement import parse, records
from relay.connectors import parse_config
from relay.connectors.base import Connector, Context, Event
from relay.connectors.mapping import load as load_mapping
from relay.connectors.runtime import Timezones

from .conftest import DATA, QBO_MAPPING, XERO_MAPPING
from .shopday import shop_day

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TILLBOX_UPDATE_GOLDEN") == "1"
ZONES = Timezones("Europe/Berlin")


def _events() -> dict[str, Event]:
    """The events the golden files are made from, picked from one fixed shop day."""
    day = shop_day(sales=12, seed=11)
    evs = [Event.from_envelope(e) for e in day.envelopes]
    sales = [e for e in evs if e.type == "sale.completed"]
    imported = records(parse(day.settlement_csv()))[0]
    payout = Event(
        imported["id"],
        imported["type"],
        imported["store"],
        "",
        1,
        imported["at"],
        imported["data"],
        "import",
    )
    return {
        "shift_opened": next(e for e in evs if e.type == "shift.opened"),
        "sale_card": next(e for e in sales if e.data["payments"][0]["method"] == "card"),
        "sale_cash": next(e for e in sales if e.data["payments"][0]["method"] == "cash"),
        "sale_discount": next(e for e in sales if e.data["discount"]),
        "refund_card": next(
            e
            for e in evs
            if e.type == "sale.refunded" and e.data["payments"][0]["method"] == "card"
        ),
        "cash_moved": next(e for e in evs if e.type == "shift.cash_moved"),
        "batch": next(e for e in evs if e.type == "payment.batch_settled"),
        "shift_closed": next(e for e in evs if e.type == "shift.closed"),
        "payout": payout,
    }


EVENTS = _events()


def connector(table: dict[str, Any]) -> Connector:
    cls, conf = parse_config("golden", table)
    return cls("golden", conf, Context(store=None, timezone_of=ZONES))


XERO = {
    "kind": "xero",
    "client_id": "c",
    "client_secret": "s",
    "tenant_id": "t",
    "tracking_category": "Store",
}
QBO = {
    "kind": "quickbooks",
    "client_id": "c",
    "client_secret": "s",
    "refresh_token": "r",
    "realm_id": "1",
}
CASES: list[tuple[str, dict[str, Any], Path | None, list[str]]] = [
    ("xero-journal", XERO, XERO_MAPPING, ["shift_closed", "payout", "sale_card"]),
    ("xero-invoice", {**XERO, "mode": "invoice"}, XERO_MAPPING, ["shift_closed"]),
    (
        "xero-per-sale",
        {**XERO, "mode": "per_sale"},
        DATA / "mapping-xero-items.toml",
        ["sale_card", "sale_discount", "refund_card", "shift_closed"],
    ),
    ("quickbooks", QBO, QBO_MAPPING, ["shift_closed", "payout"]),
    ("beancount", {"kind": "beancount", "path": "/tmp/books"}, None, ["sale_card", "payout"]),
    ("reconcile", {"kind": "reconcile"}, None, ["shift_closed", "batch", "payout"]),
]


def check_golden(name: str, produced: Any) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(produced, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if UPDATE or not path.exists():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"{path} is missing; run with TILLBOX_UPDATE_GOLDEN=1 and review it")
        path.write_text(text, encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), (
        f"{name}: plan output changed; if on purpose, rerun with TILLBOX_UPDATE_GOLDEN=1 and "
        "review the diff of tests/connectors/golden/"
    )


@pytest.mark.parametrize(("name", "table", "mapping", "picks"), CASES, ids=[c[0] for c in CASES])
def test_plan_matches_golden(
    name: str, table: dict[str, Any], mapping: Path | None, picks: list[str]
) -> None:
    c = connector(table)
    m = load_mapping(mapping) if mapping else None
    produced = {pick: [cmd.to_dict() for cmd in c.plan(EVENTS[pick], m)] for pick in picks}
    again = {pick: [cmd.to_dict() for cmd in c.plan(EVENTS[pick], m)] for pick in picks}
    assert produced == again, "plan() must be deterministic"
    check_golden(name, produced)


def test_ledger_entries_match_golden() -> None:
    produced = {}
    for pick, ev in EVENTS.items():
        txns = entries(ev, ZONES.event_day(ev), "EUR")
        for t in txns:
            assert t.balanced(), f"{pick}: {t}"
        produced[pick] = [dataclasses.asdict(t) for t in txns]
    check_golden("ledger", produced)
