# Benchmark: the durable sale-completion transaction vs a bare SQLite insert+commit, same disk.
"""Completing a sale (Journal.append of sale.payment_added + sale.completed) against a raw
single-row sqlite3 insert+commit with the same pragmas, interleaved op by op.

Target: median(journal) / median(raw) <= 2.0. Always exits 0: it reports, it does not fail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import Shop, machine, ms, pct, raw_commit, raw_store, table, verdict

from terminal.journal import Checkpointer, NewEvent
from tillbox.contract import canonical, event_hash

TARGET_RATIO = 2.0
MAX_WARMUP = 5000


@dataclass
class Side:
    """One of the two contestants: its timings, split by whether its WAL file grew."""

    db: Path
    wrapped: bool = False
    growing: list[int] = field(default_factory=list)
    steady: list[int] = field(default_factory=list)

    def run(self, op: Callable[[], None]) -> tuple[int, bool]:
        """Time one op; also say whether it appended to the WAL (rather than reusing it)."""
        before = wal_size(self.db)
        t0 = time.perf_counter_ns()
        op()
        took = time.perf_counter_ns() - t0
        return took, wal_size(self.db) > before


def wal_size(db: Path) -> int:
    try:
        return os.stat(f"{db}-wal").st_size
    except FileNotFoundError:
        return 0


def row(name: str, values: list[int]) -> list[object]:
    return [
        name,
        len(values),
        ms(statistics.median(values)),
        ms(pct(values, 95)),
        ms(pct(values, 99)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 timed rounds instead of 1000")
    parser.add_argument("--rounds", type=int, help="timed rounds (one op of each kind per round)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (200 if args.quick else 1000)

    with tempfile.TemporaryDirectory(prefix="tillbox-bench-journal-") as tmp:
        folder = Path(tmp)
        print(f"machine: {machine(folder)}")
        print(f"bench_journal: {rounds} timed rounds in {folder}", flush=True)
        shop = Shop(folder / "state", port=8080, durable=True)
        shop.open_shift()
        raw = raw_store(folder / "raw.sqlite")
        checkpointer = Checkpointer(shop.config.journal_path)
        journal = Side(shop.config.journal_path)
        baseline = Side(folder / "raw.sqlite")
        cpu_ns: list[int] = []
        payload_bytes: list[int] = []
        lines: list[int] = []
        steady = 0
        i = 0
        while steady < rounds and i < rounds + MAX_WARMUP:
            sale_id = str(uuid.uuid4())
            shop.basket(sale_id)
            # Opening and scanning stay in memory: only the completing transaction is timed.
            shop.pending.clear()
            n_lines = len(shop.till.sale(sale_id).lines)
            events = shop.payment(sale_id)
            new = [NewEvent(str(uuid.uuid4()), t, d) for t, d in events]
            payload = "".join(canonical(d).decode() for _, d in events)
            out: list[dict[str, Any]] = []

            def journal_op(
                new: list[NewEvent] = new, at: str = shop.at, out: list[Any] = out
            ) -> None:
                out.extend(shop.journal.append(new, at))
                # As the daemon does: the WAL is checkpointed on another thread, not in here.
                if shop.journal.checkpoint_due():
                    checkpointer.request()

            def raw_op(payload: str = payload) -> None:
                raw_commit(raw, payload)

            # Alternate which goes first so drift and checkpoints hit both sides alike.
            if i % 2:
                r, r_grew = baseline.run(raw_op)
                j, j_grew = journal.run(journal_op)
            else:
                j, j_grew = journal.run(journal_op)
                r, r_grew = baseline.run(raw_op)
            t0 = time.perf_counter_ns()
            for env in out:
                event_hash(env)
                canonical(env["data"])
            c = time.perf_counter_ns() - t0
            for env in out:
                shop.till.apply(env["type"], env["data"], env["seq"], env["at"])
            shop.tick(30)
            i += 1
            if j_grew and r_grew and not (journal.wrapped or baseline.wrapped):
                journal.growing.append(j)
                baseline.growing.append(r)
            journal.wrapped |= not j_grew
            baseline.wrapped |= not r_grew
            if journal.wrapped and baseline.wrapped:
                steady += 1
                journal.steady.append(j)
                baseline.steady.append(r)
                cpu_ns.append(c)
                payload_bytes.append(len(payload.encode()))
                lines.append(n_lines)
        checkpointer.close()
        shop.journal.close()
        raw.close()

    if not journal.steady:
        print("the WAL files never wrapped; no steady-state numbers")
        return 0
    med_ratio = statistics.median(journal.steady) / statistics.median(baseline.steady)
    p95_ratio = pct(journal.steady, 95) / pct(baseline.steady, 95)
    g = len(journal.growing)
    print()
    print(
        table(
            ["op", "n", "median ms", "p95 ms", "p99 ms"],
            [
                row("Journal.append: payment_added + completed", journal.steady),
                row("  of which hash chain + canonical JSON (CPU)", cpu_ns),
                row("raw sqlite3 1-row insert+commit (baseline)", baseline.steady),
                row(f"Journal.append, WAL still growing (first {g})", journal.growing),
                row(f"raw insert+commit, WAL still growing (first {g})", baseline.growing),
            ],
        )
    )
    print()
    print(
        f"steady state = after both WAL files reached wal_autocheckpoint and were recycled "
        f"({i - rounds} pairs before that); payload {statistics.mean(payload_bytes):.0f} bytes "
        f"of event data per sale on average ({statistics.mean(lines):.1f} lines), the same "
        f"bytes in the raw row"
    )
    cpu_share = statistics.median(cpu_ns) / statistics.median(journal.steady)
    print(f"CPU share of the journal op (medians): {cpu_share:.0%}")
    if g:
        grow_ratio = statistics.median(journal.growing) / statistics.median(baseline.growing)
        print(f"ratio journal/raw while the WALs grow: median {grow_ratio:.2f}")
    print(f"ratio journal/raw (steady state): median {med_ratio:.2f}, p95 {p95_ratio:.2f}")
    print(f"target: median ratio <= {TARGET_RATIO}: {verdict(med_ratio <= TARGET_RATIO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
