# Shared bench helpers: a shop that fills a real journal fast, the daemon as a subprocess, stats.
from __future__ import annotations

import datetime as dt
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from terminal import catalog_source
from terminal.config import TerminalConfig, load
from terminal.demo.run import free_port, write_config
from terminal.journal import Journal, NewEvent, Reader, connect
from terminal.sale import Event, Item, Till

CARD = {
    "brand": "VISA",
    "masked_pan": "411111******1111",
    "auth_code": "A1B2C3",
    "trace": "000123",
    "terminal_id": "52100001",
}
CASHIERS = ("anna", "ben")


# -- statistics and output -------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _mount_of(path: Path) -> tuple[str, str, str]:
    """(device, mount point, fs type) holding `path`, from /proc/mounts."""
    real = str(path.resolve())
    best = ("?", "/", "?")
    try:
        with open("/proc/mounts") as f:
            for entry in f:
                dev, mnt, fstype = entry.split()[:3]
                inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best[1]):
                    best = (dev, mnt, fstype)
    except OSError:
        pass
    return best


def machine(path: Path) -> str:
    """One line naming the machine, interpreter, SQLite and the disk under `path`."""
    dev, mnt, fstype = _mount_of(path)
    rot = Path(f"/sys/block/{Path(dev).name}/queue/rotational")
    kind = ""
    if rot.exists():
        kind = ", rotational" if rot.read_text().strip() == "1" else ", non-rotational"
    return (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; nproc {os.cpu_count()}; "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        f"disk {dev} ({fstype} on {mnt}{kind}); {platform.machine()}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


# -- a shop that fills a journal -------------------------------------------------------


@dataclass
class Shop:
    """Drives the real Till and Journal the way a shop would, one transaction per sale.

    With `durable=False` the journal runs with synchronous=OFF while prefilling: the events,
    hash chain and outbox rows are exactly what the daemon writes, only not fsynced.
    """

    folder: Path
    port: int
    seed: int = 1
    durable: bool = False
    config_path: Path = field(init=False)
    config: TerminalConfig = field(init=False)
    till: Till = field(init=False)
    journal: Journal = field(init=False)
    items: list[Item] = field(init=False)
    pending: list[NewEvent] = field(init=False, default_factory=list)
    closed_shifts: list[str] = field(init=False, default_factory=list)
    sales: int = 0
    clock: dt.datetime = dt.datetime(2025, 1, 6, 7, 0, tzinfo=dt.UTC)

    def __post_init__(self) -> None:
        self.config_path = write_config(self.folder, self.port)
        self.config = load(self.config_path, environ={})
        self.items = [i for i in catalog_source.load(self.config) if i.barcodes]
        self.till = Till(self.config.policy())
        self.journal = Journal(
            self.config.journal_path, self.config.store_id, self.config.terminal_id
        )
        if not self.durable:
            self.journal.conn.execute("PRAGMA synchronous=OFF")
        self.rng = random.Random(self.seed)

    @property
    def at(self) -> str:
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def tick(self, seconds: float) -> None:
        self.clock += dt.timedelta(seconds=seconds)

    def step(self, events: list[Event]) -> None:
        """Fold a decision in now and queue its events for the next transaction."""
        base = self.journal.seq + len(self.pending)
        for k, (type_, data) in enumerate(events):
            self.till.apply(type_, data, base + k + 1, self.at)
            self.pending.append(NewEvent(str(uuid.uuid4()), type_, data))

    def flush(self) -> None:
        if self.pending:
            self.journal.append(self.pending, self.at)
            self.pending = []

    def open_shift(self) -> str:
        shift_id = str(uuid.uuid4())
        self.step(self.till.open_shift(shift_id, self.rng.choice(CASHIERS), 15_000))
        self.flush()
        return shift_id

    def close_shift(self) -> None:
        shift = self.till.shift()
        counted = shift.totals.expected_cash + self.rng.choice((0, 0, 0, -5, 10))
        self.step(self.till.close_shift(counted, shift.cashier))
        self.flush()
        self.closed_shifts.append(shift.shift_id)
        self.tick(14 * 3600)

    def basket(self, sale_id: str) -> None:
        """Open a sale and scan a typical basket (a few corrections included)."""
        self.step(self.till.open_sale(sale_id, self.till.shift().cashier))
        lines = min(1 + int(self.rng.expovariate(1 / 5.5)), 40)
        added: list[str] = []
        for _ in range(lines):
            item = self.rng.choice(self.items)
            if item.unit == "kg":
                qty = Decimal(self.rng.randint(80, 2500)) / 1000
            else:
                qty = Decimal(self.rng.choice((1, 1, 1, 1, 2, 2, 3, 6)))
            line_id = str(uuid.uuid4())
            self.step(self.till.add_line(sale_id, line_id, item, qty, item.barcodes[0]))
            added.append(line_id)
        if len(added) > 2 and self.rng.random() < 0.03:
            self.step(self.till.remove_line(sale_id, added[-1]))

    def payment(self, sale_id: str) -> list[Event]:
        """The tender decision: cash with a note (change given) or card; completes the sale."""
        sale = self.till.sale(sale_id)
        due = self.till.due(sale)
        if self.rng.random() < 0.62:
            note = next(n for n in (500, 1000, 2000, 5000, 10_000, 20_000, 10**7) if n >= due)
            tendered = due if self.rng.random() < 0.2 else note
            return self.till.add_payment(sale_id, str(uuid.uuid4()), "cash", tendered=tendered)
        return self.till.add_payment(sale_id, str(uuid.uuid4()), "card", card=CARD)

    def sale(self) -> None:
        sale_id = str(uuid.uuid4())
        self.basket(sale_id)
        if self.rng.random() < 0.01:
            self.step(
                self.till.void(sale_id, "customer left", self.till.sale(sale_id).cashier, "mia")
            )
        else:
            self.step(self.payment(sale_id))
            self.sales += 1
        self.flush()
        self.tick(self.rng.uniform(10, 70))

    def run_shift(self, sales: int, close: bool) -> None:
        """A shift of `sales` completed sales (voided ones come on top)."""
        self.open_shift()
        target = self.sales + sales
        while self.sales < target:
            self.sale()
        if close:
            self.close_shift()

    def fill_sales(self, sales: int, shift_sales: int = 500) -> None:
        """`sales` completed sales in shifts of `shift_sales`; the last shift stays open."""
        while self.sales < sales:
            n = min(shift_sales, sales - self.sales)
            self.run_shift(n, close=self.sales + n < sales)

    def fill_events(self, events: int, open_sales: int, shift_sales: int = 500) -> None:
        """About `events` events: closed shifts of history, then one open shift of `open_sales`."""
        per_sale = 9.0
        while self.journal.seq + open_sales * per_sale < events:
            left = int((events - self.journal.seq) / per_sale) - open_sales
            self.run_shift(max(1, min(shift_sales, left)), close=True)
            per_sale = self.journal.seq / max(self.sales, 1)
        self.run_shift(open_sales, close=False)

    def finish(self, drain_outbox: bool = True) -> dict[str, Any]:
        """Close the writer like a clean shutdown; optionally mark the outbox as acked."""
        self.flush()
        reader = Reader(self.config.journal_path)
        t0 = time.perf_counter_ns()
        depth, _ = reader.outbox_stats()
        stats_ns = time.perf_counter_ns() - t0
        reader.close()
        if drain_outbox:
            # A shop with a working uplink: the relay acked everything, the rows are gone.
            self.journal.conn.execute("DELETE FROM outbox")
        # Leave nothing dirty in the page cache: a real shop's history was synced long ago, and
        # writeback of the prefill would otherwise land on the daemon's first fsyncs.
        self.journal.conn.execute("PRAGMA synchronous=FULL")
        self.journal.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        seq = self.journal.seq
        self.journal.close()
        fd = os.open(self.config.journal_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return {
            "events": seq,
            "sales": self.sales,
            "shifts": len(self.closed_shifts) + 1,
            "outbox_rows": depth,
            "outbox_stats_ns": stats_ns,
            "db_mb": self.config.journal_path.stat().st_size / 2**20,
        }


# -- the daemon ------------------------------------------------------------------------


def tillbox_command() -> list[str]:
    """The `tillbox` entry point of this interpreter's environment."""
    beside = Path(sys.executable).with_name("tillbox")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("tillbox")
    return [found] if found else [sys.executable, "-m", "tillbox.cli"]


class Daemon:
    """`tillbox terminal --config PATH` as a subprocess, stopped on exit."""

    def __init__(self, config_path: Path, port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    def __enter__(self) -> Daemon:
        with open(self.log_path, "ab") as log:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                [*tillbox_command(), "terminal", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = t0 + 120
        with httpx.Client(timeout=5) as client:
            while True:
                try:
                    client.get(f"{self.url}/healthz")
                    break
                except httpx.TransportError:
                    if self.proc.poll() is not None or time.perf_counter() > deadline:
                        text = self.log_path.read_text()
                        raise RuntimeError(
                            f"the daemon did not start; see {self.log_path}:\n{text}"
                        ) from None
                    time.sleep(0.005)
        self.startup_s = time.perf_counter() - t0
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def memory_kb(self) -> dict[str, int]:
        """VmRSS (resident now) and VmHWM (peak resident) from /proc/<pid>/status."""
        assert self.proc is not None
        out: dict[str, int] = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for entry in f:
                key, _, value = entry.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
        return out


def login(client: httpx.Client, pin: str = "1111") -> None:
    """Log in and keep the session token on the client."""
    r = client.post("/api/v1/sessions", json={"pin": pin})
    r.raise_for_status()
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"


def raw_store(path: Path) -> sqlite3.Connection:
    """A bare table with the journal's pragmas: the floor a durable write cannot go below."""
    conn = connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS payloads (payload TEXT NOT NULL)")
    return conn


def raw_commit(conn: sqlite3.Connection, payload: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO payloads (payload) VALUES (?)", (payload,))
    conn.execute("COMMIT")


__all__ = [
    "Daemon",
    "Shop",
    "free_port",
    "login",
    "machine",
    "ms",
    "pct",
    "raw_commit",
    "raw_store",
    "table",
    "verdict",
]
