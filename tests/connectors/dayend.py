# The end of a shop day as the done-when checks it: a relay process, alerts, books, Xero, report.
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from relay.accounting.ledger import balances
from relay.connectors.base import Context, Event
from relay.connectors.beancount.export import MAIN, validate
from relay.connectors.mapping import load as load_mapping
from relay.connectors.runtime import Timezones
from relay.connectors.xero.connector import XeroConfig, XeroConnector
from tests.relay.plainbroker import PlainBroker, wait_for

from .conftest import XERO_MAPPING, xero_table
from .standins.xero import XeroStandIn, day_of

ROOT = Path(__file__).resolve().parents[2]


class Alerts:
    """An MQTT subscriber on the store's alerts topic."""

    def __init__(self, broker: PlainBroker, store: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="alerts-watch", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, m: self.messages.append(json.loads(m.payload))
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(f"tillbox/v1/{store}/alerts", qos=1)
        assert self._ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def relay_process(
    config: Path,
    log: Path,
    *,
    http: bool = False,
    action: tuple[str, ...] = ("run",),
    ready: str = "subscribed to",
) -> Iterator[subprocess.Popen[bytes]]:
    """`tillbox relay run --config CONFIG` (or another `action`) until it logs `ready` (and, with
    `http`, serves its HTTP API); SIGTERM at the end, which it must survive with exit status 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tillbox.cli", "relay", *action, "--config", str(config)],
            stdout=out,
            stderr=out,
            env=env,
            cwd=ROOT,
        )

    def up() -> bool:
        text = log.read_text()
        started = ready in text and (not http or "reconciliation API on" in text)
        return started or proc.poll() is not None

    try:
        assert wait_for(up), log.read_text()[-3000:]
        assert proc.poll() is None, log.read_text()[-3000:]
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]


def check_books(books: Path, engine: Engine, closing_lines: list[str]) -> None:
    """The Beancount books load with zero errors; every clearing account is zero; the day's
    file holds `closing_lines` (its balance assertions)."""
    assert validate(books / MAIN) == []
    clearing = {
        a: v
        for a, v in balances(engine).items()
        if a.startswith(("Assets:Cash:Drawer:", "Assets:Clearing:"))
    }
    assert clearing and set(clearing.values()) == {0}, clearing
    for path, line in (x.split("::", 1) for x in closing_lines):
        assert line in (books / path).read_text(encoding="utf-8"), (path, line)


def check_xero(xero: XeroStandIn, shift_closed: dict[str, Any], batch_total: int) -> None:
    """Xero received the day's manual journal and the payout's bank transaction, each once,
    every request valid against the published spec, every create with an idempotency key,
    and every failure injected before the day was really served."""
    assert xero.state.violations == [] and xero.state.limit_hits == []
    assert not xero.state.faults, f"injected failures never hit: {list(xero.state.faults)}"
    creates = [r.path.rsplit("/", 1)[1] for r in xero.creates()]
    assert sorted(creates) == ["BankTransactions", "ManualJournals"]
    (journal,) = xero.created("ManualJournals")
    (bank,) = xero.created("BankTransactions")
    conf = XeroConfig.model_validate(xero_table(xero))
    planner = XeroConnector(
        "xero", conf, Context(store=None, timezone_of=Timezones("Europe/Berlin"))
    )
    (expected,) = planner.plan(Event.from_envelope(shift_closed), load_mapping(XERO_MAPPING))
    doc = expected.payload["steps"][0]["doc"]
    assert journal["Narration"] == doc["Narration"] and day_of(journal["Date"]) == doc["Date"]
    assert [(x["AccountCode"], Decimal(str(x["LineAmount"]))) for x in journal["JournalLines"]] == [
        (x["AccountCode"], Decimal(x["LineAmount"])) for x in doc["JournalLines"]
    ]
    assert Decimal(str(bank["LineItems"][0]["LineAmount"])) == Decimal(batch_total) / 100
    assert all(r.headers.get("idempotency-key") for r in xero.requests if r.method == "PUT")


def check_report(report: dict[str, Any], shortage: int) -> None:
    """The reconciliation shows the cash shortage and nothing else, with nothing pending."""
    assert [d["kind"] for d in report["differences"]] == ["cash_over_short"], report
    assert report["pending"] == [] and report["ok"] is False, report
    short = f"{shortage // 100}.{shortage % 100:02d}"
    assert report["differences"][0]["detail"].startswith(f"cash short by {short}"), report
