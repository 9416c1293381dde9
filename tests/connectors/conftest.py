# Fixtures for the connector tests: both databases, the Xero and QuickBooks stand-ins, a store.
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.config import DatabaseConfig, LedgerConfig, RelayConfig
from relay.store import Inbound, Store
from tests.relay.pg import db_url_fixture, pg_cluster_fixture  # noqa: F401 - fixtures
from tillbox.contract import events_topic

from .standins.quickbooks import QuickBooksStandIn
from .standins.xero import XeroStandIn

DATA = Path(__file__).parent / "data"
XERO_MAPPING = DATA / "mapping-xero.toml"
QBO_MAPPING = DATA / "mapping-quickbooks.toml"


@pytest.fixture
def xero() -> Iterator[XeroStandIn]:
    standin = XeroStandIn(calls=60, window_s=60.0)
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def quickbooks() -> Iterator[QuickBooksStandIn]:
    standin = QuickBooksStandIn()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


def xero_table(standin: XeroStandIn, mapping: Path = XERO_MAPPING, **extra: Any) -> dict[str, Any]:
    """A `[connectors.<name>]` table pointing the Xero SDK at the stand-in."""
    return {
        "kind": "xero",
        "mapping": str(mapping),
        "client_id": standin.client_id,
        "client_secret": standin.client_secret,
        "tenant_id": standin.tenant,
        "api_url": f"{standin.url}/api.xro/2.0",
        "token_url": f"{standin.url}/connect/token",
        "tracking_category": "Store",
        "timeout_s": 2.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        **extra,
    }


def qbo_table(
    standin: QuickBooksStandIn, mapping: Path = QBO_MAPPING, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "quickbooks",
        "mapping": str(mapping),
        "client_id": standin.client_id,
        "client_secret": standin.client_secret,
        "refresh_token": "refresh-0",
        "realm_id": standin.realm,
        "api_url": f"{standin.url}/v3",
        "token_url": f"{standin.url}/oauth2/v1/tokens/bearer",
        "timeout_s": 2.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.5,
        **extra,
    }


def relay_config(db_url: str, connectors: dict[str, Any] | None = None) -> RelayConfig:
    return RelayConfig(
        database=DatabaseConfig(url=db_url),
        ledger=LedgerConfig(timezone="Europe/Berlin"),
        connectors=connectors or {},
    )


def ingest(store: Store, envelopes: list[dict[str, Any]]) -> None:
    result = store.ingest(
        [
            Inbound(events_topic(e["store"], e["terminal"]), json.dumps(e).encode())
            for e in envelopes
        ]
    )
    assert result.dead == 0, store.dead_letter_rows()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    try:
        yield s
    finally:
        s.close()
