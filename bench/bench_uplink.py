# Benchmark: draining an offline backlog, daemon → Mosquitto → relay → ack, vs a raw paho loop.
"""Prefill a real journal with a backlog of unacked events (real Till decisions, real
Journal.append), then start `tillbox terminal` with the uplink on, against a private
Mosquitto (the shipped TLS configuration) and a real `tillbox relay run` on SQLite. The drain
is timed from the uplink's CONNACK until the relay's head reaches the journal's head (every
event durably stored centrally; the terminal gets that ack a moment later).

Baseline, same broker, same run, before and after the drain: a raw paho-mqtt QoS 1 publish
loop with the same in-flight window and the same payloads (the backlog's own envelopes)
from a terminal identity to a QoS 1 subscriber, timed from the first PUBLISH to the last
PUBACK.

Each raw run is done twice, on paho as released (the target's baseline) and with the paho
speed-up the till and the relay install (tillbox/paho_speedup.py), the stricter comparison.

Target: drain rate >= 70 % of the raw paho loop's. Always exits 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from benchlib import Daemon, Shop, free_port, machine, table, tillbox_command, verdict
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from terminal.config import UplinkConfig
from terminal.journal import COLUMNS, Reader, wire
from tillbox import certs, paho_speedup
from tillbox.devbroker import DevBroker

TARGET_RATIO = 0.70
STORE, TERMINAL = "demo", "t1"  # the demo config's ids, which benchlib.Shop journals under
RAW_TERMINAL = "raw"


# -- the real parts ---------------------------------------------------------------------


def make_pki(folder: Path, terminals: Sequence[tuple[str, str]]) -> Path:
    """A throw-away CA with the broker, the given terminals, the relay and the operator."""
    certs.init_ca(folder)
    for store, terminal in terminals:
        certs.issue_terminal(folder, store, terminal)
    certs.issue_relay(folder)
    certs.issue_operator(folder)
    return folder


# `tillbox relay run` without the ledger and connectors (Relay(connectors=False)): ingest
# and down-sync only, to tell ingest's own cost from the workers sharing its process.
_INGEST_ONLY = """
import logging, sys
from pathlib import Path
from relay.config import load
from relay.ingest import Relay
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
Relay(load(Path(sys.argv[1])), connectors=False).serve_forever()
"""


class RelayProc:
    """`tillbox relay run --config PATH` as a subprocess (TLS, the relay's certificate); with
    `connectors=False` the same relay without its ledger and connector workers."""

    def __init__(
        self,
        folder: Path,
        broker: DevBroker,
        db_url: str,
        client_id: str = "bench-relay-1",
        ingest: Mapping[str, int] | None = None,
        *,
        connectors: bool = True,
    ) -> None:
        self.connectors = connectors
        folder.mkdir(parents=True, exist_ok=True)
        ident = certs.relay_files(broker.certs_dir)
        lines = [
            "version = 1",
            "[broker]",
            f'host = "{broker.host}"',
            f"port = {broker.port}",
            f'client_id = "{client_id}"',
            f'ca_file = "{broker.ca_file}"',
            f'cert_file = "{ident.cert}"',
            f'key_file = "{ident.key}"',
            "[database]",
            f'url = "{db_url}"',
            "[ingest]",
            *(f"{k} = {v}" for k, v in (ingest or {}).items()),
        ]
        self.config = folder / f"{client_id}.toml"
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.log = folder / f"{client_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until it has subscribed."""
        mark = self.start_async()
        deadline = time.monotonic() + timeout
        while "subscribed to" not in self.log.read_text(errors="replace")[mark:]:
            if self.exited or time.monotonic() > deadline:
                raise RuntimeError(f"the relay did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.01)

    def start_async(self) -> int:
        """Start without waiting; the log's length before it (for reading this run's lines)."""
        mark = self.log.stat().st_size if self.log.exists() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return mark

    def command(self) -> list[str]:
        if self.connectors:
            return [*tillbox_command(), "relay", "run", "--config", str(self.config)]
        return [sys.executable, "-c", _INGEST_ONLY, str(self.config)]

    @property
    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def cpu_seconds(self) -> float:
        """User and system CPU time the running relay has used so far (Linux /proc)."""
        return cpu_seconds(None if self.proc is None else self.proc.pid)

    def stop(self) -> str:
        """SIGTERM and wait; the log of this run (the relay logs its counts on the way out)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text(errors="replace")

    def __enter__(self) -> RelayProc:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU time a running process has used so far (Linux /proc; 0 if gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def relay_head(db: Path, store: str, terminal: str) -> int:
    """The relay's head for one terminal, read straight from its SQLite file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT seq FROM heads WHERE store = ? AND terminal = ?", (store, terminal)
        ).fetchone()
        return int(row[0]) if row else 0
    except sqlite3.OperationalError:
        return 0  # not created yet
    finally:
        conn.close()


def uplink_block(
    broker: DevBroker, ident: certs.Identity, window: int, unacked_max: int, client_id: str
) -> str:
    """`[uplink]` on, to the broker with this terminal's certificate."""
    values: dict[str, Any] = {
        "enabled": True,
        "client_id": client_id,
        "host": broker.host,
        "port": broker.port,
        "ca": str(broker.ca_file),
        "cert": str(ident.cert),
        "key": str(ident.key),
        "window": window,
        "unacked_max": unacked_max,
        "ack_timeout_s": 30,
        "backoff_min_s": 0.1,
        "backoff_max_s": 0.5,
    }
    return "\n[uplink]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


# -- the raw loop -----------------------------------------------------------------------


class RawLoop:
    """A bare paho QoS 1 publisher (a terminal identity) driven on one thread, like the uplink,
    and a QoS 1 subscriber (the operator) in a process of its own, like the relay; both MQTT 5
    over TLS. Nothing of Tillbox in between."""

    def __init__(self, broker: DevBroker, window: int) -> None:
        self.broker = broker
        self.topic = f"tillbox/v1/{STORE}/{RAW_TERMINAL}/cmd-result"
        self.window = window
        self.acked = 0
        self.cpu: list[dict[str, float]] = []  # CPU seconds per run, by part

    def _connect(self, ident: certs.Identity, client_id: str) -> mqtt.Client:
        settings = self.broker.settings(ident)
        client = settings.new_client(client_id)
        client.max_inflight_messages_set(self.window)
        client.max_queued_messages_set(0)
        connected: list[bool] = []
        client.on_connect = lambda *_: connected.append(True)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        client.connect(settings.host, settings.port, clean_start=True, properties=props)
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + 10
        while not connected:
            client.loop(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{client_id} could not connect")
        return client

    def run(self, payloads: Sequence[bytes]) -> float:
        """Publish every payload, `window` in flight; events per second to the last PUBACK."""
        ready, done = multiprocessing.Event(), multiprocessing.Event()
        sub = multiprocessing.Process(
            target=_subscriber, args=(self.broker, self.topic, len(payloads), ready, done)
        )
        sub.start()
        try:
            if not ready.wait(20):
                raise RuntimeError("the raw subscriber did not subscribe")
            ident = certs.terminal_files(self.broker.certs_dir, STORE, RAW_TERMINAL)
            client = self._connect(ident, "bench-raw-pub")
            acked = [0]
            client.on_publish = lambda *_: acked.__setitem__(0, acked[0] + 1)
            cpu0 = time.process_time(), cpu_seconds(self.broker.pid)
            t0 = time.perf_counter()
            for p in payloads:  # paho sends `window` at once and queues the rest
                client.publish(self.topic, p, qos=1)
            deadline = time.monotonic() + 300
            while acked[0] < len(payloads):
                client.loop(0.05)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"raw loop: {acked[0]} of {len(payloads)} PUBACKs")
            took = time.perf_counter() - t0
            self.cpu.append(
                {
                    "publisher": time.process_time() - cpu0[0],
                    "broker": cpu_seconds(self.broker.pid) - cpu0[1],
                }
            )
            client.disconnect()
            done.wait(60)
        finally:
            sub.join(10)
            if sub.is_alive():
                sub.kill()
        return len(payloads) / took


def _subscriber(
    broker: DevBroker, topic: str, count: int, ready: Any, done: Any
) -> None:  # pragma: no cover - runs in a child process
    """Take `count` QoS 1 messages on `topic` (PUBACKing each), then leave."""
    settings = broker.settings(certs.operator_files(broker.certs_dir))
    client = settings.new_client("bench-raw-sub")
    got = [0]

    def on_message(*_: Any) -> None:
        got[0] += 1

    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(settings.host, settings.port)
    deadline = time.monotonic() + 300
    while got[0] < count and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    done.set()


# -- the drain --------------------------------------------------------------------------


def drain(
    daemon_url: str,
    relay_db: Path,
    head: int,
    pids: Mapping[str, int | None],
    timeout: float = 600,
) -> dict[str, float]:
    """Seconds from the uplink's CONNACK to the relay's head at `head`, then to an empty outbox;
    and the CPU seconds each process in `pids` used until the relay's head got there."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=daemon_url, timeout=10) as client:
        while client.get("/healthz").json()["uplink"]["state"] != "online":
            if time.monotonic() > deadline:
                raise RuntimeError("the uplink never connected")
            time.sleep(0.005)
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        t0 = time.perf_counter()
        while relay_head(relay_db, STORE, TERMINAL) < head:
            if time.monotonic() > deadline:
                raise RuntimeError("the drain did not finish")
            time.sleep(0.005)
        stored = time.perf_counter() - t0
        cpu = {f"cpu_{name}": cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        while client.get("/healthz").json()["uplink"]["outbox_depth"] != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the outbox did not empty")
            time.sleep(0.01)
        emptied = time.perf_counter() - t0
    return {"stored_s": stored, "empty_s": emptied} | cpu


def backlog_payloads(journal: Path) -> list[bytes]:
    """The backlog's envelopes exactly as the uplink sends them (journal.wire)."""
    reader = Reader(journal)
    try:
        return [wire(row) for row in reader.conn.execute(_BACKLOG_SQL)]
    finally:
        reader.close()


_BACKLOG_SQL = f"SELECT {COLUMNS} FROM events ORDER BY seq"


def relay_counts(log: str) -> str:
    """The counts the relay logs when it stops (its last run's)."""
    found = [line for line in log.splitlines() if "relay stopped:" in line]
    return found[-1].split("relay stopped:", 1)[1].strip() if found else "(no counts logged)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 2,000-event backlog, 2 rounds")
    parser.add_argument("--events", type=int, help="backlog size in events (default 10,000)")
    parser.add_argument("--rounds", type=int, help="drains, each between two raw runs (default 3)")
    parser.add_argument(
        "--window",
        type=int,
        default=UplinkConfig().window,
        help="[uplink] window and the raw loop's in-flight window (default: the uplink's)",
    )
    parser.add_argument(
        "--unacked-max",
        type=int,
        default=UplinkConfig().unacked_max,
        help="[uplink] unacked_max: events past the relay's last ack (default: the uplink's)",
    )
    parser.add_argument("--batch-delay-ms", type=int, help="the relay's ingest.max_batch_delay_ms")
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="run the relay without its ledger and connector workers (Relay(connectors=False))",
    )
    args = parser.parse_args(argv)
    paho_speedup.install()
    events = args.events or (2_000 if args.quick else 10_000)
    rounds = args.rounds or (2 if args.quick else 3)
    ingest: dict[str, int] = {}
    if args.batch_delay_ms is not None:
        ingest["max_batch_delay_ms"] = args.batch_delay_ms

    with tempfile.TemporaryDirectory(prefix="tillbox-bench-uplink-") as tmp:
        folder = Path(tmp)
        print(f"machine: {machine(folder)}")
        pki = make_pki(folder / "pki", [(STORE, TERMINAL), (STORE, RAW_TERMINAL)])
        port = free_port()
        shop = Shop(folder / "till", port)
        print(f"bench_uplink: prefilling a backlog of about {events:,} events ...", flush=True)
        shop.fill_events(events, open_sales=10)
        head = int(shop.finish(drain_outbox=False)["events"])
        journal = shop.config.journal_path
        pristine = folder / "backlog.sqlite"
        shutil.copyfile(journal, pristine)
        payloads = backlog_payloads(journal)
        size = statistics.mean(len(p) for p in payloads)
        base_config = shop.config_path.read_text(encoding="utf-8")
        # Two raw loops at each point: paho as released (the target's baseline), and paho with
        # the speed-up the till and the relay use (tillbox/paho_speedup.py), the stricter one.
        raw_rates: dict[str, list[float]] = {"stock": [], "same": []}
        drains: list[dict[str, float]] = []
        counts: list[str] = []
        with DevBroker(folder / "broker", pki) as broker:
            ident = certs.terminal_files(pki, STORE, TERMINAL)
            raw = RawLoop(broker, args.window)

            def raw_runs() -> None:
                with paho_speedup.stock():
                    raw_rates["stock"].append(raw.run(payloads))
                raw_rates["same"].append(raw.run(payloads))

            print(
                f"bench_uplink: {head:,} events, {rounds} rounds, window {args.window}, "
                f"unacked_max {args.unacked_max}"
                + (", relay without ledger and connectors" if args.ingest_only else ""),
                flush=True,
            )
            raw_runs()
            for i in range(rounds):
                # Each round: the same backlog, an empty relay database, a fresh MQTT session.
                shutil.copyfile(pristine, journal)
                for suffix in ("-wal", "-shm"):
                    Path(f"{journal}{suffix}").unlink(missing_ok=True)
                shop.config_path.write_text(
                    base_config
                    + uplink_block(broker, ident, args.window, args.unacked_max, f"bench-t1-r{i}"),
                    encoding="utf-8",
                )
                relay_db = folder / "relay" / f"relay-{i}.sqlite"
                relay = RelayProc(
                    folder / "relay",
                    broker,
                    f"sqlite:///{relay_db}",
                    ingest=ingest,
                    connectors=not args.ingest_only,
                )
                with relay, Daemon(shop.config_path, port, folder / f"daemon-{i}.log") as daemon:
                    pids = {
                        "till": None if daemon.proc is None else daemon.proc.pid,
                        "relay": None if relay.proc is None else relay.proc.pid,
                        "broker": broker.pid,
                    }
                    drains.append(drain(daemon.url, relay_db, head, pids))
                counts.append(relay_counts(relay.stop()))
                raw_runs()
        print()
        rows: list[list[object]] = []
        ratios: dict[str, list[float]] = {"stock": [], "same": []}
        for i, took in enumerate(drains):
            e2e = head / took["stored_s"]
            for kind, rates in raw_rates.items():
                ratios[kind].append(e2e / ((rates[i] + rates[i + 1]) / 2))
            rows.append(
                [
                    i + 1,
                    f"{raw_rates['stock'][i]:,.0f} / {raw_rates['same'][i]:,.0f}",
                    f"{e2e:,.0f}",
                    f"{head / took['empty_s']:,.0f}",
                    f"{raw_rates['stock'][i + 1]:,.0f} / {raw_rates['same'][i + 1]:,.0f}",
                    f"{ratios['stock'][-1]:.0%}",
                    f"{ratios['same'][-1]:.0%}",
                ]
            )
        print(
            f"{head:,} events of {size:.0f} bytes on average (the backlog's own envelopes); "
            f"window {args.window} for all; events per second (raw loops: paho as released / "
            "with Tillbox's paho speed-up):"
        )
        print(
            table(
                [
                    "round",
                    "raw loops before",
                    "drain: stored at the relay",
                    "drain: outbox empty",
                    "raw loops after",
                    "drain / raw paho",
                    "drain / raw, same paho",
                ],
                rows,
            )
        )
        for i, line in enumerate(counts):
            print(f"relay, round {i + 1}: {line}")
        print("CPU in ms per event (user + system; two cores are 2 s of CPU per second):")
        for i, took in enumerate(drains):
            parts = ", ".join(
                f"{name} {took[f'cpu_{name}'] * 1000 / head:.3f}"
                for name in ("till", "relay", "broker")
            )
            print(f"  drain, round {i + 1}: {parts}")
        for i, used in enumerate(raw.cpu):
            parts = ", ".join(f"{name} {sec * 1000 / head:.3f}" for name, sec in used.items())
            kind = "paho as released" if i % 2 == 0 else "same paho"
            print(f"  raw loop, run {i // 2 + 1} ({kind}): {parts} (its subscriber not counted)")
        median = statistics.median(ratios["stock"])
        print()
        print(f"median drain / raw paho loop: {median:.0%}")
        same = statistics.median(ratios["same"])
        print(f"median drain / raw loop with the same paho: {same:.0%}")
        ok = verdict(median >= TARGET_RATIO)
        print(f"target: drain >= {TARGET_RATIO:.0%} of a raw paho loop: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
