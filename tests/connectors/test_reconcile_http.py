# The relay's HTTP API for reconciliation reports, over real HTTP against `tillbox relay run`.
from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.config import ConfigError, load
from relay.http import HttpServer
from relay.store import Store
from tests.relay.plainbroker import (  # noqa: F401 - the fixture
    PlainBroker,
    free_port,
    plain_broker_fixture,
)
from tillbox.cli import main

from .conftest import ingest
from .dayend import relay_process
from .helpers import write_config
from .shopday import shop_day

TOKEN = "s3cret-relay-token-4711"
DAY = "2026-11-27"


@pytest.fixture(scope="module")
def relay_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A running relay with its HTTP API on, and store s1's day (shortage 3.50) in its store;
    one for the module's tests, which only read."""
    folder = tmp_path_factory.mktemp("relay-http")
    broker = PlainBroker(folder / "broker")
    broker.start()
    url = f"sqlite:///{folder / 'relay.sqlite'}"
    store = Store(url)
    ingest(store, shop_day(sales=12, shortage=350).envelopes)
    store.close()
    port = free_port()
    config = write_config(
        folder / "relay.toml",
        url,
        broker=(broker.host, broker.port),
        http={"enabled": True, "port": port, "token": TOKEN},
    )
    try:
        with relay_process(config, folder / "relay.log", http=True):
            yield f"http://127.0.0.1:{port}", config
    finally:
        broker.stop()


def get(
    base: str,
    path: str,
    token: str | None = TOKEN,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return httpx.get(base + path, params=params, headers=sent, timeout=10)


def test_the_report_as_json_and_as_the_clis_table(
    relay_http: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, config = relay_http
    path = f"/v1/stores/s1/reconciliation/{DAY}"
    r = get(base, path)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text
    report = r.json()
    assert report["schema"] == "tillbox.reconciliation/1" and report["day"] == DAY
    assert [d["kind"] for d in report["differences"]] == ["cash_over_short"]
    assert (
        main(
            ["relay", "reconcile", "--store", "s1", "--day", DAY, "--json", "--config", str(config)]
        )
        == 1
    )
    assert report == json.loads(capsys.readouterr().out)

    assert main(["relay", "reconcile", "--store", "s1", "--day", DAY, "--config", str(config)]) == 1
    table = capsys.readouterr().out
    for answer in (
        get(base, path, params={"format": "text"}),
        get(base, path, headers={"Accept": "text/plain"}),
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.text == table
    assert table.startswith(f"Reconciliation of store s1 for {DAY} (EUR)")
    assert "cash short by 3.50" in table
    # Asking for JSON in any way gets JSON.
    assert (
        get(base, path, params={"format": "json"}, headers={"Accept": "text/plain"}).json()
        == report
    )
    assert get(base, path, headers={"Accept": "application/json, text/plain"}).json() == report


def test_no_token_no_report(relay_http: tuple[str, Path]) -> None:
    base, _ = relay_http
    path = f"/v1/stores/s1/reconciliation/{DAY}"
    for token in (None, "wrong-token-of-some-length", TOKEN + "x"):
        r = get(base, path, token=token)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in r.json()["error"]
        assert "differences" not in r.text
    r = httpx.get(base + path, headers={"Authorization": TOKEN}, timeout=10)  # no "Bearer"
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/v1/stores/s1/reconciliation/27.11.2026", 400, "send a date as YYYY-MM-DD"),
        ("/v1/stores/s1/reconciliation/2026-02-30", 400, "send a date as YYYY-MM-DD"),
        ("/v1/stores/s1/reconciliation/20261127", 400, "send a date as YYYY-MM-DD"),
        ("/v1/stores/nowhere/reconciliation/2026-11-27", 404, "send a store id as the terminals"),
        ("/v1/stores/s%201/reconciliation/2026-11-27", 400, "letters, digits"),
        ("/v1/stores/s1/reconciliation/2026-11-27?format=pdf", 400, "format=json or format=text"),
    ],
)
def test_clear_errors(relay_http: tuple[str, Path], path: str, status: int, says: str) -> None:
    base, _ = relay_http
    r = get(base, path)
    assert r.status_code == status, r.text
    assert says in r.json()["error"], r.json()


def test_a_day_without_events_is_an_empty_clean_report(relay_http: tuple[str, Path]) -> None:
    base, _ = relay_http
    r = get(base, "/v1/stores/s1/reconciliation/2026-11-26")
    assert r.status_code == 200
    body = r.json()
    assert (body["ok"], body["differences"], body["tenders"]) == (True, [], {})


def test_config_closed_by_default_and_a_token_required(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text("version = 1\n", encoding="utf-8")
    http = load(path, environ={}).http
    assert (http.enabled, http.host, http.port, http.token) == (False, "127.0.0.1", 8081, None)
    path.write_text("version = 1\n[http]\nenabled = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape("http.token: the HTTP API needs a bearer")):
        load(path, environ={})
    with pytest.raises(ConfigError, match=r"http\.token: String should have at least 16"):
        load(path, environ={"TILLBOX_RELAY_HTTP__TOKEN": "short"})
    with pytest.raises(ConfigError, match=r"http\.port: Input should be less than or equal"):
        load(path, environ={"TILLBOX_RELAY_HTTP__PORT": "70000"})
    opened = load(path, environ={"TILLBOX_RELAY_HTTP__TOKEN": TOKEN}).http
    assert opened.enabled and opened.token == TOKEN


def test_a_port_in_use_stops_the_start(
    plain_broker: PlainBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            tmp_path / "relay.toml",
            f"sqlite:///{tmp_path / 'relay.sqlite'}",
            broker=(plain_broker.host, plain_broker.port),
            http={"enabled": True, "port": port, "token": TOKEN},
        )
        assert main(["relay", "run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"http: cannot listen on 127.0.0.1:{port}" in err and "pick another http.port" in err


def test_a_request_right_after_start_waits_for_the_server_instead_of_being_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start() logs "reconciliation API on" at once; uvicorn takes the socket over a moment
    later on its thread (here: half a second later). A client that read the line is served."""
    url = f"sqlite:///{tmp_path / 'relay.sqlite'}"
    port = free_port()
    http = {"enabled": True, "port": port, "token": TOKEN}
    config = load(write_config(tmp_path / "relay.toml", url, http=http))
    store = Store(url)
    server = HttpServer(config, store)
    run = server.server.run

    def late_run(**kwargs: Any) -> None:
        time.sleep(0.5)
        run(**kwargs)

    monkeypatch.setattr(server.server, "run", late_run)
    server.start()
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/v1/stores/s1/reconciliation/{DAY}", timeout=10)
        assert r.status_code == 401  # answered (no token sent), not refused
    finally:
        server.stop()
        store.close()
