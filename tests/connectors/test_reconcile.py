# End-of-day reconciliation: tenders, batches, payouts, cash, sequences; CLI and alerts.
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from relay.accounting.settlement import parse, records
from relay.connectors.runtime import Runtime
from relay.store import Store
from tillbox.cli import main
from tillbox.contract import event_hash

from .conftest import ingest, relay_config
from .helpers import write_config
from .shopday import shop_day


def _rechain(envs: list[dict[str, Any]]) -> None:
    for i, env in enumerate(envs):
        if i:
            env["prev_hash"] = envs[i - 1]["hash"]
        env["hash"] = event_hash(env)


def test_a_clean_day_shows_the_shortage_and_nothing_else(
    store: Store, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = shop_day(sales=30)
    ingest(store, day.envelopes)
    config = write_config(tmp_path / "relay.toml", db_url)
    csv = tmp_path / "settlement.csv"
    csv.write_text(day.settlement_csv(), encoding="utf-8")
    assert main(["relay", "settlement", "import", str(csv), "--config", str(config)]) == 0
    assert main(["relay", "settlement", "import", str(csv), "--config", str(config)]) == 0
    assert "1 payout(s), 0 new" in capsys.readouterr().out
    code = main(
        [
            "relay",
            "reconcile",
            "--store",
            "s1",
            "--day",
            "2026-11-27",
            "--json",
            "--config",
            str(config),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [d["kind"] for d in report["differences"]] == ["cash_over_short"]
    assert report["differences"][0]["expected"] - report["differences"][0]["actual"] == 350
    assert report["pending"] == []
    assert report["cash"][0]["relay_expected"] == report["cash"][0]["expected"]
    assert {b["brand"] for b in report["batches"][0]["brands"]} == set(day.brands)
    assert {p["brand"] for p in report["payouts"]} == set(day.brands)
    main(["relay", "reconcile", "--store", "s1", "--day", "2026-11-27", "--config", str(config)])
    table = capsys.readouterr().out
    assert "DIFFERENCES (1):" in table and "cash short by 3.50" in table


def test_card_payout_receipt_and_event_differences_are_found(
    store: Store, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = shop_day(sales=30, shortage=0)
    envs = json.loads(json.dumps(day.envelopes))
    sales = [e for e in envs if e["type"] == "sale.completed"]
    sales[4]["data"]["receipt_no"] = sales[5]["data"]["receipt_no"]  # 5 missing, 6 twice
    batch = next(e for e in envs if e["type"] == "payment.batch_settled")
    batch["data"]["terminal"]["brands"][0]["total"] += 50  # the terminal booked 0.50 more
    _rechain(envs)
    ingest(store, envs)
    other = shop_day(terminal="t2", sales=3, shortage=0, seed=99).envelopes
    ingest(store, other[:2] + other[3:])  # seq 3 of t2 never arrives
    rows = day.settlement_csv().splitlines()
    cols = rows[2].split(",")
    cols[7] = f"{float(cols[7]) - 1:.2f}"  # the acquirer paid 1.00 less gross for one brand
    cols[9] = f"{float(cols[7]) - float(cols[8]):.2f}"
    rows[2] = ",".join(cols)
    config = write_config(tmp_path / "relay.toml", db_url)
    csv = tmp_path / "settlement.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["relay", "settlement", "import", str(csv), "--config", str(config)]) == 0
    capsys.readouterr()
    main(
        [
            "relay",
            "reconcile",
            "--store",
            "s1",
            "--day",
            "2026-11-27",
            "--json",
            "--config",
            str(config),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    kinds = sorted(d["kind"] for d in report["differences"])
    # The terminal's extra 0.50 shows against the journal and against the payout (paid on the
    # journal's amount); the other brand was paid 1.00 short.
    assert kinds == [
        "card_batch_total",
        "events_missing",
        "payout_gross",
        "payout_gross",
        "receipt_duplicate",
        "receipt_missing",
    ]
    by_kind = {d["kind"]: d for d in report["differences"]}
    assert by_kind["card_batch_total"]["actual"] - by_kind["card_batch_total"]["expected"] == 50
    assert by_kind["events_missing"]["where"] == "s1/t2"
    assert "receipt number(s) 5 missing" in by_kind["receipt_missing"]["detail"]


def test_an_alert_goes_out_once_per_change(store: Store, db_url: str) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    day = shop_day(sales=10)
    ingest(store, day.envelopes)
    rt = Runtime(relay_config(db_url), store, publish=lambda t, p: sent.append((t, json.loads(p))))
    rt.drain(30)
    assert len(sent) == 1
    topic, alert = sent[0]
    assert topic == "tillbox/v1/s1/alerts"
    assert alert["schema"] == "tillbox.alert/1" and alert["kind"] == "reconciliation"
    assert [d["kind"] for d in alert["differences"]] == ["cash_over_short"]
    assert alert["pending"] == ["s1/t1 batch 1: not paid out yet (no settlement report imported)"]
    # The payout arrives: reconciled again, the differences are the same, no new alert.
    rt.state.add_imported(records(parse(day.settlement_csv())))
    rt.drain(30)
    assert rt.state.status("reconcile").counts == {"done": 2}
    assert len(sent) == 1


def test_a_batch_named_only_by_its_settlement_id_still_matches_its_payout(
    store: Store, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The till's `settle_batch` names the batch by `settlement_id` and may not say which card
    terminal closed it: the acquirer's row for that batch name is its payout."""
    day = shop_day(sales=12, shortage=0)
    envs = json.loads(json.dumps(day.envelopes))
    batch = next(e for e in envs if e["type"] == "payment.batch_settled")["data"]
    del batch["terminal_id"], batch["batch"]
    _rechain(envs)
    ingest(store, envs)
    csv = tmp_path / "settlement.csv"
    csv.write_text(
        day.settlement_csv().replace(",52500001,1,", f",52500001,{batch['settlement_id']},"),
        encoding="utf-8",
    )
    config = write_config(tmp_path / "relay.toml", db_url)
    assert main(["relay", "settlement", "import", str(csv), "--config", str(config)]) == 0
    capsys.readouterr()
    code = main(
        [
            "relay",
            "reconcile",
            "--store",
            "s1",
            "--day",
            "2026-11-27",
            "--json",
            "--config",
            str(config),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert (code, report["differences"], report["pending"]) == (0, [], [])
    assert {p["brand"] for p in report["payouts"]} == set(day.brands)
