# The internal ledger and its Beancount export: balanced, settled, accepted by beancount's loader.
from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from relay.accounting.ledger import balances, postings
from relay.accounting.settlement import parse, records
from relay.connectors.beancount.export import MAIN, validate
from relay.connectors.runtime import Runtime
from relay.store import Store
from tillbox.contract import event_hash

from .conftest import ingest, relay_config
from .shopday import shop_day


def _books(rt: Runtime, tmp_path: Path) -> Path:
    rt.drain(60)
    return tmp_path / "books" / MAIN


def _clearing(engine: Any) -> dict[str, int]:
    return {
        a: v
        for a, v in balances(engine).items()
        if a.startswith(("Assets:Cash:Drawer:", "Assets:Clearing:"))
    }


def test_shop_days_balance_settle_and_load_in_beancount(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    days = [
        shop_day("s1", "t1", sales=25, seed=1),
        shop_day("s1", "t2", sales=15, seed=2, shortage=0),
        shop_day("s2", "t1", sales=20, seed=3, mode="exclusive", shortage=-120),
    ]
    for d in days:
        ingest(store, d.envelopes)
    config = relay_config(db_url, {"books": {"kind": "beancount", "path": str(tmp_path / "books")}})
    rt = Runtime(config, store)
    csv = "".join(
        d.settlement_csv(payout_id=f"PO-{i}").split("\n", 1)[1] if i else d.settlement_csv("PO-0")
        for i, d in enumerate(days)
    )
    rt.state.add_imported(records(parse(csv)))
    main = _books(rt, tmp_path)
    with store.engine.connect() as conn:
        unbalanced = conn.execute(
            select(postings.c.txn_id)
            .group_by(postings.c.txn_id)
            .having(func.sum(postings.c.amount) != 0)
        ).all()
    assert unbalanced == []
    assert set(_clearing(store.engine).values()) == {0}, _clearing(store.engine)
    all_balances = balances(store.engine)
    assert sum(all_balances.values()) == 0
    assert all_balances["Expenses:Cash:OverShort:S1"] == 350
    assert all_balances["Expenses:Cash:OverShort:S2"] == -120
    assert not any(a.startswith("Equity:Suspense") for a in all_balances)
    assert validate(main) == []
    text = (tmp_path / "books" / "s1" / "2026-11-27.beancount").read_text(encoding="utf-8")
    for account in ("Assets:Cash:Drawer:S1:T1", "Assets:Clearing:Card:S1:T2"):
        assert f"2026-11-28 balance {account}  0.00 EUR" in text
    payout_day = (tmp_path / "books" / "s1" / "2026-11-28.beancount").read_text(encoding="utf-8")
    assert "2026-11-29 balance Assets:Clearing:Acquirer:S1  0.00 EUR" in payout_day

    from beancount import loader
    from beancount.core import realization

    entries, errors, _ = loader.load_file(str(main))
    assert errors == []
    real = realization.realize(entries)
    for account in _clearing(store.engine):
        inv = realization.get(real, account).balance
        assert inv.is_empty(), f"{account} holds {inv}"


def test_a_batch_that_does_not_settle_fails_the_balance_assertion(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    day = shop_day(sales=12)
    envs = copy.deepcopy(day.envelopes)
    # The box's journal side claims 1.00 more card takings than the relay holds: the card
    # clearing cannot net to zero, and beancount's loader must say so.
    for i, env in enumerate(envs):
        if env["type"] == "payment.batch_settled":
            env["data"]["journal"]["brands"][0]["total"] += 100
        if i:
            env["prev_hash"] = envs[i - 1]["hash"]
        env["hash"] = event_hash(env)
    ingest(store, envs)
    rt = Runtime(
        relay_config(db_url, {"books": {"kind": "beancount", "path": str(tmp_path / "books")}}),
        store,
    )
    errors = validate(_books(rt, tmp_path))
    assert len(errors) == 1 and "Balance failed for 'Assets:Clearing:Card:S1:T1'" in errors[0]
    assert balances(store.engine)["Expenses:Card:Differences:S1"] == 100


def test_the_ledger_and_every_connector_give_way_before_each_round(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    asked: set[str] = set()
    everyone = {"connector-ledger", "connector-reconcile", "connector-books"}
    config = relay_config(db_url, {"books": {"kind": "beancount", "path": str(tmp_path / "b")}})
    rt = Runtime(
        config,
        store,
        poll_s=0.02,
        give_way=lambda stop: asked.add(threading.current_thread().name),
    )
    rt.start()
    try:
        deadline = time.monotonic() + 10
        while asked != everyone and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        rt.stop()
    assert asked == everyone
