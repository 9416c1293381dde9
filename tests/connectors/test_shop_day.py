# Done-when: a shop day through Mosquitto and `tillbox relay run` to the books and Xero.
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relay.connectors.state import ConnectorState
from relay.store import Store
from tests.relay.plainbroker import (  # noqa: F401 - the fixture
    PlainBroker,
    Till,
    plain_broker_fixture,
    wait_for,
)
from tillbox.cli import main

from .conftest import xero_table
from .dayend import Alerts, check_books, check_report, check_xero, relay_process
from .helpers import write_config
from .shopday import shop_day
from .standins.xero import XeroStandIn


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
    alerts = Alerts(plain_broker, "s1")
    till = Till(plain_broker.host, plain_broker.port, "s1", "t1")
    try:
        with relay_process(config, tmp_path / "relay.log"):
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

    # 1. The books load in beancount with zero errors; every clearing account is zero.
    closing = "s1/2026-11-27.beancount::2026-11-28 balance Assets"
    check_books(
        books,
        store.engine,
        [f"{closing}:Clearing:Card:S1:T1  0.00 EUR", f"{closing}:Cash:Drawer:S1:T1  0.00 EUR"],
    )

    # 2. Xero received exactly the expected documents, once each, every request spec-valid.
    closed = next(e for e in day.envelopes if e["type"] == "shift.closed")
    check_xero(xero, closed, sum(b["total"] for b in day.brands.values()))

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
    check_report(report, 350)
    assert [d["kind"] for d in alerts.messages[0]["differences"]] == ["cash_over_short"]
    assert all(m["differences"] == alerts.messages[0]["differences"] for m in alerts.messages)
