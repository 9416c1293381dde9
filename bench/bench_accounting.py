# Benchmark: ledgering and planning 100,000 sales; exporting and validating a 10,000-sale day.
"""Targets (issue 7): planning and ledgering 100,000 sales < 30 s; a day's Beancount export for
10,000 sales validates < 10 s. Baselines, measured in the same run on the same database: reading
the same events back (SELECT + JSON decode), and beancount's loader on the exported day alone.

    python bench/bench_accounting.py [--quick] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select  # noqa: E402

from relay.config import DatabaseConfig, LedgerConfig, RelayConfig  # noqa: E402
from relay.connectors.beancount.export import MAIN, export_day, validate, write_main  # noqa: E402
from relay.connectors.runtime import Runtime  # noqa: E402
from relay.store import Store, events, heads  # noqa: E402
from tests.connectors.shopday import shop_day  # noqa: E402
from tillbox.contract import GENESIS_HASH  # noqa: E402

MAPPING = ROOT / "tests" / "connectors" / "data" / "mapping-xero-items.toml"


def templates() -> list[dict[str, Any]]:
    """Real sale.completed data from the sale domain (cash and card, discounts, weights)."""
    out: list[dict[str, Any]] = []
    for seed in range(4):
        day = shop_day(sales=60, seed=seed)
        out += [e["data"] for e in day.envelopes if e["type"] == "sale.completed"]
    return out


def fill(store: Store, n: int, day: str, terminal: str) -> None:
    """n sale.completed events of one till on one day, written straight into the store (the
    ingest path has its own benchmark); hashes are placeholders, the chain is not re-checked."""
    base = templates()
    start = datetime.fromisoformat(f"{day}T07:00:00+00:00")
    step = timedelta(seconds=max(1, 12 * 3600 // n))
    rows = []
    for i in range(n):
        data = json.loads(json.dumps(base[i % len(base)]))
        data["sale_id"] = str(uuid.uuid4())
        data["receipt_no"] = f"s1-{terminal}-{i + 1:06d}"
        at = (start + step * i).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "store": "s1",
                "terminal": terminal,
                "seq": i + 1,
                "type": "sale.completed",
                "at": at,
                "prev_hash": GENESIS_HASH,
                "hash": uuid.uuid4().hex * 2,
                "data": data,
                "received_at": datetime.now(UTC),
            }
        )
    with store.engine.begin() as conn:
        for i in range(0, n, 5000):
            conn.execute(insert(events), rows[i : i + 5000])
        conn.execute(
            insert(heads).values(
                store="s1", terminal=terminal, seq=n, hash=rows[-1]["hash"],
                updated_at=datetime.now(UTC), waiting=0,
            )
        )  # fmt: skip


def read_back(store: Store, terminal: str) -> float:
    t = time.perf_counter()
    with store.engine.connect() as conn:
        for r in conn.execute(select(events.c.data).where(events.c.terminal == terminal)):
            _ = r.data["payments"]
    return time.perf_counter() - t


def config(url: str, books: Path) -> RelayConfig:
    return RelayConfig(
        database=DatabaseConfig(url=url),
        ledger=LedgerConfig(timezone="Europe/Berlin"),
        connectors={
            "xero": {"kind": "xero", "mode": "per_sale", "mapping": str(MAPPING),
                     "client_id": "c", "client_secret": "s", "tenant_id": "t",
                     "tracking_category": "Store"},
            "books": {"kind": "beancount", "path": str(books)},
        },
    )  # fmt: skip


def bench_plan_and_ledger(url: str, n: int, books: Path) -> dict[str, float]:
    store = Store(url)
    fill(store, n, "2026-11-27", "t1")
    rt = Runtime(config(url, books), store, only={"xero"})
    baseline = read_back(store, "t1")
    t, c = time.perf_counter(), time.process_time()
    while rt.ledger.run_once(limit=5000):
        pass
    ledger_s, ledger_cpu = time.perf_counter() - t, time.process_time() - c
    w = rt.worker("xero")
    w.mapping.refresh()
    t, c = time.perf_counter(), time.process_time()
    while rt.state.feed(
        "xero", w._plan, limit=5000, mapping_digest=w.mapping.current.digest
    ).events:
        pass
    plan_s, plan_cpu = time.perf_counter() - t, time.process_time() - c
    queued = len(rt.state.rows("xero", "ready"))
    assert queued == n, f"{queued} commands for {n} sales"
    store.close()
    return {
        "read": baseline,
        "ledger": ledger_s,
        "plan": plan_s,
        "ledger_cpu": ledger_cpu,
        "plan_cpu": plan_cpu,
    }


def bench_export(url: str, n: int, books: Path) -> dict[str, float]:
    store = Store(url)
    fill(store, n, "2026-11-27", "t2")
    rt = Runtime(config(url, books), store, only=set())
    while rt.ledger.run_once(limit=5000):
        pass
    t = time.perf_counter()
    export_day(store.engine, books, "s1", "2026-11-27")
    write_main(store.engine, books, "Tillbox", ["EUR"])
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    errors = validate(books / MAIN)
    validate_s = time.perf_counter() - t
    assert errors == [], errors[:3]
    store.close()
    return {"export": export_s, "validate": validate_s}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 and 2,000 sales")
    parser.add_argument("--postgres", metavar="URL", help="postgresql+psycopg://… (empty db)")
    args = parser.parse_args()
    n_plan, n_day = (10_000, 2_000) if args.quick else (100_000, 10_000)
    with tempfile.TemporaryDirectory(prefix="bench-accounting-") as tmp:
        folder = Path(tmp)
        url = args.postgres or f"sqlite:///{folder / 'relay.sqlite'}"
        a = bench_plan_and_ledger(url, n_plan, folder / "books1")
        b = bench_export(args.postgres or f"sqlite:///{folder / 'day.sqlite'}", n_day,
                         folder / "books2")  # fmt: skip
    load = os.getloadavg()[0]
    total = a["ledger"] + a["plan"]
    day = b["export"] + b["validate"]
    print(f"machine: {os.cpu_count()} CPUs, 1-min load {load:.2f}; database {url.split(':')[0]}")
    print(f"{'measure':<52}{'seconds':>10}{'ratio':>9}")
    print(
        f"{'baseline: read ' + f'{n_plan:,}' + ' sales back (SELECT + JSON)':<52}{a['read']:>10.2f}"
    )
    print(
        f"{'ledger ' + f'{n_plan:,}' + ' sales (txns + postings)':<52}{a['ledger']:>10.2f}"
        f"{a['ledger'] / a['read']:>9.1f}"
    )
    print(
        f"{'plan ' + f'{n_plan:,}' + ' sales for Xero per sale (and queue)':<52}{a['plan']:>10.2f}"
        f"{a['plan'] / a['read']:>9.1f}"
    )
    print(
        f"{'planning + ledgering, target < 30 s':<52}{total:>10.2f}   "
        f"{'OK' if total < 30 else 'OVER'}"
    )
    cpu = a["ledger_cpu"] + a["plan_cpu"]
    print(
        f"{'  the same in CPU seconds of this process':<52}{cpu:>10.2f}   "
        f"{'OK' if cpu < 30 else 'OVER'}"
    )
    print(
        f"{'export a day of ' + f'{n_day:,}' + ' sales to Beancount':<52}{b['export']:>10.2f}"
        f"{b['export'] / b['validate']:>9.2f}"
    )
    print(f"{'baseline: beancount loader on that day':<52}{b['validate']:>10.2f}")
    print(f"{'export + validate, target < 10 s':<52}{day:>10.2f}   {'OK' if day < 10 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
