# Done-when: a shop day through Mosquitto and `tillbox relay run` to the books and Xero.
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from relay.accounting.ledger import balances
from relay.connectors.base import Context, Event
from relay.connectors.beancount.export import MAIN, validate
from relay.connectors.mapping import load as load_mapping
from relay.connectors.runtime import Timezones
from relay.connectors.state import ConnectorState
from relay.connectors.xero.connector import XeroConfig, XeroConnector
from relay.store import Store
from tests.relay.plainbroker import (  # noqa: F401 - the fixture
    PlainBroker,
    Till,
    plain_broker_fixture,
    wait_for,
)
from tillbox.cli import main

from .conftest import XERO_MAPPING, xero_table
from .helpers import write_config
from .shopday import shop_day
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


def test_a_shop_day_through_broker_relay_books_and_xero(
    plain_broker: PlainBroker, tmp_path: Path, xero: XeroStandIn, capsys: Any
) -> None:
    day = shop_day(sales=40, shortage=350)
    assert {"sale.refunded", "drawer.opened", "payment.batch_settled", "sale.voided"} <= set(
        day.types()
    )
    url = f"sqlite:///{tmp_path / 'relay.sqlite'}"
    books = tmp_path / "books"
    config = write_config(
        tmp_path / "relay.toml",
        url,
        {"books": {"kind": "beancount", "path": str(books)}, "xero": xero_table(xero)},
        broker=(plain_broker.host, plain_broker.port),
    )
    # Xero misbehaves on the first calls: rate limited, down, slow (it commits, then times out).
    xero.fail("429", retry_after=0.5)
    xero.fail("503")
    xero.fail("timeout", delay=2.5, only="ManualJournals")
    xero.fail("500")
    log = tmp_path / "relay.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}
    with open(log, "ab") as out:
        relay = subprocess.Popen(
            [sys.executable, "-m", "tillbox.cli", "relay", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=env,
            cwd=ROOT,
        )
    alerts = Alerts(plain_broker, "s1")
    till = Till(plain_broker.host, plain_broker.port, "s1", "t1")
    try:
        assert wait_for(lambda: "subscribed to" in log.read_text() or relay.poll() is not None)
        assert relay.poll() is None, log.read_text()[-3000:]
        till.send(*day.envelopes)
        last = day.envelopes[-1]["seq"]
        assert till.wait_upto(last, 30) == last, "the relay acked the whole day"
        csv = tmp_path / "settlement.csv"
        csv.write_text(day.settlement_csv(), encoding="utf-8")
        assert main(["relay", "settlement", "import", str(csv), "--config", str(config)]) == 0

        store = Store(url)
        state = ConnectorState(store.engine)

        def settled() -> bool:
            return (
                state.status("xero").counts == {"done": 2}
                and state.status("reconcile").counts == {"done": 2}
                and set(state.status("books").counts) == {"done"}
                and (books / "s1" / "2026-11-28.beancount").exists()
            )

        assert wait_for(settled, 60), [state.status(n) for n in ("xero", "books", "reconcile")]
        assert wait_for(lambda: alerts.messages, 10)
    finally:
        till.close()
        alerts.close()
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(20)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
    assert relay.returncode == 0, log.read_text()[-3000:]

    # 1. The books load in beancount with zero errors; every clearing account is zero.
    assert validate(books / MAIN) == []
    clearing = {
        a: v
        for a, v in balances(store.engine).items()
        if a.startswith(("Assets:Cash:Drawer:", "Assets:Clearing:"))
    }
    assert clearing and set(clearing.values()) == {0}, clearing
    text = (books / "s1" / "2026-11-27.beancount").read_text(encoding="utf-8")
    assert "2026-11-28 balance Assets:Clearing:Card:S1:T1  0.00 EUR" in text
    assert "2026-11-28 balance Assets:Cash:Drawer:S1:T1  0.00 EUR" in text

    # 2. Xero received exactly the expected documents, once each, every request spec-valid.
    assert xero.state.violations == [] and xero.state.limit_hits == []
    creates = [r.path.rsplit("/", 1)[1] for r in xero.creates()]
    assert sorted(creates) == ["BankTransactions", "ManualJournals"]
    (journal,) = xero.created("ManualJournals")
    (bank,) = xero.created("BankTransactions")
    conf = XeroConfig.model_validate(xero_table(xero))
    planner = XeroConnector(
        "xero", conf, Context(store=None, timezone_of=Timezones("Europe/Berlin"))
    )
    closed = Event.from_envelope(next(e for e in day.envelopes if e["type"] == "shift.closed"))
    (expected,) = planner.plan(closed, load_mapping(XERO_MAPPING))
    doc = expected.payload["steps"][0]["doc"]
    assert journal["Narration"] == doc["Narration"] and day_of(journal["Date"]) == doc["Date"]
    assert [(x["AccountCode"], Decimal(str(x["LineAmount"]))) for x in journal["JournalLines"]] == [
        (x["AccountCode"], Decimal(x["LineAmount"])) for x in doc["JournalLines"]
    ]
    assert (
        Decimal(str(bank["LineItems"][0]["LineAmount"]))
        == Decimal(sum(b["total"] for b in day.brands.values())) / 100
    )
    assert all(r.headers.get("idempotency-key") for r in xero.requests if r.method == "PUT")

    # 3. The reconciliation shows the shortage and nothing else, and said so on MQTT.
    capsys.readouterr()
    main(
        [
            "relay",
            "reconcile",
            "--store",
            "s1",
            "--day",
            "2026-11-27",
            "--json",
            "--config",
            str(config),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in report["differences"]] == ["cash_over_short"]
    assert report["pending"] == []
    assert report["differences"][0]["detail"].startswith("cash short by 3.50")
    assert [d["kind"] for d in alerts.messages[0]["differences"]] == ["cash_over_short"]
    assert all(m["differences"] == alerts.messages[0]["differences"] for m in alerts.messages)
