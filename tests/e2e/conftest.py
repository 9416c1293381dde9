# purpose: a whole shop for end-to-end fault tests: PKI, Mosquitto, relay and terminal processes.
"""The `shop` fixture: the real parts, each as its own process, on 127.0.0.1 free ports.

- a development CA (`tests.relay.conftest.Pki`: terminals `demo/t1`, `demo/t2` and the
  standard cast, the relay, the operator);
- `shop.broker`: `tillbox.devbroker.DevBroker`, the shipped Mosquitto configuration with TLS
  client certificates and the ACL;
- `shop.relay()`: a `tillbox relay run` process (TLS, the relay's certificate) on the test's
  relay database, `relay_db`: SQLite by default, or PostgreSQL on the session's private
  cluster (`tests/relay/pg.py`) with ``@pytest.mark.parametrize("relay_db", ["sqlite",
  "postgresql"], indirect=True)``;
- `shop.terminal()`: a `tillbox terminal` process (`tests.conftest.Daemon`) with
  `[uplink] enabled = true`, its own certificate, pointed at the broker or at a
  `tests.e2e.proxy.TcpProxy` in front of it (`shop.proxy()`).

Nothing is started before a test asks, and `shop.close()` (run by the fixture) stops every
process and proxy and checks that none outlived the test. `shop.check(terminal)` is the
verdict every test ends with: the relay holds the terminal's journal exactly once, in order.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import distinct, func, select

from relay.store import Store, events
from terminal import catalog_source
from terminal.config import TerminalConfig
from terminal.demo.run import free_port, write_config
from terminal.journal import Journal, NewEvent, Reader
from terminal.sale import Event, Till
from tests.conftest import CASHIER_PIN, Daemon
from tests.e2e.proxy import TcpProxy
from tests.relay.conftest import Pki
from tests.relay.pg import PgCluster, pg_cluster_fixture  # noqa: F401
from tests.relay.plainbroker import PlainBroker
from tillbox import certs
from tillbox.devbroker import DevBroker

STORE = "demo"
ITEM_BARCODE = "43742844"  # a piece item of the demo catalog
EVENTS_PER_SALE = 4  # sale.opened, sale.line_added, sale.payment_added, sale.completed


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.05
) -> Any:
    """Poll until `check()` is truthy and return it; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def gone(pid: int | None) -> bool:
    return pid is None or not Path(f"/proc/{pid}").exists()


class RelayProcess:
    """`tillbox relay run --config PATH` as a real process."""

    def __init__(
        self,
        folder: Path,
        name: str,
        broker: DevBroker | PlainBroker,
        db_url: str,
        identity: certs.Identity | None,
        **ingest: object,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.db_url = db_url
        self.config = folder / f"{name}.toml"
        self.log = folder / f"{name}.log"
        tls = []
        if isinstance(broker, DevBroker) and identity is not None:
            tls = [
                f'ca_file = "{broker.ca_file}"',
                f'cert_file = "{identity.cert}"',
                f'key_file = "{identity.key}"',
            ]
        lines = [
            "version = 1",
            "[broker]",
            f'host = "{broker.host}"',
            f"port = {broker.port}",
            f'client_id = "{name}"',
            *tls,
            "keepalive = 5",
            "[database]",
            f'url = "{db_url}"',
            "[ingest]",
            *(f"{k} = {json.dumps(v)}" for k, v in ingest.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> RelayProcess:
        """Start and wait until it has subscribed (it logs `subscribed to …`)."""
        mark = self.log.stat().st_size if self.log.exists() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tillbox.cli", "relay", "run", "--config", str(self.config)],
                stdout=out,
                stderr=out,
                env=env,
            )
        self.pids.append(self.proc.pid)
        proc = self.proc
        wait_for(
            f"relay {self.name} to subscribe",
            lambda: "subscribed to" in self.log_text(mark) or proc.poll() is not None,
            timeout,
        )
        assert proc.poll() is None, f"relay {self.name} exited:\n{self.log_text()[-3000:]}"
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, whatever batch it had in hand is neither stored nor acked."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> dict[str, int]:
        """SIGTERM and wait; the counts it logged on the way out (empty if it logged none)."""
        mark = self.log.stat().st_size if self.log.exists() else 0
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        return relay_counts(self.log_text(mark))

    def log_text(self, since: int = 0) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


_COUNTS = re.compile(
    r"relay stopped: received (?P<received>\d+) messages in (?P<batches>\d+) batches; "
    r"stored (?P<stored>\d+), duplicates (?P<duplicates>\d+), "
    r"put aside behind a gap (?P<pending>\d+), dead letters (?P<dead>\d+); "
    r"sent (?P<acks>\d+) acks"
)


def relay_counts(log: str) -> dict[str, int]:
    """The counts of the relay's last `relay stopped: …` line (empty if there is none)."""
    found = list(_COUNTS.finditer(log))
    return {k: int(v) for k, v in found[-1].groupdict().items()} if found else {}


class Terminal(Daemon):
    """`tillbox terminal` with the uplink on; what the tests read from it."""

    def __init__(self, config_path: Path) -> None:
        super().__init__(config_path)
        self.pids: list[int] = []

    def start(self, timeout: float = 30.0) -> None:
        super().start(timeout)
        assert self.proc is not None
        self.pids.append(self.proc.pid)

    @property
    def terminal_id(self) -> str:
        return self.config.terminal_id

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=10).json()
        return body

    def uplink(self) -> dict[str, Any]:
        body: dict[str, Any] = self.health()["uplink"]
        return body

    def journal(self) -> list[dict[str, Any]]:
        """Every event of the journal, as the uplink sends it."""
        reader = Reader(self.config.journal_path)
        try:
            return list(reader.events_from(1))
        finally:
            reader.close()

    def outbox(self) -> int:
        reader = Reader(self.config.journal_path)
        try:
            return int(reader.conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            reader.close()

    def sell(self, sales: int) -> int:
        """Ring up `sales` one-line cash sales through the API (opening a shift if none is
        open); the journal's seq afterwards."""
        api = self.api()
        try:
            open_shift(api)
            for _ in range(sales):
                ring_up(api)
        finally:
            api.close()
        seq: int = self.health()["journal"]["seq"]
        return seq

    def api(self) -> httpx.Client:
        return self.client(CASHIER_PIN)


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def open_shift(api: httpx.Client) -> None:
    if api.get("/shifts/current").status_code != 200:
        r = api.post("/shifts", json={"opening_float": 0}, headers=_key())
        assert r.status_code == 201, r.text


def ring_up(api: httpx.Client) -> None:
    """One cash sale of one item: four journal events, each committed before the answer."""
    r = api.post("/sales", headers=_key())
    assert r.status_code == 201, r.text
    sale = r.json()["sale_id"]
    r = api.post(f"/sales/{sale}/lines", json={"barcode": ITEM_BARCODE}, headers=_key())
    assert r.status_code == 201, r.text
    r = api.post(
        f"/sales/{sale}/payments", json={"method": "cash", "tendered": 1000}, headers=_key()
    )
    assert r.status_code == 201 and r.json()["status"] == "completed", r.text


class Seller(threading.Thread):
    """A cashier ringing up sales one after another until `finish()`, whatever the network
    does (the till sells offline; the API never waits for the uplink)."""

    def __init__(self, term: Terminal) -> None:
        super().__init__(name=f"seller-{term.terminal_id}", daemon=True)
        self.term = term
        self.sales = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self._cond = threading.Condition()

    def run(self) -> None:
        try:
            api = self.term.api()
            try:
                open_shift(api)
                while not self._stop_event.is_set():
                    ring_up(api)
                    with self._cond:
                        self.sales += 1
                        self._cond.notify_all()
            finally:
                api.close()
        except BaseException as err:  # reported by finish()
            self.error = err
            with self._cond:
                self._cond.notify_all()

    def wait_sales(self, more: int, timeout: float = 60.0) -> None:
        """Wait until `more` further sales are done."""
        with self._cond:
            target = self.sales + more
            ok = self._cond.wait_for(
                lambda: self.sales >= target or self.error is not None, timeout
            )
        assert self.error is None, f"selling failed: {self.error!r}"
        assert ok, f"only {self.sales} of {target} sales within {timeout:.0f} s"

    def finish(self) -> int:
        """Stop after the sale in hand; the number of sales made."""
        self._stop_event.set()
        self.join(60)
        assert not self.is_alive(), "the seller is stuck"
        assert self.error is None, f"selling failed: {self.error!r}"
        return self.sales


def prefill(config: TerminalConfig, sales: int, per_commit: int = 100) -> int:
    """Journal `sales` one-line cash sales in-process (real Till decisions, Journal.append),
    as a till that sold offline would hold them; every event stays in the outbox. One shift,
    closed at the end, so the daemon starts without replaying it. The journal's head seq."""
    catalog = catalog_source.load(config)
    item = catalog.by_barcode(ITEM_BARCODE)
    till = Till(config.policy())
    journal = Journal(config.journal_path, config.store_id, config.terminal_id)
    journal.conn.execute("PRAGMA synchronous=OFF")  # made durable once, at the end
    pending: list[NewEvent] = []
    clock = [1_767_600_000.0]

    def at() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(clock[0]))

    def step(decided: list[Event]) -> None:
        base = journal.seq + len(pending)
        for k, (type_, data) in enumerate(decided):
            till.apply(type_, data, base + k + 1, at())
            pending.append(NewEvent(str(uuid.uuid4()), type_, data))

    def flush() -> None:
        if pending:
            journal.append(pending, at())
            pending.clear()

    step(till.open_shift(str(uuid.uuid4()), "anna", 0))
    for n in range(sales):
        sale_id = str(uuid.uuid4())
        step(till.open_sale(sale_id, "anna"))
        step(till.add_line(sale_id, str(uuid.uuid4()), item, 1, ITEM_BARCODE))
        step(till.add_payment(sale_id, str(uuid.uuid4()), "cash", tendered=1000))
        clock[0] += 30
        if (n + 1) % per_commit == 0:
            flush()
    flush()
    shift = till.shift()
    step(till.close_shift(shift.totals.expected_cash, "anna"))
    flush()
    journal.conn.execute("PRAGMA synchronous=FULL")
    head = journal.seq
    journal.close()
    return head


class Shop:
    """The parts of one test, started on demand, all stopped by `close()`."""

    def __init__(self, folder: Path, db_url: str) -> None:
        self.folder = folder
        self.db_url = db_url
        self.pki = Pki(folder / "pki")
        for terminal in ("t1", "t2"):
            self.pki.terminal(STORE, terminal)
        self.broker = DevBroker(folder / "broker", self.pki.dir)
        self.broker.start()
        self.broker_pids: list[int | None] = [self.broker.pid]
        self.open_broker: PlainBroker | None = None
        self.relays: list[RelayProcess] = []
        self.terminals: list[Terminal] = []
        self.proxies: list[TcpProxy] = []
        self._store: Store | None = None

    # -- parts ---------------------------------------------------------------------------

    def open(self) -> PlainBroker:
        """A second broker with neither TLS nor access rules, for what the real one refuses;
        `relay(open_broker=True)` and `terminal(open_broker=True)` use it."""
        if self.open_broker is None:
            self.open_broker = PlainBroker(self.folder / "open-broker")
            self.open_broker.start()
            assert self.open_broker.proc is not None
            self.broker_pids.append(self.open_broker.proc.pid)
        return self.open_broker

    def relay(
        self,
        name: str = "relay-1",
        *,
        start: bool = True,
        open_broker: bool = False,
        **ingest: object,
    ) -> RelayProcess:
        broker = self.open() if open_broker else self.broker
        identity = None if open_broker else self.pki.relay()
        relay = RelayProcess(self.folder / "relay", name, broker, self.db_url, identity, **ingest)
        self.relays.append(relay)
        return relay.start() if start else relay

    def proxy(self) -> TcpProxy:
        """A fault-injecting proxy in front of the broker."""
        proxy = TcpProxy(self.broker.host, self.broker.port).start()
        self.proxies.append(proxy)
        return proxy

    def terminal(
        self,
        terminal_id: str = "t1",
        *,
        via: TcpProxy | None = None,
        cert_of: str | None = None,
        backlog: int = 0,
        start: bool = True,
        open_broker: bool = False,
        **uplink: Any,
    ) -> Terminal:
        """A till with `[uplink] enabled = true` and its own dev certificate (or `cert_of`
        another terminal's), at the broker or at `via` (or, plain TCP, at the open broker);
        `backlog` sales journaled offline before it starts."""
        folder = self.folder / terminal_id / "state"
        path = write_config(folder, free_port())
        text = path.read_text(encoding="utf-8").replace(
            'terminal_id = "t1"', f'terminal_id = "{terminal_id}"'
        )
        ident = self.pki.terminal(STORE, cert_of or terminal_id)
        values: dict[str, Any] = {
            "enabled": True,
            "host": via.host if via else self.broker.host,
            "port": via.port if via else self.broker.port,
            "ca": str(self.broker.ca_file),
            "cert": str(ident.cert),
            "key": str(ident.key),
            "keepalive": 5,
            "ack_timeout_s": 3,
            "backoff_min_s": 0.1,
            "backoff_max_s": 0.5,
        } | uplink
        if open_broker:
            broker = self.open()
            values |= {"host": broker.host, "port": broker.port, "tls": False}
            for key in ("ca", "cert", "key"):
                del values[key]
        text += "\n[uplink]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        path.write_text(text, encoding="utf-8")
        term = Terminal(path)
        if backlog:
            prefill(term.config, backlog)
        self.terminals.append(term)
        if start:
            term.start()
        return term

    @property
    def store(self) -> Store:
        """The relay's database, opened from the test (reads only)."""
        if self._store is None:
            self._store = Store(self.db_url)
        return self._store

    # -- waiting and the verdict ----------------------------------------------------------

    def relay_head(self, term: Terminal) -> int:
        return self.store.head(STORE, term.terminal_id)[0]

    def wait_relay_past(self, term: Terminal, seq: int, timeout: float = 90.0) -> int:
        """Until the relay has stored `term`'s events up to `seq` at least; its head."""
        head: int = wait_for(
            f"the relay past seq {seq}",
            lambda: (n := self.relay_head(term)) >= seq and n,
            timeout,
        )
        return head

    def wait_drained(self, term: Terminal, timeout: float = 60.0) -> int:
        """Until the relay's ack covers the whole journal and the outbox is empty; the head."""

        seen: dict[str, Any] = {}

        def drained() -> int | None:
            body = term.health()
            up = body["uplink"]
            seq = int(body["journal"]["seq"])
            seen.update(journal=seq, uplink=up)
            done = up["outbox_depth"] == 0 and up["last_ack_seq"] == seq and seq > 0
            return seq if done else None

        try:
            head: int = wait_for(f"{term.terminal_id} to drain", drained, timeout, every=0.1)
        except AssertionError as err:
            seen["relay_head"] = self.relay_head(term)
            raise AssertionError(f"{err}; last seen: {seen}") from None
        return head

    def check(self, term: Terminal, *, dead_letters: int = 0) -> list[dict[str, Any]]:
        """The relay holds the terminal's journal exactly once, in order; nothing waits.

        Rows counted in the relay's store, seq 1..N, one row per event id, every row equal
        to the journal's event, the relay's head = the journal's head (seq and hash), no
        events waiting behind a gap, no open alert, and an empty outbox at the terminal.
        """
        journal = term.journal()
        assert journal, "the terminal journaled nothing"
        n = len(journal)
        assert [e["seq"] for e in journal] == list(range(1, n + 1))
        tid = term.terminal_id
        with self.store.engine.connect() as conn:
            rows, ids, low, high = conn.execute(
                select(
                    func.count(),
                    func.count(distinct(events.c.id)),
                    func.min(events.c.seq),
                    func.max(events.c.seq),
                ).where(events.c.store == STORE, events.c.terminal == tid)
            ).one()
        assert (rows, ids, low, high) == (n, n, 1, n), "the relay lost or duplicated events"
        assert self.store.events_of(STORE, tid) == journal
        assert self.store.head(STORE, tid) == (n, journal[-1]["hash"])
        status = self.store.status()
        waiting = {f"{h.store}/{h.terminal}": h.pending for h in status.heads}
        assert waiting.get(f"{STORE}/{tid}") == 0, "events still wait behind a gap"
        assert [a for a in status.alerts if a.terminal == tid] == []
        assert status.dead_letters == dead_letters
        assert term.outbox() == 0
        return journal

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every terminal, proxy, relay and the broker; fail if any process survived."""
        problems: list[str] = []
        for term in self.terminals:
            term.stop()
        for proxy in self.proxies:
            proxy.close()
        for relay in self.relays:
            relay.stop()
        if self._store is not None:
            self._store.close()
        self.broker.stop()
        if self.open_broker is not None:
            self.open_broker.stop()
        started: list[tuple[str, list[int | None]]] = [
            *((f"terminal {t.terminal_id}", list[int | None](t.pids)) for t in self.terminals),
            *((f"relay {r.name}", list[int | None](r.pids)) for r in self.relays),
            ("mosquitto", self.broker_pids),
        ]
        for what, pids in started:
            alive = [pid for pid in pids if not gone(pid)]
            if alive:
                problems.append(f"{what} outlived the test: pid {alive}")
        assert not problems, "; ".join(problems)

    def restart_broker(self, *, keep_persistence: bool) -> None:
        self.broker.restart(keep_persistence=keep_persistence)
        self.broker_pids.append(self.broker.pid)

    def start_broker(self) -> None:
        self.broker.start()
        self.broker_pids.append(self.broker.pid)


@pytest.fixture
def relay_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The relay's database URL: SQLite unless parametrized with "postgresql"."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'relay' / 'relay.sqlite'}"
    assert kind == "postgresql", kind
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


@pytest.fixture
def shop(tmp_path: Path, relay_db: str) -> Iterator[Shop]:
    s = Shop(tmp_path, relay_db)
    try:
        yield s
    finally:
        s.close()


def seqs(envelopes: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in envelopes]


__all__ = [
    "EVENTS_PER_SALE",
    "STORE",
    "RelayProcess",
    "Seller",
    "Shop",
    "Terminal",
    "prefill",
    "relay_counts",
    "seqs",
    "wait_for",
]
