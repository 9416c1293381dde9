# Done-when of issue #7: a shop day through the real daemon, ZVT simulator, broker and relay.
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from hwsim.zvt import ZvtSimulator

from relay.accounting.ledger import batch_view
from relay.connectors.state import ConnectorState
from relay.store import Store
from terminal.demo.run import free_port, write_config
from tests.relay.plainbroker import (  # noqa: F401 - the fixture
    PlainBroker,
    plain_broker_fixture,
    wait_for,
)
from tests.terminal.payment_helpers import Till, new_sim
from tillbox.cli import main

from .conftest import xero_table
from .dayend import Alerts, check_books, check_report, check_xero, relay_process
from .helpers import write_config as write_relay_config
from .shopday import CARD_TERMINAL, ShopDay
from .standins.xero import XeroStandIn

STORE = "s1"  # the store the Xero test mapping knows
TOKEN = "reconcile-token-0123456789"
SHORTAGE = 350


@pytest.fixture
def sim() -> Iterator[ZvtSimulator]:
    simulator = new_sim("tcp")
    yield simulator
    simulator.stop()
    assert not simulator.card_data_requested


def till_config(folder: Path, broker: PlainBroker) -> Path:
    """The demo terminal.toml as store s1, its uplink at the plain test broker."""
    path = write_config(folder / "state", free_port())
    text = path.read_text(encoding="utf-8").replace('store_id = "demo"', f'store_id = "{STORE}"')
    uplink = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "tls": False,
        "keepalive": 5,
        "ack_timeout_s": 3,
        "backoff_min_s": 0.1,
        "backoff_max_s": 0.5,
    }
    text += "\n[uplink]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in uplink.items())
    path.write_text(text, encoding="utf-8")
    return path


def cash_sale(till: Till, skus: int) -> dict[str, Any]:
    sale = till.sale(skus=skus)
    due = till.c.get(f"/sales/{sale}").json()["due"]
    r = till.c.post(
        f"/sales/{sale}/payments", json={"method": "cash", "tendered": (due // 500 + 1) * 500}
    )
    assert r.status_code == 201 and r.json()["status"] == "completed", r.text
    done: dict[str, Any] = r.json()
    return done


def card_sale(till: Till, skus: int, card: str) -> dict[str, Any]:
    sale = till.sale(skus=skus)
    till.sim.approve(card)
    assert till.wait(till.pay_card(sale))["state"] == "approved"
    view: dict[str, Any] = till.c.get(f"/sales/{sale}").json()
    assert view["status"] == "completed", view
    return view


def drained(till: Till) -> bool:
    assert till.daemon is not None
    body = httpx.get(f"{till.daemon.url}/healthz", timeout=5).json()
    up, seq = body["uplink"], int(body["journal"]["seq"])
    return bool(up["outbox_depth"] == 0 and up["last_ack_seq"] == seq)


def test_a_shop_day_through_the_daemon_relay_books_xero_and_the_http_report(
    plain_broker: PlainBroker, tmp_path: Path, xero: XeroStandIn, sim: ZvtSimulator
) -> None:
    url = f"sqlite:///{tmp_path / 'relay.sqlite'}"
    books = tmp_path / "books"
    http_port = free_port()
    config = write_relay_config(
        tmp_path / "relay.toml",
        url,
        {"books": {"kind": "beancount", "path": str(books)}, "xero": xero_table(xero)},
        broker=(plain_broker.host, plain_broker.port),
        http={"enabled": True, "port": http_port, "token": TOKEN},
    )
    # Xero misbehaves on the first calls: rate limited, down, slow (it commits, then times out).
    xero.fail("429", retry_after=0.5)
    xero.fail("503")
    xero.fail("timeout", delay=2.5, only="ManualJournals")
    xero.fail("500")
    till = Till(tmp_path / "till", sim, config=till_config(tmp_path / "till", plain_broker))
    alerts = Alerts(plain_broker, STORE)
    store = Store(url)
    try:
        with relay_process(config, tmp_path / "relay.log", http=True):
            till.start()
            try:
                # The day, as a cashier (Anna) and a manager (Mia) work it through the daemon's API.
                r = till.c.post("/shifts", json={"opening_float": 10000})
                assert r.status_code == 201, r.text
                cash_sale(till, 1)
                partly_back = cash_sale(till, 3)
                cash_sale(till, 2)
                card_back = card_sale(till, 2, "visa")
                card_sale(till, 1, "girocard")
                # the terminal totals a Mastercard under "Eurocard/Mastercard"
                card_sale(till, 1, "mastercard")
                line = partly_back["lines"][1]
                r = till.m.post(
                    f"/sales/{partly_back['sale_id']}/refunds",
                    json={
                        "lines": [{"line_id": line["line_id"], "quantity": 1}],
                        "reason": "broken",
                    },
                )
                assert r.status_code == 201, r.text
                # A line of the Visa sale back to a card: the customer hands over their girocard,
                # so the terminal books the refund on girocard, not on the sale's Visa.
                till.sim.approve("girocard")
                line = card_back["lines"][0]
                r = till.m.post(
                    f"/sales/{card_back['sale_id']}/refunds",
                    json={
                        "lines": [{"line_id": line["line_id"], "quantity": 1}],
                        "reason": "broken",
                    },
                )
                assert r.status_code == 202, r.text
                assert till.wait(r.json()["payment_id"])["state"] == "approved"
                r = till.m.post("/drawer/open", json={"reason": "change for the bakery next door"})
                assert r.status_code == 200 and r.json() == {"opened": True}, r.text
                r = till.m.post("/payments/end-of-day")
                assert r.status_code == 200 and r.json()["balanced"] is True, r.text
                settled = r.json()
                expected_cash = till.c.get("/shifts/current").json()["report"]["cash"]["expected"]
                r = till.c.post("/shifts/current/close", json={"counted": expected_cash - SHORTAGE})
                assert r.status_code == 200, r.text
                assert wait_for(lambda: drained(till), 30), "the relay acked the whole journal"
                journal = till.events()
            finally:
                till.stop()
            types = {e["type"] for e in journal}
            assert {"sale.refunded", "drawer.opened", "payment.batch_settled"} <= types, types
            closed = next(e for e in journal if e["type"] == "shift.closed")
            day = datetime.fromisoformat(closed["at"].replace("Z", "+00:00"))
            day_text = day.astimezone(ZoneInfo("Europe/Berlin")).date().isoformat()

            # The acquirer pays the batch out the next day; the till's end-of-day journals no batch
            # number of the terminal's, so the report names the batch by the till's settlement_id.
            batch = batch_view(
                next(e for e in journal if e["type"] == "payment.batch_settled")["data"]
            )
            assert (batch.card_terminal, batch.batch) == (CARD_TERMINAL, settled["settlement_id"])
            shop = ShopDay(STORE, "t1", day_text, batch=batch.batch)
            shop.brands = {
                name: {"count": b.count, "total": b.total}
                for name, b in batch.terminal.brands.items()
                if b.count
            }
            assert shop.brands.keys() == {"Visa", "girocard", "Eurocard/Mastercard"}, batch
            csv = tmp_path / "settlement.csv"
            csv.write_text(shop.settlement_csv(), encoding="utf-8")
            assert main(["relay", "settlement", "import", str(csv), "--config", str(config)]) == 0

            state = ConnectorState(store.engine)
            payout_day = (date.fromisoformat(day_text) + timedelta(days=1)).isoformat()

            def settled_everywhere() -> bool:
                return (
                    state.status("xero").counts == {"done": 2}
                    and set(state.status("reconcile").counts) == {"done"}
                    and set(state.status("books").counts) == {"done"}
                    and (books / STORE / f"{payout_day}.beancount").exists()
                    and any(m["day"] == day_text and m["differences"] for m in alerts.messages)
                )

            assert wait_for(settled_everywhere, 60), [
                state.status(n) for n in ("xero", "books", "reconcile")
            ]

            # 3. The report, fetched over the relay's HTTP API: the shortage and nothing else.
            api = f"http://127.0.0.1:{http_port}/v1/stores/{STORE}/reconciliation/{day_text}"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            r = httpx.get(api, headers=auth, timeout=10)
            assert r.status_code == 200, r.text
            report = r.json()
            table = httpx.get(api, headers=auth, params={"format": "text"}, timeout=10)
            assert table.status_code == 200 and table.headers["content-type"].startswith(
                "text/plain"
            )
    finally:
        alerts.close()

    # 1. The books load in beancount with zero errors; every clearing account is zero.
    closing = f"{STORE}/{day_text}.beancount::{payout_day} balance Assets"
    check_books(
        books,
        store.engine,
        [f"{closing}:Clearing:Card:S1:T1  0.00 EUR", f"{closing}:Cash:Drawer:S1:T1  0.00 EUR"],
    )
    # 2. Xero: exactly the expected documents, once each, spec-valid, despite the failures.
    check_xero(xero, closed, sum(b["total"] for b in shop.brands.values()))
    # 3. The reconciliation shows the shortage and nothing else (and the table says so too).
    check_report(report, SHORTAGE)
    (closed_batch,) = report["batches"]
    assert {
        b["brand"]: (b["journal_net"], b["terminal_total"])
        for b in closed_batch["brands"]
        if b["terminal_count"]
    } == {name: (b["total"], b["total"]) for name, b in shop.brands.items()}
    assert report["tenders"]["card"]["net"] == sum(b["total"] for b in shop.brands.values())
    paid = {
        p["brand"]: (p["terminal_total"], p["gross"]) for p in report["payouts"] if p["payout_id"]
    }
    assert paid == {name: (b["total"], b["total"]) for name, b in shop.brands.items()}
    assert report["cash"][0]["over_short"] == -SHORTAGE
    assert "DIFFERENCES (1):" in table.text and "cash short by 3.50" in table.text
    latest = [m for m in alerts.messages if m["day"] == day_text][-1]
    assert [d["kind"] for d in latest["differences"]] == ["cash_over_short"]
    store.close()
