# purpose: down-sync of catalog, stock and customers from a stand-in relay over a real Mosquitto.
from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from terminal.api import create_app
from terminal.catalog_source import DEMO_CATALOG
from terminal.config import load
from tests.terminal.mqtt_helpers import TERMINAL, Relay, login, make_ca, uplink_config, wait_for
from tillbox.devbroker import DevBroker, free_port

DEMO: dict[str, Any] = json.loads(DEMO_CATALOG.read_text(encoding="utf-8"))
BREAD_SKU, BREAD = "BK-0001", "43742844"  # 0.45 in the demo catalog
ROLL_SKU, ROLL = "BK-0002", "4278615406999"
CUSTOMERS = [
    {
        "id": "c-1",
        "name": "Jana Müller",
        "email": "jana@example.org",
        "phone": "+49 30 1234567",
        "marketing_consent": True,
        "loyalty_points": 120,
    },
    {
        "id": "c-2",
        "name": "Tom Berger",
        "email": "",
        "phone": "",
        "marketing_consent": False,
        "loyalty_points": 0,
    },
]


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def broker(tmp_path: Path, ca: Path) -> Iterator[DevBroker]:
    b = DevBroker(tmp_path / "broker", ca, port=free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture
def relay(broker: DevBroker) -> Iterator[Relay]:
    r = Relay(broker)
    yield r
    r.close()


def till(tmp_path: Path, ca: Path, broker: DevBroker) -> TestClient:
    return TestClient(create_app(load(uplink_config(tmp_path / "state", ca, broker.port), {})))


def item(sku: str, **changes: Any) -> dict[str, Any]:
    found = next(i for i in DEMO["items"] if i["sku"] == sku)
    return copy.deepcopy(found) | changes


def snapshot(version: int, *changed: dict[str, Any]) -> dict[str, Any]:
    by_sku = {c["sku"]: c for c in changed}
    return {
        "schema": "tillbox.catalog/1",
        "version": version,
        "currency": "EUR",
        "categories": DEMO["categories"],
        "items": [by_sku.get(i["sku"], i) for i in DEMO["items"]],
    }


def delta(version: int, upsert: list[dict[str, Any]], delete: list[str] | None = None) -> Any:
    return {
        "schema": "tillbox.catalog-delta/1",
        "base_version": version - 1,
        "version": version,
        "upsert": upsert,
        "delete": delete or [],
    }


def sync(api: TestClient, family: str = "catalog") -> dict[str, Any]:
    state: dict[str, Any] = api.get("/healthz").json()["uplink"]["sync"][family]
    return state


def price(api: TestClient, code: str) -> int:
    r = api.get(f"/api/v1/catalog/barcodes/{code}")
    assert r.status_code == 200, r.text
    return int(r.json()["price"])


def test_a_snapshot_then_a_price_delta_change_what_the_till_sells_at(
    tmp_path: Path, ca: Path, broker: DevBroker, relay: Relay
) -> None:
    relay.publish("catalog/snapshot", snapshot(1, item(BREAD_SKU, price=50)), retain=True)
    with till(tmp_path, ca, broker) as api:
        wait_for("catalog version 1", lambda: sync(api)["version"] == 1)
        assert price(api, BREAD) == 50
        h = login(api)
        api.post("/api/v1/shifts", json={"opening_float": 0}, headers=h)
        open_sale = api.post("/api/v1/sales", headers=h).json()["sale_id"]
        r = api.post(f"/api/v1/sales/{open_sale}/lines", json={"barcode": BREAD}, headers=h)
        assert r.json()["total"] == 50

        relay.publish("catalog/delta", delta(2, [item(BREAD_SKU, price=55)], [ROLL_SKU]))
        wait_for("catalog version 2", lambda: sync(api)["version"] == 2)
        assert price(api, BREAD) == 55
        assert api.get(f"/api/v1/catalog/barcodes/{ROLL}").status_code == 404
        sale = api.post("/api/v1/sales", headers=h).json()["sale_id"]
        r = api.post(f"/api/v1/sales/{sale}/lines", json={"barcode": BREAD}, headers=h)
        assert r.json()["lines"][0]["unit_price"] == 55
        # The sale already open keeps the price its line was rung up at.
        assert api.get(f"/api/v1/sales/{open_sale}", headers=h).json()["total"] == 50
        assert sync(api)["error"] is None
        assert "tillbox_catalog_version 2" in api.get("/metrics").text


def test_a_missed_delta_asks_for_the_snapshot_again(
    tmp_path: Path, ca: Path, broker: DevBroker, relay: Relay
) -> None:
    relay.publish("catalog/snapshot", snapshot(1), retain=True)
    with till(tmp_path, ca, broker) as api:
        wait_for("catalog version 1", lambda: sync(api)["version"] == 1)
        relay.publish("catalog/delta", delta(4, [item(BREAD_SKU, price=60)]))  # 2, 3 missed
        wait_for("a resync request", lambda: relay.on_topic(f"/{TERMINAL}/resync"))
        assert [json.loads(p) for p, _ in relay.on_topic(f"/{TERMINAL}/resync")] == [
            {"family": "catalog"}
        ]
        assert sync(api)["version"] == 1 and price(api, BREAD) == 45
        # The relay answers with its newest snapshot; an old delta after it changes nothing.
        relay.publish("catalog/snapshot", snapshot(4, item(BREAD_SKU, price=60)), retain=True)
        wait_for("catalog version 4", lambda: sync(api)["version"] == 4)
        relay.publish("catalog/delta", delta(3, [item(BREAD_SKU, price=1)]))
        relay.publish("catalog/delta", delta(5, [item(BREAD_SKU, price=65)]))
        wait_for("catalog version 5", lambda: sync(api)["version"] == 5)
        assert price(api, BREAD) == 65
        assert len(relay.on_topic(f"/{TERMINAL}/resync")) == 1


def test_a_bad_catalog_is_refused_whole_and_the_old_one_kept(
    tmp_path: Path,
    ca: Path,
    broker: DevBroker,
    relay: Relay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "tillbox.downsync")
    relay.publish("catalog/snapshot", snapshot(1), retain=True)
    with till(tmp_path, ca, broker) as api:
        wait_for("catalog version 1", lambda: sync(api)["version"] == 1)
        bad_digit = item(BREAD_SKU, price=99, barcodes=["43742845"])
        relay.publish("catalog/snapshot", snapshot(2, bad_digit), retain=True)
        wait_for("the refusal", lambda: sync(api)["error"])
        assert "check digit" in sync(api)["error"]
        relay.publish("catalog/snapshot", snapshot(3, bad_digit), retain=True)
        relay.publish("catalog/delta", delta(2, [item(ROLL_SKU, tax_class="luxury")]))
        wait_for("the second refusal", lambda: "luxury" in sync(api)["error"])
        assert sync(api)["version"] == 1
        assert price(api, BREAD) == 45 and price(api, ROLL) == 35
        refusals = [
            r.getMessage()
            for r in caplog.records
            if r.name == "tillbox.downsync" and "refused" in r.getMessage()
        ]
        assert len(refusals) == 2, refusals  # the same problem twice is logged once
        relay.publish("catalog/delta", delta(2, [item(ROLL_SKU, price=40)]))
        wait_for("catalog version 2", lambda: sync(api)["version"] == 2)
        assert price(api, ROLL) == 40 and sync(api)["error"] is None


def test_stock_and_customers_are_served_read_only(
    tmp_path: Path, ca: Path, broker: DevBroker, relay: Relay
) -> None:
    relay.publish(
        "stock/snapshot",
        {"schema": "tillbox.stock/1", "version": 1, "levels": {BREAD_SKU: "12", "OG-0001": "3.5"}},
        retain=True,
    )
    relay.publish(
        "customers/snapshot",
        {"schema": "tillbox.customers/1", "version": 1, "customers": CUSTOMERS},
        retain=True,
    )
    with till(tmp_path, ca, broker) as api:
        wait_for("stock", lambda: sync(api, "stock")["version"] == 1)
        wait_for("customers", lambda: sync(api, "customers")["version"] == 1)
        assert api.get(f"/api/v1/stock/{BREAD_SKU}").json() == {
            "sku": BREAD_SKU,
            "level": "12",
            "version": 1,
        }
        relay.publish(
            "stock/delta",
            {
                "schema": "tillbox.stock-delta/1",
                "base_version": 1,
                "version": 2,
                "levels": {BREAD_SKU: "11"},
            },
        )
        wait_for("stock version 2", lambda: sync(api, "stock")["version"] == 2)
        assert api.get(f"/api/v1/stock/{BREAD_SKU}").json()["level"] == "11"
        assert api.get("/api/v1/stock/OG-0001").json()["level"] == "3.5"
        assert api.get(f"/api/v1/stock/{ROLL_SKU}").json()["level"] is None  # sold, not counted
        assert api.get("/api/v1/stock/NOPE").json()["error"]["code"] == "unknown_sku"

        assert api.get("/api/v1/customers", params={"q": "mül"}).status_code == 401
        h = login(api)
        found = api.get("/api/v1/customers", params={"q": "mül"}, headers=h).json()
        assert found == {"customers": [CUSTOMERS[0]], "version": 1}
        by_phone = api.get("/api/v1/customers", params={"q": "1234567"}, headers=h).json()
        assert [c["id"] for c in by_phone["customers"]] == ["c-1"]
        r = api.get("/api/v1/customers", params={"q": "j"}, headers=h)
        assert r.status_code == 422
        relay.publish(
            "customers/delta",
            {
                "schema": "tillbox.customers-delta/1",
                "base_version": 1,
                "version": 2,
                "upsert": [CUSTOMERS[1] | {"loyalty_points": 5}],
                "delete": ["c-1"],
            },
        )
        wait_for("customers version 2", lambda: sync(api, "customers")["version"] == 2)
        assert (
            api.get("/api/v1/customers", params={"q": "mül"}, headers=h).json()["customers"] == []
        )
        tom = api.get("/api/v1/customers", params={"q": "berger"}, headers=h).json()["customers"]
        assert tom == [CUSTOMERS[1] | {"loyalty_points": 5}]


def test_the_cache_survives_a_restart_without_the_broker(
    tmp_path: Path, ca: Path, broker: DevBroker, relay: Relay
) -> None:
    relay.publish("catalog/snapshot", snapshot(1), retain=True)
    relay.publish(
        "stock/snapshot",
        {"schema": "tillbox.stock/1", "version": 3, "levels": {BREAD_SKU: "7"}},
        retain=True,
    )
    with till(tmp_path, ca, broker) as api:
        wait_for("stock version 3", lambda: sync(api, "stock")["version"] == 3)
        relay.publish("catalog/delta", delta(2, [item(BREAD_SKU, price=52)]))
        wait_for("catalog version 2", lambda: sync(api)["version"] == 2)
    relay.close()
    broker.stop()
    with till(tmp_path, ca, broker) as api:
        assert price(api, BREAD) == 52  # from the cache, before any connection
        assert api.get(f"/api/v1/stock/{BREAD_SKU}").json()["level"] == "7"
        wait_for("the cached versions", lambda: sync(api)["version"] == 2)
        assert sync(api, "stock")["version"] == 3
        assert api.get("/healthz").json()["uplink"]["connected"] is False


def test_a_crashing_downsync_thread_is_restarted_and_sales_still_flow(
    tmp_path: Path,
    ca: Path,
    broker: DevBroker,
    relay: Relay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "state" / "cache.sqlite"
    blocker.mkdir(parents=True)  # SQLite cannot open a folder: the down-sync thread crashes
    relay.publish("catalog/snapshot", snapshot(1, item(BREAD_SKU, price=48)), retain=True)
    with till(tmp_path, ca, broker) as api:
        wait_for("the crash", lambda: any("crashed" in r.getMessage() for r in caplog.records))
        h = login(api)
        assert api.post("/api/v1/shifts", json={"opening_float": 0}, headers=h).status_code == 201
        wait_for("the shift event at the relay", lambda: relay.contiguous() == 1)
        assert price(api, BREAD) == 45
        blocker.rmdir()  # the fault clears; the restarted thread picks the snapshot up
        relay.publish("catalog/snapshot", snapshot(2, item(BREAD_SKU, price=48)), retain=True)
        wait_for("catalog version 2", lambda: sync(api)["version"] == 2, timeout=20)
        assert price(api, BREAD) == 48
