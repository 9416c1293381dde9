# The local API end to end in-process: a whole day's flows, refusals that write nothing, retries.
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from terminal.api import create_app
from terminal.config import TerminalConfig
from terminal.journal import Reader, verify
from tests.conftest import MANAGER_PIN

BREAD = "43742844"  # BK-0001 Roggenbrötchen, 0.45 € at 7 %
API = "/api/v1"


@pytest.fixture
def api(config: TerminalConfig) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as client:
        yield client


def login(client: TestClient, pin: str = "1111") -> dict[str, str]:
    r = client.post(f"{API}/sessions", json={"pin": pin})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def seq(config: TerminalConfig) -> int:
    return max((e["seq"] for e in Reader(config.journal_path).events_from(1)), default=0)


def item(client: TestClient, q: str) -> dict[str, Any]:
    return client.get(f"{API}/catalog/items", params={"q": q}).json()["items"][0]


@pytest.fixture
def cashier(api: TestClient) -> dict[str, str]:
    h = login(api)
    assert api.post(f"{API}/shifts", json={"opening_float": 10000}, headers=h).status_code == 201
    return h


def new_sale(api: TestClient, h: dict[str, str]) -> str:
    r = api.post(f"{API}/sales", headers=h)
    assert r.status_code == 201, r.text
    return str(r.json()["sale_id"])


def test_a_whole_cash_sale(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    sale = new_sale(api, cashier)
    r = api.post(
        f"{API}/sales/{sale}/lines", json={"barcode": BREAD, "quantity": 4}, headers=cashier
    )
    assert r.status_code == 201
    apples = item(api, "Elstar")
    assert apples["unit"] == "kg"
    r = api.post(
        f"{API}/sales/{sale}/lines",
        json={"sku": apples["sku"], "quantity": "0.452"},
        headers=cashier,
    )
    body = r.json()
    weighed = round(apples["price"] * 0.452)  # half-up of e.g. 299 × 0.452 = 135.148 → 135
    assert body["subtotal"] == 4 * 45 + weighed
    assert body["total"] == body["subtotal"]
    assert sum(t["gross"] for t in body["taxes"]) == body["total"]
    r = api.post(
        f"{API}/sales/{sale}/payments", json={"method": "cash", "tendered": 5000}, headers=cashier
    )
    done = r.json()
    assert done["status"] == "completed"
    assert done["change"] == 5000 - done["total"]
    assert done["receipt_no"] == "demo-t1-000001"
    receipt = api.get(f"{API}/sales/{sale}/receipt", headers=cashier).json()
    assert receipt["barcode"] == "demo-t1-000001"
    assert receipt["store"]["name"] == "Eckladen Müller"
    assert receipt["lines"][0]["name"] == "Roggenbrötchen"
    found = api.get(f"{API}/receipts/demo-t1-000001", headers=cashier).json()
    assert found["sale_id"] == sale
    assert verify(config.journal_path).ok


def test_split_payment_discount_override_refund_and_z(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    sale = new_sale(api, cashier)
    line = api.post(
        f"{API}/sales/{sale}/lines", json={"barcode": BREAD, "quantity": 10}, headers=cashier
    ).json()["lines"][0]["line_id"]
    # A price override needs a manager: refused for a cashier alone, accepted with a PIN.
    change = {"price_override": {"unit_price": 40, "reason": "day-old"}}
    r = api.patch(f"{API}/sales/{sale}/lines/{line}", json=change, headers=cashier)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "manager_required"
    r = api.patch(
        f"{API}/sales/{sale}/lines/{line}",
        json=change,
        headers=cashier | {"X-Manager-Pin": MANAGER_PIN},
    )
    assert r.status_code == 200
    assert r.json()["total"] == 400
    r = api.put(f"{API}/sales/{sale}/discount", json={"percent": "10"}, headers=cashier)
    assert r.json()["total"] == 360
    r = api.post(
        f"{API}/sales/{sale}/payments", json={"method": "card", "amount": 400}, headers=cashier
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "card_over_due"
    card = {"brand": "girocard", "masked_pan": "************1234", "auth_code": "123456"}
    r = api.post(
        f"{API}/sales/{sale}/payments",
        json={"method": "card", "amount": 200, "card": card},
        headers=cashier,
    )
    assert r.json()["due"] == 160
    r = api.post(
        f"{API}/sales/{sale}/payments", json={"method": "cash", "tendered": 200}, headers=cashier
    )
    done = r.json()
    assert done["status"] == "completed"
    assert done["change"] == 40

    before = seq(config)
    r = api.post(
        f"{API}/sales/{sale}/refunds",
        json={"lines": [{"line_id": line, "quantity": 11}], "reason": "too many"},
        headers=cashier | {"X-Manager-Pin": MANAGER_PIN},
    )
    assert r.status_code == 422
    assert seq(config) == before
    r = api.post(
        f"{API}/sales/{sale}/refunds",
        json={"lines": [{"line_id": line, "quantity": 5}], "reason": "stale"},
        headers=cashier,
    )
    assert r.status_code == 403
    r = api.post(
        f"{API}/sales/{sale}/refunds",
        json={"lines": [{"line_id": line, "quantity": 5}], "reason": "stale"},
        headers=cashier | {"X-Manager-Pin": MANAGER_PIN},
    )
    refund = r.json()["refunds"][0]
    assert refund["total"] == 180
    # Back to the card first: it took 200 of the 360, so it covers the whole 180.
    assert refund["payments"] == [
        {
            "method": "card",
            "amount": 180,
            "card": card,
            "payment_id": done["payments"][0]["payment_id"],
        },
    ]
    assert refund["receipt_no"] == "demo-t1-000002"
    shift = api.get(f"{API}/shifts/current", headers=cashier).json()
    r = api.post(f"{API}/shifts/current/close", json={"counted": 9900}, headers=cashier)
    z = r.json()
    assert z["kind"] == "Z"
    assert z["sales"] == {"count": 1, "total": 360, "tax": 24, "discounts": 40, "rounding": 0}
    assert z["refunds"] == {"count": 1, "total": 180}
    assert z["tenders"]["card"] == {"sales": 200, "refunds": 180, "net": 20, "count": 1}
    assert z["cash"]["expected"] == 10000 + 160
    assert z["cash"]["over_short"] == 9900 - 10160
    again = api.get(f"{API}/shifts/{shift['shift_id']}/report", headers=cashier).json()
    assert again == z


def test_refusals_write_nothing(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    sale = new_sale(api, cashier)
    before = seq(config)
    cases = [
        ({"barcode": "4012345678902"}, 422, "bad_barcode"),
        ({"barcode": "4012345678901"}, 404, "unknown_barcode"),
        ({"sku": "NOPE-1"}, 404, "unknown_sku"),
        ({"barcode": BREAD, "quantity": -1}, 422, "bad_quantity"),
        ({"barcode": BREAD, "quantity": 0}, 422, "bad_quantity"),
        ({"barcode": BREAD, "quantity": 100000}, 422, "bad_quantity"),
        ({"barcode": BREAD, "quantity": "1.5"}, 422, "bad_quantity"),
        ({"barcode": BREAD, "quantity": "lots"}, 422, "bad_request"),
        ({"barcode": BREAD, "sku": "BK-0001"}, 422, "bad_request"),
        ({"barcode": BREAD, "price": 1}, 422, "bad_request"),
    ]
    for body, status, code in cases:
        r = api.post(f"{API}/sales/{sale}/lines", json=body, headers=cashier)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
        assert r.json()["error"]["message"]
    assert seq(config) == before

    api.post(f"{API}/sales/{sale}/lines", json={"barcode": BREAD}, headers=cashier)
    api.post(
        f"{API}/sales/{sale}/payments", json={"method": "cash", "tendered": 100}, headers=cashier
    )
    before = seq(config)
    for method, path, body in [
        ("post", f"/sales/{sale}/lines", {"barcode": BREAD}),
        ("post", f"/sales/{sale}/payments", {"method": "cash", "tendered": 100}),
        ("post", f"/sales/{sale}/void", {"reason": "oops"}),
        ("post", f"/sales/{sale}/complete", None),
    ]:
        r = api.request(
            method, f"{API}{path}", json=body, headers=cashier | {"X-Manager-Pin": MANAGER_PIN}
        )
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "sale_not_open"
    assert api.post(f"{API}/sales", headers={}).status_code == 401
    assert seq(config) == before


def test_retried_posts_do_not_double(api: TestClient, cashier: dict[str, str]) -> None:
    key = {"Idempotency-Key": "open-1"}
    first = api.post(f"{API}/sales", headers=cashier | key).json()
    again = api.post(f"{API}/sales", headers=cashier | key).json()
    assert again["sale_id"] == first["sale_id"]
    sale = first["sale_id"]
    for _ in range(3):
        r = api.post(
            f"{API}/sales/{sale}/lines",
            json={"barcode": BREAD},
            headers=cashier | {"Idempotency-Key": "line-1"},
        )
        assert r.status_code == 201
    assert len(r.json()["lines"]) == 1
    r = api.post(
        f"{API}/sales/{sale}/lines",
        json={"barcode": BREAD, "quantity": 2},
        headers=cashier | {"Idempotency-Key": "line-1"},
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "request_reused"
    for _ in range(2):
        r = api.post(
            f"{API}/sales/{sale}/payments",
            json={"method": "cash", "tendered": 20},
            headers=cashier | {"Idempotency-Key": "pay-1"},
        )
    assert r.json()["paid"] == 20
    assert len(r.json()["payments"]) == 1


def test_void_no_sale_and_cash_movements_need_a_manager(
    api: TestClient, cashier: dict[str, str]
) -> None:
    sale = new_sale(api, cashier)
    api.post(f"{API}/sales/{sale}/lines", json={"barcode": BREAD}, headers=cashier)
    assert (
        api.post(f"{API}/sales/{sale}/void", json={"reason": "left"}, headers=cashier).status_code
        == 403
    )
    r = api.post(
        f"{API}/sales/{sale}/void",
        json={"reason": "left"},
        headers=cashier | {"X-Manager-Pin": "1111"},
    )
    assert r.json()["error"]["code"] == "manager_pin_wrong"
    r = api.post(
        f"{API}/sales/{sale}/void",
        json={"reason": "left"},
        headers=cashier | {"X-Manager-Pin": MANAGER_PIN},
    )
    assert r.json()["status"] == "voided"
    assert (
        api.post(f"{API}/drawer/open", json={"reason": "change"}, headers=cashier).status_code
        == 403
    )
    manager = login(api, MANAGER_PIN)
    assert (
        api.post(f"{API}/drawer/open", json={"reason": "change"}, headers=manager).status_code
        == 200
    )
    r = api.post(
        f"{API}/shifts/current/cash", json={"amount": -2500, "reason": "bank"}, headers=manager
    )
    report = r.json()["report"]
    assert report["no_sales"] == 1
    assert report["voids"] == {"count": 1, "total": 45}
    assert report["cash"]["expected"] == 7500


def test_state_is_rebuilt_after_restart(config: TerminalConfig) -> None:
    with TestClient(create_app(config)) as api:
        h = login(api)
        api.post(f"{API}/shifts", json={"opening_float": 500}, headers=h)
        sale = new_sale(api, h)
        api.post(
            f"{API}/sales/{sale}/lines",
            json={"barcode": BREAD, "quantity": 2},
            headers=h | {"Idempotency-Key": "a"},
        )
        open_view = api.get(f"{API}/sales/{sale}", headers=h).json()
    with TestClient(create_app(config)) as api:
        h = login(api)
        assert api.get(f"{API}/sales/{sale}", headers=h).json() == open_view
        r = api.post(
            f"{API}/sales/{sale}/lines",
            json={"barcode": BREAD, "quantity": 2},
            headers=h | {"Idempotency-Key": "a"},
        )
        assert len(r.json()["lines"]) == 1
        r = api.post(
            f"{API}/sales/{sale}/payments", json={"method": "cash", "tendered": 90}, headers=h
        )
        assert r.json()["receipt_no"] == "demo-t1-000001"
        assert (
            api.get(f"{API}/shifts/current", headers=h).json()["report"]["cash"]["expected"] == 590
        )


def test_health_metrics_and_openapi(api: TestClient, cashier: dict[str, str]) -> None:
    health = api.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["journal"]["writable"] is True
    assert health["outbox"]["depth"] == 1  # shift.opened
    metrics = api.get("/metrics").text
    assert "tillbox_outbox_depth 1" in metrics
    assert "tillbox_journal_seq 1" in metrics
    spec = api.get("/openapi.json").json()
    assert f"{API}/sales/{{sale_id}}/refunds" in spec["paths"]


def test_wrong_pins_are_slowed_down(api: TestClient) -> None:
    codes = [api.post(f"{API}/sessions", json={"pin": "0000"}).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert api.post(f"{API}/sessions", json={"pin": "1111"}).status_code == 429


def test_big_discounts_need_a_manager(api: TestClient, cashier: dict[str, str]) -> None:
    sale = new_sale(api, cashier)
    line = api.post(
        f"{API}/sales/{sale}/lines", json={"barcode": BREAD, "quantity": 10}, headers=cashier
    ).json()["lines"][0]["line_id"]
    # Up to cashier_discount_limit (10 % in the demo) a cashier decides alone.
    r = api.patch(
        f"{API}/sales/{sale}/lines/{line}", json={"discount": {"percent": "10"}}, headers=cashier
    )
    assert r.status_code == 200
    assert r.json()["total"] == 405
    for path, method, body in [
        (f"/sales/{sale}/lines/{line}", "patch", {"discount": {"percent": "50"}}),
        (f"/sales/{sale}/lines/{line}", "patch", {"discount": {"amount": 100}}),  # 22 %
        (f"/sales/{sale}/discount", "put", {"amount": 200}),
    ]:
        r = api.request(method, f"{API}{path}", json=body, headers=cashier)
        assert r.status_code == 403, (path, body)
        assert r.json()["error"]["code"] == "manager_required"
        r = api.request(
            method, f"{API}{path}", json=body, headers=cashier | {"X-Manager-Pin": MANAGER_PIN}
        )
        assert r.status_code == 200, r.text
    assert r.json()["total"] == 450 - 100 - 200
