# Benchmark: how fast `tillbox relay run` stores a backlog the broker queued, alone and as a pair.
"""Many terminals' events wait at a private Mosquitto (the shipped TLS configuration) in the
persistent session of the relay's shared subscription, as after a relay outage; then the
relay starts and the drain is timed, from its first stored event to the last (every event
validated, stored in a durable group commit on SQLite, acked to its terminal, PUBACKed).

Three phases, each with its own freshly queued backlog and an empty database:
1. baseline: a bare paho QoS 1 subscriber in its own process takes the same backlog off the
   same broker (PUBACK per message, nothing stored) - what broker and client allow;
2. one relay instance - target >= 5,000 events/s;
3. two instances on one shared subscription and one SQLite file: each one's share and the
   combined rate, recorded (no target; see docs/relay.md "Scaling out");
4. one instance without its ledger and connector workers (Relay(connectors=False)): what
   ingest alone does when it has the process to itself, recorded (no target);
5. one instance with `ingest.connectors = "separate"` and a `tillbox relay connectors run`
   process on the same database, both running during the drain (the connectors catching
   up): the supported split deployment, target >= 5,000 events/s; also how long the ledger
   took to catch up after the last stored event.

Always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from bench_uplink import RelayProc
from benchlib import Shop, free_port, machine, table, tillbox_command, verdict
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from terminal.journal import Reader
from tillbox import certs
from tillbox.contract import GENESIS_HASH, event_hash, events_topic
from tillbox.devbroker import DevBroker

TARGET_RATE = 5_000.0
GROUP = "$share/relay/tillbox/v1/+/+/events"
_COUNTS = re.compile(r"relay stopped: received (\d+) messages in (\d+) batches; stored (\d+)")


def templates(folder: Path, count: int) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of real events from a shop's journal: baskets, payments, shifts."""
    shop = Shop(folder, free_port())
    shop.fill_events(count, open_sales=5)
    shop.finish(drain_outbox=False)
    reader = Reader(shop.config.journal_path)
    try:
        return [(e["type"], e["data"]) for e in reader.events_from(1)]
    finally:
        reader.close()


def chains(
    store: str,
    terminals: Sequence[str],
    per_terminal: int,
    kinds: Sequence[tuple[str, dict[str, Any]]],
) -> dict[str, list[bytes]]:
    """For each terminal, a fresh hash-chained stream of envelopes built on real event data."""
    out: dict[str, list[bytes]] = {}
    k = 0
    for terminal in terminals:
        prev = GENESIS_HASH
        stream: list[bytes] = []
        for seq in range(1, per_terminal + 1):
            type_, data = kinds[k % len(kinds)]
            k += 1
            env: dict[str, Any] = {
                "schema": "tillbox.event/1",
                "id": str(uuid.uuid4()),
                "type": type_,
                "store": store,
                "terminal": terminal,
                "seq": seq,
                "at": "2026-11-27T10:15:00.000Z",
                "prev_hash": prev,
                "data": data,
            }
            env["hash"] = prev = event_hash(env)
            stream.append(json.dumps(env, ensure_ascii=False, separators=(",", ":")).encode())
        out[terminal] = stream
    return out


def preload(broker: DevBroker, store: str, streams: dict[str, list[bytes]]) -> float:
    """Publish every stream (QoS 1, each terminal with its own certificate) and wait for every
    PUBACK: the broker then holds them all for the offline group member(s). Seconds taken."""
    t0 = time.perf_counter()
    clients: list[tuple[mqtt.Client, list[int]]] = []
    for terminal, stream in streams.items():
        settings = broker.settings(certs.terminal_files(broker.certs_dir, store, terminal))
        client = settings.new_client(f"preload-{store}-{terminal}")
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        acked = [0]
        client.on_publish = lambda *_, a=acked: a.__setitem__(0, a[0] + 1)
        client.connect(settings.host, settings.port, clean_start=True)
        for payload in stream:
            client.publish(events_topic(store, terminal), payload, qos=1)
        clients.append((client, acked))
    want = {id(c): len(s) for (c, _), s in zip(clients, streams.values())}
    deadline = time.monotonic() + 600
    while any(a[0] < want[id(c)] for c, a in clients):
        for client, _ in clients:
            client.loop(0.001)
        if time.monotonic() > deadline:
            raise RuntimeError("preload: PUBACKs missing")
    for client, _ in clients:
        client.disconnect()
        client.loop(0.01)
    return time.perf_counter() - t0


def _raw_member(broker: DevBroker, client_id: str, count: int, results: Any) -> None:
    """With count 0: join the group with a persistent session, and leave it offline. Else:
    resume that session, take `count` messages (PUBACKing each), and end the session.
    Puts (messages, seconds from the first to the last) on `results`. A child process."""
    settings = broker.settings(certs.relay_files(broker.certs_dir))
    client = settings.new_client(client_id)
    got = [0]
    times = [0.0, 0.0]
    subscribed = [False]

    def on_message(*_: Any) -> None:
        times[1] = time.perf_counter()
        if got[0] == 0:
            times[0] = times[1]
        got[0] += 1

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(GROUP, qos=1)
    client.on_subscribe = lambda *_: subscribed.__setitem__(0, True)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = 1000  # as the relay asks (broker.receive_maximum)
    client.connect(settings.host, settings.port, clean_start=False, properties=props)
    deadline = time.monotonic() + 600
    while (not subscribed[0] or got[0] < count) and time.monotonic() < deadline:
        client.loop(0.01)
    bye = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    bye.SessionExpiryInterval = 600 if count == 0 else 0
    client.disconnect(properties=bye)
    client.loop(0.05)
    results.put((got[0], times[1] - times[0]))


def end_session(broker: DevBroker, client_id: str) -> None:
    """Make the broker forget `client_id`'s session (and its group membership): a clean
    start throws the old session away, and expiry 0 keeps none after the DISCONNECT."""
    settings = broker.settings(certs.relay_files(broker.certs_dir))
    client = settings.new_client(client_id)
    connected = [False]
    client.on_connect = lambda *_: connected.__setitem__(0, True)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect(settings.host, settings.port, clean_start=True, properties=props)
    deadline = time.monotonic() + 10
    while not connected[0] and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    while client.loop(0.05) == mqtt.MQTT_ERR_SUCCESS and time.monotonic() < deadline:
        pass


def raw_phase(broker: DevBroker, store: str, streams: dict[str, list[bytes]]) -> dict[str, Any]:
    """Events per second a bare subscriber drains, and the preload's seconds."""
    total = sum(len(s) for s in streams.values())
    results: Any = multiprocessing.Queue()
    join = multiprocessing.Process(target=_raw_member, args=(broker, "bench-raw", 0, results))
    join.start()
    results.get(timeout=60)
    join.join(30)
    took = preload(broker, store, streams)
    drain = multiprocessing.Process(target=_raw_member, args=(broker, "bench-raw", total, results))
    drain.start()
    got, seconds = results.get(timeout=900)
    drain.join(30)
    end_session(broker, "bench-raw")
    if got != total:
        raise RuntimeError(f"raw subscriber: {got} of {total}")
    return {"rate": (total - 1) / seconds, "preload_s": took}


class Heads:
    """Polls how many events of a store the relay has stored in order (sum of its heads),
    on one kept connection: the poll should cost the relay's two cores as little as it can."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, pool_size=1)

    def stored(self, store: str) -> int:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text("SELECT coalesce(sum(seq), 0) FROM heads WHERE store = :s"), {"s": store}
                )
                return int(row.scalar_one())
        except (OperationalError, ProgrammingError):
            return 0  # the relay has not created its tables yet

    def fed(self, store: str, connector: str = "ledger") -> int:
        """How many of a store's events `connector` has taken (sum of its cursors)."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT coalesce(sum(position), 0) FROM connector_cursors "
                        "WHERE connector = :c AND stream LIKE :p"
                    ),
                    {"c": connector, "p": f"t/{store}/%"},
                )
                return int(row.scalar_one())
        except (OperationalError, ProgrammingError):
            return 0

    def close(self) -> None:
        self.engine.dispose()


class ConnectorsProc(RelayProc):
    """`tillbox relay connectors run --config PATH` on a relay's configuration: the ledger and
    connectors apart. Raises when stopped if it did not exit cleanly."""

    def __init__(self, relay: RelayProc) -> None:
        self.config = relay.config
        self.log = relay.config.with_name("connectors.log")
        self.proc = None

    def command(self) -> list[str]:
        return [*tillbox_command(), "relay", "connectors", "run", "--config", str(self.config)]

    def start(self, timeout: float = 30.0) -> None:
        self.start_async()

    def stop(self) -> str:
        log = super().stop()
        if self.proc is not None and self.proc.returncode != 0:
            raise RuntimeError(f"connectors exited {self.proc.returncode}: {self.log}")
        return log


def relay_phase(
    folder: Path,
    broker: DevBroker,
    store: str,
    streams: dict[str, list[bytes]],
    names: Sequence[str],
    db_url: str,
    *,
    connectors: bool = True,
    separate: bool = False,
) -> dict[str, Any]:
    """Register the instances' sessions, stop them, queue the backlog, start them, time it.
    With `separate`, the instances only ingest and a connectors process runs beside them."""
    total = sum(len(s) for s in streams.values())
    relays = [RelayProc(folder, broker, db_url, name, connectors=connectors) for name in names]
    workers = ConnectorsProc(relays[0]) if separate else None
    for relay in relays if separate else []:
        with open(relay.config, "a", encoding="utf-8") as f:  # its last table is [ingest]
            f.write('connectors = "separate"\n')
    heads = Heads(db_url)
    caught_up = None
    try:
        for relay in relays:
            relay.start()
        for relay in relays:
            relay.stop()  # persistent sessions: the broker queues their share from now on
        took = preload(broker, store, streams)
        for relay in relays:
            relay.start_async()
        if workers is not None:
            workers.start()
        stored = [(time.perf_counter(), 0)]  # (when, events stored) at each change
        cpu = [0.0, 0.0]  # the instances' CPU seconds at the first stored event, at the last
        while True:
            n = heads.stored(store)
            now = time.perf_counter()
            if n != stored[-1][1]:
                stored.append((now, n))
                cpu[len(stored) > 2] = sum(r.cpu_seconds() for r in relays)
            if n >= total:
                break
            if now - stored[-1][0] > 60 or any(r.exited for r in relays):
                raise RuntimeError(f"the relay drain is stuck at {n:,} of {total:,} events")
            time.sleep(0.01)
        if workers is not None:
            while heads.fed(store) < total:
                if workers.exited or time.perf_counter() - stored[-1][0] > 600:
                    raise RuntimeError(f"the ledger is stuck at {heads.fed(store):,} events")
                time.sleep(0.05)
            caught_up = (time.perf_counter() - stored[-1][0], workers.cpu_seconds() / total * 1e6)
        # A relay stopped within milliseconds of its last commit can lose its last PUBACKs
        # with the connection (the broker sends those events again on its next start).
        time.sleep(1.0)
    finally:
        logs = [relay.stop() for relay in relays]
        if workers is not None:
            workers.stop()
        heads.close()
    shares = []
    for log in logs:
        found = _COUNTS.findall(log)
        shares.append(int(found[-1][0]) if found else 0)
    (t_first, n_first), (t_last, _) = stored[1], stored[-1]
    seconds = t_last - t_first
    return {
        "rate": (total - n_first) / seconds,
        "seconds": seconds,
        "shares": shares,
        "preload_s": took,
        "cpu_us": (cpu[1] - cpu[0]) / (total - n_first) * 1e6,
        "load": os.getloadavg()[0],
        # seconds the ledger needed after the last stored event; the connectors process's CPU
        # per event (its start included)
        "caught_up": caught_up,
    }


def databases(stack: contextlib.ExitStack, kind: str, folder: Path) -> list[str]:
    """An empty database for each relay phase."""
    if kind == "sqlite":
        return [f"sqlite:///{folder / p / 'relay.sqlite'}" for p in ("one", "two", "solo", "split")]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.relay.pg import PgCluster  # the tests' private cluster: initdb, pg_ctl

    cluster = PgCluster()
    cluster.start()
    stack.callback(cluster.stop)
    return [cluster.new_database() for _ in range(4)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 events from 10 terminals")
    parser.add_argument("--events", type=int, help="backlog per phase (default 50,000)")
    parser.add_argument("--terminals", type=int, help="terminals sending (default 25)")
    parser.add_argument("--dir", help="work in this new folder and keep it (logs, databases)")
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the relay's database: SQLite files, or a private PostgreSQL cluster (initdb)",
    )
    args = parser.parse_args(argv)
    events = args.events or (10_000 if args.quick else 50_000)
    count = args.terminals or (10 if args.quick else 25)
    names = [f"t{i:02d}" for i in range(count)]
    per_terminal = events // count
    total = per_terminal * count
    stores = {
        "raw": "bench-raw",
        "one": "bench-one",
        "two": "bench-two",
        "solo": "bench-solo",
        "split": "bench-split",
    }

    with contextlib.ExitStack() as stack:
        if args.dir:
            folder = Path(args.dir)
            folder.mkdir(parents=True)
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tillbox-bench-")))
        print(f"machine: {machine(folder)}")
        print(f"bench_relay: {count} terminals x {per_terminal:,} events per phase", flush=True)
        pki = folder / "pki"
        certs.init_ca(pki)
        for store in stores.values():  # a store per phase: no phase sees another's events
            for name in names:
                certs.issue_terminal(pki, store, name)
        certs.issue_relay(pki)
        kinds = templates(folder / "shop", 3_000)
        with DevBroker(folder / "broker", pki) as broker:
            raw = raw_phase(
                broker, stores["raw"], chains(stores["raw"], names, per_terminal, kinds)
            )
            urls = databases(stack, args.db, folder)
            one = relay_phase(
                folder / "one",
                broker,
                stores["one"],
                chains(stores["one"], names, per_terminal, kinds),
                ["bench-relay-a"],
                urls[0],
            )
            two = relay_phase(
                folder / "two",
                broker,
                stores["two"],
                chains(stores["two"], names, per_terminal, kinds),
                ["bench-relay-a", "bench-relay-b"],
                urls[1],
            )
            for name in ("bench-relay-a", "bench-relay-b"):
                end_session(broker, name)  # else their sessions keep a share of the group's
            solo = relay_phase(
                folder / "solo",
                broker,
                stores["solo"],
                chains(stores["solo"], names, per_terminal, kinds),
                ["bench-relay-solo"],
                urls[2],
                connectors=False,
            )
            end_session(broker, "bench-relay-solo")
            split = relay_phase(
                folder / "split",
                broker,
                stores["split"],
                chains(stores["split"], names, per_terminal, kinds),
                ["bench-relay-split"],
                urls[3],
                separate=True,
            )
    size = statistics.mean(len(p) for p in chains("x", ["t"], 500, kinds)["t"])
    print()
    print(
        f"{total:,} events per phase from {count} terminals, {size:.0f} bytes on average; "
        f"relay database: {args.db}"
    )
    rows: list[list[object]] = [
        ["baseline: bare paho subscriber, PUBACK only", "-", f"{raw['rate']:,.0f}", ""],
        [
            "one relay instance",
            f"{one['shares'][0]:,}",
            f"{one['rate']:,.0f}",
            f"{one['rate'] / raw['rate']:.0%}",
        ],
    ]
    for name, share in zip(("a", "b"), two["shares"]):
        rows.append(
            [
                f"two instances: {name}",
                f"{share:,} ({share / total:.0%})",
                f"{share / two['seconds']:,.0f}",
                "",
            ]
        )
    rows.append(
        [
            "two instances: combined",
            f"{sum(two['shares']):,}",
            f"{two['rate']:,.0f}",
            f"{two['rate'] / raw['rate']:.0%}",
        ]
    )
    rows.append(
        [
            "one instance, ingest only (no ledger, no connectors)",
            f"{solo['shares'][0]:,}",
            f"{solo['rate']:,.0f}",
            f"{solo['rate'] / raw['rate']:.0%}",
        ]
    )
    rows.append(
        [
            "one instance + a separate connectors process",
            f"{split['shares'][0]:,}",
            f"{split['rate']:,.0f}",
            f"{split['rate'] / raw['rate']:.0%}",
        ]
    )
    print(table(["drain", "events taken", "events/s", "of the baseline"], rows))
    lag, workers_us = split["caught_up"]
    print(
        f"relay CPU per event (all its threads): one instance {one['cpu_us']:.0f} us, two "
        f"instances {two['cpu_us']:.0f} us, ingest only {solo['cpu_us']:.0f} us, split "
        f"{split['cpu_us']:.0f} us (+ {workers_us:.0f} us in the connectors process, its start "
        f"included); 1-min load after each phase: {one['load']:.2f}, {two['load']:.2f}, "
        f"{solo['load']:.2f}, {split['load']:.2f}"
    )
    print(f"split: the ledger caught up {lag:.1f} s after the last stored event")
    print(
        f"preloading took {raw['preload_s']:.1f} / {one['preload_s']:.1f} / "
        f"{two['preload_s']:.1f} / {solo['preload_s']:.1f} / {split['preload_s']:.1f} s; two "
        f"instances against one: {two['rate'] / one['rate']:.2f}x"
    )
    print()
    if args.db == "sqlite":
        for name, phase in (("one instance", one), ("one instance, connectors apart", split)):
            ok = verdict(phase["rate"] >= TARGET_RATE)
            print(f"target: {name} >= {TARGET_RATE:,.0f} events/s on SQLite: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
