# purpose: scanner bytes in (simulator pty) → line on the sale → event on the stream, end to end.
"""Scan latency through the real daemon, against the same change made over HTTP.

A scan is timed from the moment its bytes go into the simulated scanner's pty until the
`sale.line_added` event for it arrives on the event stream (`GET /api/v1/events`). The
baseline, interleaved with the scans, is the same line added with
`POST /api/v1/sales/{id}/lines` over a kept-alive HTTP connection, timed until the same
event arrives. Target: scans p99 < 50 ms. Also reports the daemon's resident memory,
idle with the devices configured (target < 80 MB).

    python bench/bench_devices.py [--quick] [--append docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "hw-sim"), str(ROOT / "bench")]

from benchlib import Daemon, machine, pct, table, verdict  # noqa: E402
from hwsim.lab import Lab  # noqa: E402

from terminal.demo.run import free_port, write_config  # noqa: E402

CODES = ["4278615606429", "4264985443146", "43742844", "4278615406999"]
DEVICES = """
[devices]
poll_interval_s = 1.0
discover = true

[devices.printer]
transport = "network"
host = "127.0.0.1"
port = {port}

[[devices.scanners]]
mode = "serial"
path = "{scanner}"
"""


class Events:
    """The event stream on a plain socket: (arrival ns, event) into a queue."""

    def __init__(self, url: str, token: str) -> None:
        self.q: Queue[tuple[int, dict[str, Any]]] = Queue()
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(f"GET /api/v1/events?token={token} HTTP/1.0\r\n\r\n".encode())
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready.wait(10)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter_ns()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"retry:"):
                    self.ready.set()
                elif line.startswith(b"data: "):
                    self.q.put((now, json.loads(line[6:])))

    def wait_line(self, barcode: str) -> int:
        while True:
            try:
                at, event = self.q.get(timeout=5)
            except Empty:
                raise TimeoutError(f"no sale.line_added for {barcode}") from None
            if event["type"] == "sale.line_added" and event["data"]["barcode"] == barcode:
                return at

    def close(self) -> None:
        self.sock.close()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(n: int) -> tuple[str, bool]:
    with tempfile.TemporaryDirectory() as tmp, Lab(Path(tmp) / "lab", zvt=False) as lab:
        assert lab.where is not None and lab.scanner is not None
        port = free_port()
        config = write_config(Path(tmp) / "state", port)
        extra = DEVICES.format(port=lab.where.printer_port, scanner=lab.where.scanner_link)
        config.write_text(config.read_text() + extra)
        with Daemon(config, port, Path(tmp) / "daemon.log") as daemon:
            assert daemon.proc is not None
            time.sleep(3)
            idle = rss_mb(daemon.proc.pid)
            api = httpx.Client(base_url=f"{daemon.url}/api/v1", timeout=10)
            token = api.post("/sessions", json={"pin": "1111"}).json()["token"]
            api.headers["Authorization"] = f"Bearer {token}"
            api.post("/shifts", json={"opening_float": 0})
            events = Events(daemon.url, token)
            scans: list[float] = []
            posts: list[float] = []
            sale = api.post("/sales").json()["sale_id"]
            for i in range(n):
                if i and i % 200 == 0:  # stay far below 500 lines a sale
                    api.post(
                        f"/sales/{sale}/void",
                        json={"reason": "bench"},
                        headers={"X-Manager-Pin": "9999"},
                    )
                    sale = api.post("/sales").json()["sale_id"]
                code = CODES[i % len(CODES)]
                t0 = time.perf_counter_ns()
                lab.scanner.scan(code)
                scans.append(events.wait_line(code) - t0)
                t0 = time.perf_counter_ns()
                api.post(f"/sales/{sale}/lines", json={"barcode": code})
                posts.append(events.wait_line(code) - t0)
            busy = rss_mb(daemon.proc.pid)
            events.close()
            api.close()
    rows = [
        [name, len(v), *(f"{pct(v, q) / 1e6:.2f}" for q in (50, 95, 99)), f"{max(v) / 1e6:.2f}"]
        for name, v in (("scan → event (pty)", scans), ("POST line → event", posts))
    ]
    ratio = pct(scans, 99) / pct(posts, 99)
    ok = pct(scans, 99) < 50e6 and idle < 80
    text = "\n".join(
        [
            table(["path", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows),
            "",
            f"scan p99 / POST p99 = {ratio:.2f}; scan p99 < 50 ms: "
            f"{verdict(pct(scans, 99) < 50e6)}",
            f"daemon resident memory, idle with printer and scanner configured: {idle:.1f} MB "
            f"(< 80 MB: {verdict(idle < 80)}); after the run: {busy:.1f} MB",
        ]
    )
    return text, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 scans instead of 500")
    ap.add_argument("--append", metavar="MD", help="append the results to this Markdown file")
    args = ap.parse_args()
    text, _ = run(100 if args.quick else 500)
    where = machine(ROOT)
    load = os.getloadavg()[0]
    out = f"{where}; load {load:.2f}\n\n{text}"
    print(out)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as f:
            stamp = time.strftime("%Y-%m-%d")
            f.write(f"\n## Devices: scan to event (`bench/bench_devices.py`), {stamp}\n\n")
            f.write(out + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
