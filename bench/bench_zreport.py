# Benchmark: X and Z shift reports through the daemon, 100k vs 1M journal events side by side.
"""Prefill journals of two sizes (closed shifts of 500 sales, then an open shift holding the
last 2,000 sales), start the daemon on each and time the X report (GET /api/v1/shifts/current)
and the Z report (POST /api/v1/shifts/current/close); a full `SELECT count(*) FROM events` in
the same run shows what a history-proportional cost looks like.

Target: X and Z < 200 ms, and not proportional to history. Always exits 0.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from benchlib import Daemon, Shop, free_port, login, machine, pct, table, verdict

from terminal.journal import connect

TARGET_MS = 200.0
OPEN_SALES = 2_000
MAX_GROWTH = 2.0  # the most a report may slow down while history grows 4-10x


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[int, httpx.Response]:
    t0 = time.perf_counter_ns()
    r = fn(*args, **kwargs)
    took = time.perf_counter_ns() - t0
    r.raise_for_status()
    return took, r


def measure(size: int, folder: Path, repeat: int) -> dict[str, Any]:
    """Prefill about `size` events, then time the reports through a fresh daemon."""
    port = free_port()
    shop = Shop(folder, port, seed=size)
    t0 = time.perf_counter()
    shop.fill_events(size, open_sales=OPEN_SALES)
    info = shop.finish()
    info["prefill_s"] = time.perf_counter() - t0
    oldest = shop.closed_shifts[0]

    conn = connect(shop.config.journal_path, readonly=True)
    scan: list[int] = []
    for _ in range(5):
        t = time.perf_counter_ns()
        conn.execute("SELECT count(*) FROM events").fetchone()
        scan.append(time.perf_counter_ns() - t)
    plan = conn.execute("EXPLAIN QUERY PLAN SELECT count(*) FROM events").fetchall()
    conn.close()
    res: dict[str, Any] = {"info": info, "scan": scan, "plan": plan[-1][-1]}

    with Daemon(shop.config_path, port, folder / "daemon.log") as daemon:
        res["startup_s"] = daemon.startup_s
        with httpx.Client(base_url=daemon.url, timeout=60) as client:
            login(client)
            current = client.get("/api/v1/shifts/current").json()
            shift_id = current["shift_id"]
            x: list[int] = []
            x_by_id: list[int] = []
            health: list[int] = []
            for _ in range(5 + repeat):
                x.append(timed(client.get, "/api/v1/shifts/current")[0])
                x_by_id.append(timed(client.get, f"/api/v1/shifts/{shift_id}/report")[0])
                health.append(timed(client.get, "/healthz")[0])
            res["x"], res["x_by_id"], res["health"] = x[5:], x_by_id[5:], health[5:]
            report = current["report"]
            took, r = timed(
                client.post,
                "/api/v1/shifts/current/close",
                headers=key(),
                json={"counted": report["cash"]["expected"]},
            )
            z = r.json()
            assert z["kind"] == "Z" and z["sales"]["count"] == report["sales"]["count"], z
            res["z"] = took
            res["z_sales"] = z["sales"]["count"]
            reprint: list[int] = []
            reprint_old: list[int] = []
            for _ in range(repeat):
                reprint.append(timed(client.get, f"/api/v1/shifts/{shift_id}/report")[0])
                reprint_old.append(timed(client.get, f"/api/v1/shifts/{oldest}/report")[0])
            res["reprint"], res["reprint_old"] = reprint, reprint_old
            fresh: list[int] = []
            for _ in range(20):
                timed(client.post, "/api/v1/shifts", headers=key(), json={"opening_float": 15_000})
                fresh.append(
                    timed(
                        client.post,
                        "/api/v1/shifts/current/close",
                        headers=key(),
                        json={"counted": 15_000},
                    )[0]
                )
            res["z_fresh"] = fresh
        res["rss_mb"] = daemon.memory_kb()["VmRSS"] / 1024
    return res


def fmt(ns: float) -> str:
    return f"{ns / 1e6:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="journals of 25,000 and 100,000 events instead of 100,000 and 1M",
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="journal sizes in events")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([25_000, 100_000] if args.quick else [100_000, 1_000_000])
    repeat = 100 if args.quick else 200

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tillbox-bench-zreport-") as tmp:
        print(f"machine: {machine(Path(tmp))}")
        for size in sizes:
            folder = Path(tmp) / f"state-{size}"
            print(f"bench_zreport: prefilling about {size:,} events ...", flush=True)
            res = measure(size, folder, repeat)
            info = res["info"]
            print(
                f"  {info['events']:,} events, {info['sales']:,} sales, {info['shifts']} "
                f"shifts, {info['db_mb']:.0f} MB journal, prefill {info['prefill_s']:.0f} s; "
                f"count(*) plan: {res['plan']}",
                flush=True,
            )
            results.append(res)
            shutil.rmtree(folder)

    def p(key: str, q: float) -> list[float]:
        return [pct(r[key], q) for r in results]

    def growth(values: list[float]) -> str:
        return f"{values[-1] / values[0]:.2f}x" if values[0] else "-"

    events = [float(r["info"]["events"]) for r in results]
    rows: list[list[str]] = []

    def add(name: str, values: list[float], unit: str = "ms") -> None:
        shown = [fmt(v) if unit == "ms" else f"{v:.2f}" for v in values]
        rows.append([name, *shown, growth(values)])

    rows.append(["journal events", *(f"{e:,.0f}" for e in events), growth(events)])
    add("baseline: SELECT count(*) FROM events, median", p("scan", 50))
    add("X: GET /shifts/current, p50", p("x", 50))
    add("X: GET /shifts/current, p99", p("x", 99))
    add("X: GET /shifts/{id}/report (open), p50", p("x_by_id", 50))
    add(f"Z: close the {OPEN_SALES:,}-sale shift (1 sample)", [float(r["z"]) for r in results])
    add("Z: close a fresh shift, p50 (n=20)", p("z_fresh", 50))
    add("Z: close a fresh shift, max (n=20)", p("z_fresh", 100))
    add("Z reprint: GET /shifts/{id}/report, p50", p("reprint", 50))
    add("Z reprint of the oldest shift, p50", p("reprint_old", 50))
    add("GET /healthz (outbox acked), p50", p("health", 50))
    add(
        "outbox_stats() with the outbox unacked (1 call)",
        [float(r["info"]["outbox_stats_ns"]) for r in results],
    )
    add("daemon start-up to /healthz (s)", [r["startup_s"] for r in results], unit="s")
    add("daemon VmRSS after the run (MB)", [r["rss_mb"] for r in results], unit="MB")
    print()
    print(table(["ms unless noted", *(f"{int(e):,} events" for e in events), "growth"], rows))
    print()

    largest = results[-1]
    worst = (
        max(
            pct(largest["x"], 99),
            float(largest["z"]),
            pct(largest["reprint"], 99),
            pct(largest["z_fresh"], 100),
        )
        / 1e6
    )
    checks = [p("x", 50), p("z_fresh", 50), p("reprint", 50)]
    worst_growth = max(v[-1] / v[0] for v in checks)
    history = events[-1] / events[0]
    scan = p("scan", 50)
    print(
        f"history grew {history:.1f}x; the count(*) scan grew {scan[-1] / scan[0]:.1f}x; "
        f"the reports (X p50, Z fresh p50, Z reprint p50) grew at most {worst_growth:.2f}x"
    )
    print(
        f"target: X and Z < {TARGET_MS:.0f} ms at {events[-1]:,.0f} events (slowest "
        f"{worst:.1f} ms): {verdict(worst < TARGET_MS)}"
    )
    print(
        f"target: not proportional to history (growth <= {MAX_GROWTH:.0f}x): "
        f"{verdict(worst_growth <= MAX_GROWTH)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
