# Xero via its SDK against the stand-in: spec-valid, posted once through faults; modes; drift.
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from relay.accounting.settlement import parse, records
from relay.connectors.runtime import Runtime
from relay.store import Store
from tillbox.cli import main

from .conftest import DATA, XERO_MAPPING, ingest, relay_config, xero_table
from .helpers import settle, write_config
from .shopday import shop_day
from .standins.xero import XeroStandIn, day_of


def _creates(x: XeroStandIn, collection: str) -> int:
    return len([r for r in x.creates() if r.path.endswith(collection)])


def test_journal_and_payout_posted_once_despite_429_5xx_and_timeouts(
    store: Store, db_url: str, xero: XeroStandIn
) -> None:
    day = shop_day(sales=20)
    ingest(store, day.envelopes)
    rt = Runtime(relay_config(db_url, {"xero": xero_table(xero)}), store)
    rt.state.add_imported(records(parse(day.settlement_csv())))
    xero.fail("429", retry_after=0.3)
    xero.fail("500")
    xero.fail("timeout", delay=2.5, only="ManualJournals")  # created, the answer comes too late
    xero.fail("503")
    assert settle(rt, lambda: rt.state.status("xero").counts == {"done": 2}, timeout=60)
    (journal,) = xero.created("ManualJournals")
    (bank,) = xero.created("BankTransactions")
    assert _creates(xero, "ManualJournals") == 1 and _creates(xero, "BankTransactions") == 1
    assert xero.state.violations == [] and xero.state.limit_hits == []
    problems = {r.problem for r in xero.requests if r.problem}
    assert {"injected:429", "injected:500", "injected:503"} <= problems
    lookups = [r for r in xero.requests if r.method == "GET" and r.query.get("where")]
    assert lookups, "an uncertain outcome (timeout, 5xx) is looked up before posting again"
    # The journal is the Z report: balanced, dated on the shop's day, tracked to the store.
    lines = journal["JournalLines"]
    total = sum(Decimal(str(x["LineAmount"])) + Decimal(str(x.get("TaxAmount", 0))) for x in lines)
    assert total == 0 and day_of(journal["Date"]) == "2026-11-27"
    assert {t["Option"] for x in lines for t in x["Tracking"]} == {"Berlin Mitte"}
    short = [x for x in lines if x["AccountCode"] == "405"]
    assert [Decimal(str(x["LineAmount"])) for x in short] == [Decimal("3.5")]
    card = sum(b["total"] for b in day.brands.values())
    fee = sum(b["total"] * 9 // 1000 for b in day.brands.values())
    items = {x["AccountCode"]: Decimal(str(x["LineAmount"])) for x in bank["LineItems"]}
    assert items == {"613": Decimal(card) / 100, "404": -Decimal(fee) / 100}
    assert all(r.headers.get("idempotency-key") for r in xero.requests if r.method == "PUT")


def test_api_down_for_a_long_while_then_everything_posts_once(
    store: Store, db_url: str, xero: XeroStandIn
) -> None:
    for n in range(3):
        ingest(store, shop_day(terminal=f"t{n + 1}", sales=5, seed=n).envelopes)
    xero.stop()
    table = xero_table(xero, timeout_s=0.5)
    rt = Runtime(relay_config(db_url, {"xero": table}), store, poll_s=0.02)
    rt.start()
    try:
        time.sleep(3.0)  # down: every attempt fails and backs off (to at most 0.5 s here)
        rows = rt.state.rows("xero")
        assert len(rows) == 3 and all(r["attempts"] >= 3 for r in rows)
        assert rt.state.status("xero").failing
        xero.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(xero.created("ManualJournals")) < 3:
            time.sleep(0.05)
    finally:
        rt.stop()
    assert len(xero.created("ManualJournals")) == 3
    assert _creates(xero, "ManualJournals") == 3
    assert rt.state.status("xero").failing is None


@pytest.mark.soak
def test_api_down_for_two_minutes_with_real_backoff(
    store: Store, db_url: str, xero: XeroStandIn
) -> None:
    ingest(store, shop_day(sales=5).envelopes)
    xero.stop()
    table = xero_table(xero, timeout_s=1.0, backoff_initial_s=1.0, backoff_max_s=20.0)
    rt = Runtime(relay_config(db_url, {"xero": table}), store)
    rt.start()
    try:
        time.sleep(120)
        xero.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not xero.created("ManualJournals"):
            time.sleep(0.2)
    finally:
        rt.stop()
    assert _creates(xero, "ManualJournals") == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_invoice_mode_posts_an_invoice_with_a_payment_per_tender(
    store: Store, db_url: str, xero: XeroStandIn
) -> None:
    day = shop_day(sales=15)
    ingest(store, day.envelopes)
    rt = Runtime(relay_config(db_url, {"xero": xero_table(xero, mode="invoice")}), store)
    assert settle(rt, lambda: rt.state.status("xero").counts == {"done": 1})
    (invoice,) = xero.created("Invoices")
    payments = xero.created("Payments")
    assert {p["Account"]["Code"] for p in payments} == {"612", "613"}
    assert all(p["Invoice"]["InvoiceID"] == invoice["InvoiceID"] for p in payments)
    invoice_total = sum(
        Decimal(str(i["UnitAmount"])) + Decimal(str(i.get("TaxAmount", 0)))
        for i in invoice["LineItems"]
    )
    assert invoice_total == sum(Decimal(str(p["Amount"])) for p in payments)
    (cash,) = xero.created("ManualJournals")  # over/short and cash in/out
    assert {x["AccountCode"] for x in cash["JournalLines"]} == {"405", "612", "611"}
    assert xero.state.violations == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_per_sale_mode_waits_for_item_codes_then_posts_each_sale(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    standin = XeroStandIn(items={"GOODS", "ROLL-RYE"})
    standin.start()
    try:
        day = shop_day(sales=6)
        ingest(store, day.envelopes)
        mapping = tmp_path / "mapping.toml"
        mapping.write_text(XERO_MAPPING.read_text(encoding="utf-8"), encoding="utf-8")
        rt = Runtime(
            relay_config(db_url, {"xero": xero_table(standin, mapping, mode="per_sale")}), store
        )
        rt.worker("xero").drain(10)
        st = rt.state.status("xero")
        assert st.counts.get("waiting") == 8 and "has no item code" in st.waiting[0][1]
        time.sleep(0.01)
        mapping.write_text((DATA / "mapping-xero-items.toml").read_text(encoding="utf-8"))
        assert settle(rt, lambda: set(rt.state.status("xero").counts) == {"done"}, timeout=60)
        sales = [e for e in day.envelopes if e["type"] == "sale.completed"]
        refunds = [e for e in day.envelopes if e["type"] == "sale.refunded"]
        invoices = standin.created("Invoices")
        assert sorted(i["InvoiceNumber"] for i in invoices) == sorted(
            e["data"]["receipt_no"] for e in sales
        )
        assert len(standin.created("CreditNotes")) == len(refunds) == 2
        assert len(standin.created("Payments")) == len(sales) + len(refunds)
        assert standin.state.violations == []
    finally:
        standin.stop()


def test_check_names_mapping_problems(
    store: Store, db_url: str, tmp_path: Path, xero: XeroStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    text = XERO_MAPPING.read_text(encoding="utf-8")
    bad.write_text(text.replace('bank = "090"', 'bank = "200"').replace('"OUTPUT2"', '"VAT19"'))
    good = write_config(tmp_path / "good.toml", db_url, {"xero": xero_table(xero)})
    wrong = write_config(tmp_path / "wrong.toml", db_url, {"xero": xero_table(xero, bad)})
    capsys.readouterr()
    assert main(["relay", "connectors", "check", "--config", str(good)]) == 0
    assert "xero: OK" in capsys.readouterr().out
    assert main(["relay", "connectors", "check", "xero", "--config", str(wrong)]) == 1
    out = capsys.readouterr().out
    assert "bank = '200': not a bank account" in out
    assert "'VAT19': no such tax type" in out


def test_drift_finds_a_journal_voided_in_xero(
    store: Store, db_url: str, tmp_path: Path, xero: XeroStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(store, shop_day(sales=5).envelopes)
    table = xero_table(xero)
    rt = Runtime(relay_config(db_url, {"xero": table}), store)
    assert settle(rt, lambda: rt.state.status("xero").counts == {"done": 1})
    config = write_config(tmp_path / "relay.toml", db_url, {"xero": table})
    capsys.readouterr()
    assert main(["relay", "connectors", "drift", "xero", "--config", str(config)]) == 0
    (journal,) = xero.created("ManualJournals")
    journal["Status"] = "VOIDED"  # someone voided it in Xero
    assert main(["relay", "connectors", "drift", "xero", "--config", str(config)]) == 1
    assert "the journal is VOIDED in Xero" in capsys.readouterr().out
