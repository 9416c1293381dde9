# What `tillbox relay …` does: run the relay, show its state, load catalogs, stock and customers.
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tillbox import settle_gc

from .catalog import DocumentError, parse_catalog_csv, parse_catalog_json, parse_customers_json
from .catalog import parse_quantity as _quantity
from .config import ConfigError, RelayConfig, load
from .downsync import Downsync, DownsyncError
from .mqtt import Link
from .store import Change, Family, Store, StoreError

CONNECT_TIMEOUT = 5.0


def _fail(text: str, code: int = 2) -> int:
    print(f"tillbox: {text}", file=sys.stderr)
    return code


def _guard(action: Callable[[], int]) -> int:
    try:
        return action()
    except ConfigError as err:
        return _fail(f"configuration problem: {err}")
    except DocumentError as err:
        return _fail(str(err))
    except StoreError as err:
        return _fail(f"central store: {err}")


def run(config_path: Path | None) -> int:
    """`tillbox relay run`: ingest and down-sync (and the HTTP API if enabled) until SIGTERM."""

    def go() -> int:
        from .http import HttpError, HttpServer
        from .ingest import Relay

        config = load(config_path)
        logging.getLogger().setLevel(config.log.level)
        relay = Relay(config, connectors=config.ingest.connectors == "inline")
        broker = config.broker
        assert broker is not None  # Relay() refused a config without one
        http = HttpServer(config, relay.store) if config.http.enabled else None
        if http is not None:
            try:
                http.start()
            except HttpError as err:
                return _fail(str(err))

        def ready() -> None:
            settle_gc()
            logging.getLogger("tillbox.relay").info(
                "relay running: broker %s:%d, database %s, ledger and connectors %s",
                broker.host,
                broker.effective_port,
                relay.store.safe_url,
                "in this process"
                if relay.connectors is not None
                else "in `tillbox relay connectors run`",
            )

        try:
            relay.serve_forever(ready)
        finally:
            if http is not None:
                http.stop()
        return 0

    return _guard(go)


def status(config_path: Path | None) -> int:
    """`tillbox relay status`: heads, pending, open alerts, dead letters. Exit 1 on open alerts."""

    def go() -> int:
        store = _open(load(config_path), must_exist=True)
        state = store.status()
        print(f"database: {store.safe_url}")
        if state.heads:
            print(f"{'store/terminal':<30} {'acked upto':>10} {'pending':>8}  last stored (UTC)")
            for h in state.heads:
                name = f"{h.store}/{h.terminal}"
                stamp = f"{h.updated_at:%Y-%m-%d %H:%M:%S}"
                print(f"{name:<30} {h.seq:>10} {h.pending:>8}  {stamp}")
        else:
            print("no terminal has sent events yet")
        print(f"open alerts: {len(state.alerts)}")
        for a in state.alerts:
            since = f"{a.raised_at:%Y-%m-%d %H:%M:%S}" if a.raised_at else "?"
            print(f"  #{a.id} {a.store}/{a.terminal} {a.kind} since {since}: {a.detail}")
        print(f"dead letters: {state.dead_letters}")
        return 1 if state.alerts else 0

    return _guard(go)


def resolve(config_path: Path | None, alert_id: int) -> int:
    """`tillbox relay resolve ID`: an operator closes an alert they have dealt with."""

    def go() -> int:
        store = _open(load(config_path), must_exist=True)
        if not store.resolve_alert(alert_id):
            return _fail(f"no open alert #{alert_id}; `tillbox relay status` lists them", 1)
        print(f"alert #{alert_id} resolved")
        return 0

    return _guard(go)


def catalog_load(config_path: Path | None, store_id: str, path: Path, currency: str | None) -> int:
    """`tillbox relay catalog load`: a new catalog version, its delta, and publish both."""

    def go() -> int:
        config = load(config_path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            return _fail(f"{path}: cannot read it: {err}")
        store = _open(config)
        if path.suffix.lower() == ".csv":
            previous_currency, categories = store.catalog_categories(store_id)
            doc = parse_catalog_csv(
                text, str(path), currency=currency or previous_currency, categories=categories
            )
        elif path.suffix.lower() == ".json":
            doc = parse_catalog_json(text, str(path))
        else:
            return _fail(f"{path}: use a .json or .csv file")
        change = store.put_catalog(store_id, doc)
        if change is None:
            print(f"catalog for store {store_id} unchanged ({len(doc.items)} items)")
            return 0
        print(
            f"catalog for store {store_id} is now version {change.version} ({len(doc.items)} items)"
        )
        return _publish(config, store, change)

    return _guard(_checked_store(store_id, go))


def stock_set(config_path: Path | None, store_id: str, sku: str, qty: str) -> int:
    """`tillbox relay stock set`: one stock level, as a new stock version."""

    def go() -> int:
        try:
            value = _quantity(qty)
        except ValueError as err:
            return _fail(f"QTY: {err}")
        config = load(config_path)
        store = _open(config)
        change = store.set_stock(store_id, {sku: value})
        if change is None:
            print(f"stock of {sku} in store {store_id} is already {value}")
            return 0
        print(f"stock of {sku} in store {store_id} is now {value} (version {change.version})")
        return _publish(config, store, change)

    return _guard(_checked_store(store_id, go))


def customers_load(config_path: Path | None, store_id: str, path: Path) -> int:
    """`tillbox relay customers load`: replace a store's customer list."""

    def go() -> int:
        config = load(config_path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            return _fail(f"{path}: cannot read it: {err}")
        people = parse_customers_json(text, str(path))
        store = _open(config)
        change = store.put_customers(store_id, people)
        if change is None:
            print(f"customers of store {store_id} unchanged ({len(people)})")
            return 0
        print(f"customers of store {store_id}: version {change.version} ({len(people)})")
        return _publish(config, store, change)

    return _guard(_checked_store(store_id, go))


def publish_now(config: RelayConfig, store: Store, store_id: str, family: Family) -> int | None:
    """Publish what is unpublished for one store and family over a short-lived connection.

    Returns the version now on the broker; raises DownsyncError when the broker is not there.
    """
    broker = config.broker
    if broker is None:
        raise DownsyncError("no [broker] configured")
    link = Link(broker, client_id=f"{broker.client_id}-admin-{os.getpid()}"[:64], persistent=False)
    link.start()
    try:
        if not link.wait_connected(CONNECT_TIMEOUT, fail_fast=True):
            raise DownsyncError(link.last_error or "no connection to the broker in time")
        return Downsync(store, link).sync(store_id, family)
    finally:
        link.stop()


def _publish(config: RelayConfig, store: Store, change: Change) -> int:
    if config.broker is None:
        print("no broker configured: the relay publishes it when it runs")
        return 0
    try:
        version = publish_now(config, store, change.store, change.family)
    except (DownsyncError, StoreError) as err:
        print(f"not published now ({err}); the relay publishes it when it runs", file=sys.stderr)
        return 0
    if version is not None:
        print(f"published {change.family} version {version} (snapshot retained, delta)")
    return 0


def _open(config: RelayConfig, *, must_exist: bool = False) -> Store:
    url = config.database.url
    if must_exist and url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not path.exists():
            raise StoreError(f"no relay database at {path} yet (the relay creates it when it runs)")
    return Store(url)


def _checked_store(store_id: str, action: Callable[[], int]) -> Callable[[], int]:
    from tillbox.contract import valid_id

    def go() -> int:
        if not valid_id(store_id):
            return _fail(f"--store {store_id!r}: use 1-32 letters, digits, '-' or '_'")
        return action()

    return go
