# QuickBooks Online via python-quickbooks against its stand-in: receipts, deposit, requestid.
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from relay.accounting.settlement import parse, records
from relay.connectors.runtime import Runtime
from relay.store import Store

from .conftest import QBO_MAPPING, ingest, qbo_table, relay_config
from .helpers import settle
from .shopday import shop_day
from .standins.quickbooks import QuickBooksStandIn


def _sum(doc: dict) -> Decimal:  # type: ignore[type-arg]
    return sum((Decimal(str(line["Amount"])) for line in doc["Line"]), Decimal(0))


def test_z_report_and_payout_post_once_with_requestids(
    store: Store, db_url: str, quickbooks: QuickBooksStandIn
) -> None:
    day = shop_day(sales=20)
    ingest(store, day.envelopes)
    rt = Runtime(relay_config(db_url, {"qbo": qbo_table(quickbooks)}), store)
    rt.state.add_imported(records(parse(day.settlement_csv())))
    quickbooks.fail("429", retry_after=0.2)
    quickbooks.fail("503")
    quickbooks.fail("timeout", delay=2.5)
    assert settle(rt, lambda: rt.state.status("qbo").counts == {"done": 2}, timeout=60)
    st = quickbooks.state
    assert st.violations == [] and st.limit_hits == []
    closed = next(e for e in day.envelopes if e["type"] == "shift.closed")["data"]["report"]
    sales = {r["DepositToAccountRef"]["value"]: _sum(r) for r in quickbooks.created("SalesReceipt")}
    refunds = {
        r["DepositToAccountRef"]["value"]: _sum(r) for r in quickbooks.created("RefundReceipt")
    }
    tenders = closed["tenders"]
    assert sales == {
        "36": Decimal(tenders["cash"]["sales"]) / 100,
        "4": Decimal(tenders["card"]["sales"]) / 100,
    }
    assert refunds == {
        "36": Decimal(tenders["cash"]["refunds"]) / 100,
        "4": Decimal(tenders["card"]["refunds"]) / 100,
    }
    (journal,) = quickbooks.created("JournalEntry")
    assert {line["Description"] for line in journal["Line"]} >= {"cash short"}
    (deposit,) = quickbooks.created("Deposit")
    gross = sum(b["total"] for b in day.brands.values())
    fee = sum(b["total"] * 9 // 1000 for b in day.brands.values())
    assert _sum(deposit) == Decimal(gross - fee) / 100
    assert [line["DepositLineDetail"]["AccountRef"]["value"] for line in deposit["Line"]] == [
        "4",
        "71",
    ]
    creates = [r for r in st.requests if r.method == "POST" and not r.path.endswith("/query")]
    assert all(0 < len(r.query.get("requestid", "")) <= 50 for r in creates)
    assert all(r.query.get("minorversion") == "75" for r in creates)


def test_rotated_refresh_token_is_kept_and_a_400_is_a_dead_letter(
    store: Store, db_url: str, tmp_path: Path, quickbooks: QuickBooksStandIn
) -> None:
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        QBO_MAPPING.read_text(encoding="utf-8").replace('"*" = "1"', '"*" = "999"'),
        encoding="utf-8",
    )
    ingest(store, shop_day(sales=8).envelopes)
    rt = Runtime(relay_config(db_url, {"qbo": qbo_table(quickbooks, mapping)}), store)
    rt.worker("qbo").drain(10)
    assert rt.state.status("qbo").counts == {"dead": 1}
    (dead,) = rt.state.dead_letters()
    assert "Invalid Reference Id: Item" in dead["reason"] and dead["status"] == 400
    assert '"Fault"' in dead["remote"]
    # Intuit rotated the refresh token: a new relay process uses the rotated one.
    assert rt.state.get_value("qbo", "refresh_token") == quickbooks.state.refresh
    again = Runtime(relay_config(db_url, {"qbo": qbo_table(quickbooks, mapping)}), store)
    assert again.connectors[0].check(None) == ["no mapping file loaded"]
    assert quickbooks.state.rotations == 2
