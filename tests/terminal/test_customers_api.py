# purpose: capturing a customer at the counter: checks, consent, the journal, lookup, the sale.
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from terminal.api import create_app
from terminal.config import TerminalConfig
from terminal.downsync import Cache
from terminal.journal import Reader, verify
from terminal.sale import Catalog
from tests.conftest import CASHIER_PIN, MANAGER_PIN

API = "/api/v1"
BREAD = "43742844"


@pytest.fixture
def api(config: TerminalConfig) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as client:
        yield client


def login(client: TestClient, pin: str) -> dict[str, str]:
    r = client.post(f"{API}/sessions", json={"pin": pin})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def cashier(api: TestClient) -> dict[str, str]:
    h = login(api, CASHIER_PIN)
    assert api.get(f"{API}/sessions/current", headers=h).json()["role"] == "cashier"
    assert api.post(f"{API}/shifts", json={"opening_float": 0}, headers=h).status_code == 201
    return h


def events(config: TerminalConfig, type_: str) -> list[dict[str, Any]]:
    return [e for e in Reader(config.journal_path).events_from(1) if e["type"] == type_]


def no_catalog(*_: Any) -> Catalog:
    raise AssertionError("a customers document needs no catalog check")


def capture(api: TestClient, h: dict[str, str], **body: Any) -> Any:
    return api.post(f"{API}/customers", json=body, headers=h)


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"name": " ", "email": "a@example.org"}, "bad_name", "name"),
        ({"name": "Jana Meier"}, "contact_missing", "email address or a phone number"),
        ({"name": "Jana Meier", "email": "jana.example.org"}, "bad_email", "one @"),
        ({"name": "Jana Meier", "email": "jana@example"}, "bad_email", "domain"),
        ({"name": "Jana Meier", "email": "ja na@example.org"}, "bad_email", "email"),
        ({"name": "Jana Meier", "phone": "12345"}, "bad_phone", "6 to 15 digits"),
        ({"name": "Jana Meier", "phone": "030 12a4567"}, "bad_phone", "phone number"),
        ({"name": "Jana Meier", "phone": "+49 30 1234 5678 9012 34"}, "bad_phone", "digits"),
    ],
)
def test_what_to_fix_is_named_and_nothing_is_journaled(
    api: TestClient,
    cashier: dict[str, str],
    config: TerminalConfig,
    body: dict[str, Any],
    code: str,
    words: str,
) -> None:
    before = len(list(Reader(config.journal_path).events_from(1)))
    r = capture(api, cashier, **body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert words in r.json()["error"]["message"]
    assert len(list(Reader(config.journal_path).events_from(1))) == before


def test_consent_is_an_explicit_yes_and_defaults_to_no(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    for vague in ("yes", 1, "true", None):
        r = capture(api, cashier, name="Jana Meier", email="j@example.org", marketing_consent=vague)
        assert r.status_code == 422, (vague, r.text)
    assert events(config, "customer.captured") == []

    r = capture(api, cashier, name="  Jana   Meier ", email="Jana@Example.ORG")
    assert r.status_code == 201, r.text
    no = r.json()["customer"]
    assert no["marketing_consent"] is False
    assert no["name"] == "Jana Meier"
    assert no["email"] == "Jana@example.org"
    assert no["phone"] == ""
    assert r.json()["sale"] is None

    r = capture(api, cashier, name="Tom Berger", phone="+49 30 7654321", marketing_consent=True)
    yes = r.json()["customer"]
    assert yes["marketing_consent"] is True

    journaled = events(config, "customer.captured")
    assert [e["data"]["customer_id"] for e in journaled] == [no["id"], yes["id"]]
    first, second = (e["data"] for e in journaled)
    assert first["marketing_consent"] is False
    assert second["marketing_consent"] is True
    for data, env in zip((first, second), journaled, strict=True):
        assert data["captured_by"] == "anna"  # the cashier who asked, by login id
        assert data["marketing_consent_at"][:16] == env["at"][:16]
        assert data["marketing_consent_at"].endswith("Z")
    assert second["phone"] == "+49 30 7654321"
    assert first["email"] == "Jana@example.org" and first["phone"] is None
    assert no["id"] != yes["id"]
    assert verify(config.journal_path).ok


def test_cashiers_capture_and_strangers_do_not(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    r = capture(api, {}, name="Jana Meier", email="j@example.org")
    assert r.status_code == 401
    r = capture(api, {"Authorization": "Bearer nope"}, name="Jana Meier", email="j@example.org")
    assert r.status_code == 401
    assert events(config, "customer.captured") == []
    manager = login(api, MANAGER_PIN)
    assert capture(api, manager, name="Max Bauer", phone="0301234567").status_code == 201
    assert capture(api, cashier, name="Jana Meier", phone="0307654321").status_code == 201
    assert len(events(config, "customer.captured")) == 2


def test_lookup_finds_a_capture_at_once_and_after_a_restart(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    captured = capture(
        api, cashier, name="Jana Meier", email="jana@example.org", phone="+49 30 1234567"
    ).json()["customer"]

    def find(client: TestClient, h: dict[str, str], q: str) -> list[dict[str, Any]]:
        r = client.get(f"{API}/customers", params={"q": q}, headers=h)
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["customers"]
        return found

    assert find(api, cashier, "meier") == [captured]
    assert find(api, cashier, "JANA@") == [captured]
    assert find(api, cashier, "1234567") == [captured]
    assert find(api, cashier, captured["id"]) == [captured]
    assert find(api, cashier, "berger") == []
    sale = api.post(f"{API}/sales", headers=cashier).json()["sale_id"]
    body = {"customer_id": captured["id"]}
    assert api.put(f"{API}/sales/{sale}/customer", json=body, headers=cashier).status_code == 200
    with TestClient(create_app(config)) as again:
        h = login(again, CASHIER_PIN)
        assert find(again, h, "meier") == [captured]
        rebuilt = again.get(f"{API}/sales/{sale}", headers=h).json()
        assert rebuilt["customer"] == {"id": captured["id"], "name": "Jana Meier"}


def test_the_relays_copy_joins_the_capture_without_flipping_consent(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    mine = capture(
        api, cashier, name="Jana Meier", email="jana@example.org", marketing_consent=True
    ).json()["customer"]
    older = {**mine, "marketing_consent": False, "marketing_consent_at": None, "loyalty_points": 7}
    other = {
        "id": "c-9",
        "name": "Jana Schulz",
        "email": "",
        "phone": "",
        "marketing_consent": False,
        "loyalty_points": 0,
    }
    cache = Cache(config.cache_path)
    doc = {"schema": "tillbox.customers/1", "version": 1, "customers": [older, other]}
    cache.apply("customers", "snapshot", doc, no_catalog)
    r = api.get(f"{API}/customers", params={"q": "jana"}, headers=cashier).json()
    assert r["version"] == 1
    assert [c["id"] for c in r["customers"]] == [mine["id"], "c-9"]
    assert r["customers"][0]["marketing_consent"] is True  # the answer given at the counter
    assert r["customers"][0]["loyalty_points"] == 7  # the rest comes from the relay

    # A later answer recorded centrally (the customer withdrew) wins over the capture.
    withdrawn = {**mine, "marketing_consent": False, "marketing_consent_at": "2999-01-01T00:00:00Z"}
    doc = {"schema": "tillbox.customers/1", "version": 2, "customers": [withdrawn, other]}
    cache.apply("customers", "snapshot", doc, no_catalog)
    cache.close()
    r = api.get(f"{API}/customers", params={"q": "meier"}, headers=cashier).json()
    assert r["customers"][0]["marketing_consent"] is False


def test_a_customer_goes_onto_the_sale_and_its_receipt_data(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    sale = api.post(f"{API}/sales", headers=cashier).json()["sale_id"]
    assert api.get(f"{API}/sales/{sale}", headers=cashier).json()["customer"] is None
    r = capture(api, cashier, name="Jana Meier", email="jana@example.org", sale_id=sale)
    assert r.status_code == 201, r.text
    jana = r.json()["customer"]
    assert r.json()["sale"]["customer"] == {"id": jana["id"], "name": "Jana Meier"}
    set_events = events(config, "sale.customer_set")
    assert [e["data"]["customer"]["id"] for e in set_events] == [jana["id"]]
    # captured and attached in one unit of work: consecutive seqs
    assert set_events[0]["seq"] == events(config, "customer.captured")[0]["seq"] + 1

    tom = capture(api, cashier, name="Tom Berger", phone="0307654321").json()["customer"]
    r = api.put(f"{API}/sales/{sale}/customer", json={"customer_id": tom["id"]}, headers=cashier)
    assert r.status_code == 200, r.text
    assert r.json()["customer"] == {"id": tom["id"], "name": "Tom Berger"}
    r = api.put(f"{API}/sales/{sale}/customer", json={"customer_id": "c-404"}, headers=cashier)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_customer"
    assert api.delete(f"{API}/sales/{sale}/customer", headers=cashier).json()["customer"] is None
    api.put(f"{API}/sales/{sale}/customer", json={"customer_id": jana["id"]}, headers=cashier)

    api.post(f"{API}/sales/{sale}/lines", json={"barcode": BREAD}, headers=cashier)
    done = api.post(
        f"{API}/sales/{sale}/payments", json={"method": "cash", "tendered": 100}, headers=cashier
    ).json()
    assert done["status"] == "completed"
    assert done["customer"] == {"id": jana["id"], "name": "Jana Meier"}
    completed = events(config, "sale.completed")[0]["data"]
    assert completed["customer"] == {"id": jana["id"], "name": "Jana Meier"}
    r = api.put(f"{API}/sales/{sale}/customer", json={"customer_id": tom["id"]}, headers=cashier)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "sale_not_open"
    r = capture(api, cashier, name="Late Comer", phone="0301111111", sale_id=sale)
    assert r.status_code == 404
    assert len(events(config, "customer.captured")) == 2


def test_a_retried_capture_is_one_customer(
    api: TestClient, cashier: dict[str, str], config: TerminalConfig
) -> None:
    h = {**cashier, "Idempotency-Key": "capture-1"}
    first = capture(api, h, name="Jana Meier", phone="0301234567", marketing_consent=True)
    again = capture(api, h, name="Jana Meier", phone="0301234567", marketing_consent=True)
    assert first.status_code == again.status_code == 201
    assert first.json()["customer"] == again.json()["customer"]
    assert len(events(config, "customer.captured")) == 1
    other = capture(api, h, name="Jana Meier", phone="0301234567", marketing_consent=False)
    assert other.status_code == 409


def test_no_email_or_phone_in_the_log(
    api: TestClient, cashier: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        capture(api, cashier, name="Jana Meier", email="jana.private@example.org")
        capture(api, cashier, name="Tom Berger", phone="+49 30 9876543", marketing_consent=True)
        capture(api, cashier, name="Bad Mail", email="bad.private@nowhere")
        api.get(f"{API}/customers", params={"q": "jana.private"}, headers=cashier)
    # The test client's own request log shows capturing works; the till's records are the rest.
    assert any(r.name == "httpx" for r in caplog.records)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx")
    for secret in ("jana.private", "9876543", "bad.private"):
        assert secret not in text
