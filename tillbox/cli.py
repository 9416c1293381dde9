# The `tillbox` command: one entry point, a subcommand per job, each with --help.
from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import settle_gc


def _config_path(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if args.config else None


def cmd_terminal(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from terminal import sdnotify
    from terminal.api import create_app
    from terminal.config import DEFAULT_PATH, load
    from terminal.update import load_settings

    path = _config_path(args) or Path(os.environ.get("TILLBOX_CONFIG") or DEFAULT_PATH)
    config = load(path)
    # Appliance settings for fleet updates live beside terminal.toml (docs/updates.md).
    app = create_app(config, load_settings(path.parent / "update.toml"))
    host = args.host or config.api.host
    port = args.port or config.api.port

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # lifespan done and the socket listening: systemd may go on
                settle_gc()
                sdnotify.ready(f"serving on {host}:{port}")

    cfg = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    Server(cfg).run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tillbox.demo import run_demo

    return run_demo(Path(args.dir), args.port)


def cmd_sim(args: argparse.Namespace) -> int:
    from hwsim.lab import main as lab_main

    argv = ["--dir", args.dir, "--printer-port", str(args.printer_port)]
    return lab_main([*argv, *(["--no-zvt"] if args.no_zvt else [])], prog="tillbox sim")


def cmd_journal_verify(args: argparse.Namespace) -> int:
    from terminal.config import load
    from terminal.journal import verify

    db = Path(args.db) if args.db else load(_config_path(args)).journal_path
    if not db.exists():
        print(f"tillbox: {db}: no journal there. Pass --db PATH.", file=sys.stderr)
        return 2
    verdict = verify(db)
    if verdict.ok:
        print(f"{db}: OK, {verdict.events} events, hash chain intact")
        return 0
    where = f"event seq {verdict.seq} (id {verdict.event_id})" if verdict.seq else "journal"
    print(f"{db}: TAMPERED or damaged at {where}: {verdict.problem}", file=sys.stderr)
    return 1


def cmd_config_check(args: argparse.Namespace) -> int:
    from terminal.catalog_source import load as load_catalog
    from terminal.config import load

    config = load(_config_path(args))
    catalog = load_catalog(config)
    print(
        f"OK: store {config.store_id}, terminal {config.terminal_id}, "
        f"{len(config.cashiers)} cashiers, {len(catalog)} catalog items"
    )
    return 0


def cmd_hash_pin(args: argparse.Namespace) -> int:
    from terminal.config import hash_pin

    pin = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("PIN: ")
    print(hash_pin(pin))
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from tillbox import certs
    from tillbox.devbroker import acl_for

    folder = Path(args.dir)
    try:
        if args.certs_command == "acl":
            print(acl_for(folder), end="")
            return 0
        if args.certs_command == "init":
            made = list(certs.init_ca(folder))
        elif args.certs_command == "terminal":
            made = [certs.issue_terminal(folder, args.store, args.terminal)]
        elif args.certs_command == "relay":
            made = [certs.issue_relay(folder, args.name)]
        else:
            made = [certs.issue_operator(folder, args.name)]
    except certs.CertError as err:
        print(f"tillbox: {err}", file=sys.stderr)
        return 2
    for ident in made:
        print(f"{ident.role} {ident.name!r}: {ident.cert} (key {ident.key})")
    return 0


def cmd_relay_run(args: argparse.Namespace) -> int:
    from relay import admin

    return admin.run(_config_path(args))


def cmd_relay_status(args: argparse.Namespace) -> int:
    from relay import admin

    return admin.status(_config_path(args))


def cmd_relay_resolve(args: argparse.Namespace) -> int:
    from relay import admin

    return admin.resolve(_config_path(args), args.alert_id)


def cmd_relay_catalog_load(args: argparse.Namespace) -> int:
    from relay import admin

    return admin.catalog_load(_config_path(args), args.store, Path(args.file), args.currency)


def cmd_relay_stock_set(args: argparse.Namespace) -> int:
    from relay import admin

    return admin.stock_set(_config_path(args), args.store, args.sku, args.qty)


def cmd_relay_customers_load(args: argparse.Namespace) -> int:
    from relay import admin

    return admin.customers_load(_config_path(args), args.store, Path(args.file))


def _operator_broker(args: argparse.Namespace) -> Any:
    from tillbox import certs
    from tillbox.devbroker import MqttSettings
    from tillbox.fleet import FleetError

    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        raise FleetError(f"--broker {args.broker!r}: give HOST:PORT, e.g. broker.example:8883")
    ca, cert, key = args.ca, args.cert, args.key
    if args.pki:
        ident = certs.operator_files(Path(args.pki), args.name)
        ca = ca or certs.ca_files(Path(args.pki)).cert
        cert, key = cert or ident.cert, key or ident.key
    if not (ca and cert and key):
        raise FleetError("name the operator's files: --pki DIR, or --ca, --cert and --key")
    return MqttSettings(host, int(port), Path(ca), Path(cert), Path(key))


def cmd_fleet(args: argparse.Namespace) -> int:
    from tillbox import fleet

    try:
        broker = _operator_broker(args)
        if args.fleet_command == "status":
            return fleet.show_status(broker, args.store, sys.stdout)
        if args.terminal is None and not args.all:
            raise fleet.FleetError("name the boxes: --terminal T (with --store), or --all")
        command = fleet.update_command(args.url, args.version, args.sha256, args.id)
        return fleet.send_update(
            broker, args.store, args.terminal, command, sys.stdout, wait_s=args.wait
        )
    except fleet.FleetError as err:
        print(f"tillbox: {err}", file=sys.stderr)
        return 2


def add_fleet_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`tillbox fleet …` (docs/updates.md)."""
    fleet = sub.add_parser("fleet", help="the operator's view: update boxes, show their status")
    actions = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")

    def with_broker(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--broker", default="localhost:8883", help="HOST:PORT of the MQTT broker")
        p.add_argument("--pki", metavar="DIR", help="a `tillbox certs` folder with the operator")
        p.add_argument("--name", default="operator", help="operator identity in --pki")
        p.add_argument("--ca", metavar="FILE", help="CA certificate (instead of --pki)")
        p.add_argument("--cert", metavar="FILE", help="operator certificate (instead of --pki)")
        p.add_argument("--key", metavar="FILE", help="operator key (instead of --pki)")
        p.set_defaults(func=cmd_fleet)
        return p

    p = with_broker(actions.add_parser("update", help="send a signed bundle to boxes"))
    p.add_argument("--store", help="store id (all stores with --all and no --store)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--terminal", help="one terminal of --store")
    which.add_argument("--all", action="store_true", help="every box that reported a status")
    p.add_argument("--url", required=True, help="where the boxes download the .raucb bundle")
    p.add_argument("--version", required=True, help="the bundle's version (rauc info)")
    p.add_argument("--sha256", help="the bundle's SHA-256, checked before installing")
    p.add_argument("--id", help="command id (default: a new random one)")
    p.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="follow progress until done"
    )
    p = with_broker(actions.add_parser("status", help="each box's retained status"))
    p.add_argument("--store", help="only this store")


def add_relay_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`tillbox relay …` (docs/relay.md)."""

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config", metavar="PATH", help="relay config file (default /etc/tillbox/relay.toml)"
        )
        return p

    def with_store(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--store", required=True, metavar="STORE", help="store id, e.g. s1")
        return with_config(p)

    relay = sub.add_parser("relay", help="the central relay: ingest, store, down-sync")
    actions = relay.add_subparsers(dest="relay_command", required=True, metavar="ACTION")
    p = with_config(actions.add_parser("run", help="ingest events and publish down-sync"))
    p.set_defaults(func=cmd_relay_run)
    p = with_config(actions.add_parser("status", help="heads, pending, open alerts, dead letters"))
    p.set_defaults(func=cmd_relay_status)
    p = with_config(actions.add_parser("resolve", help="close an alert you have dealt with"))
    p.add_argument("alert_id", type=int, metavar="ID", help="alert number from `relay status`")
    p.set_defaults(func=cmd_relay_resolve)

    catalog = actions.add_parser("catalog", help="the stores' catalogs").add_subparsers(
        dest="catalog_command", required=True, metavar="ACTION"
    )
    p = with_store(catalog.add_parser("load", help="load a catalog (.json or .csv), publish it"))
    p.add_argument("file", metavar="FILE", help="catalog.json format, or CSV (docs/relay.md)")
    p.add_argument("--currency", help="currency of a CSV catalog (default: the previous one)")
    p.set_defaults(func=cmd_relay_catalog_load)

    stock = actions.add_parser("stock", help="stock levels").add_subparsers(
        dest="stock_command", required=True, metavar="ACTION"
    )
    p = with_store(stock.add_parser("set", help="set one stock level, publish it"))
    p.add_argument("sku", metavar="SKU")
    p.add_argument("qty", metavar="QTY", help="a decimal number, e.g. 12 or 1.25")
    p.set_defaults(func=cmd_relay_stock_set)

    people = actions.add_parser("customers", help="customer lists").add_subparsers(
        dest="customers_command", required=True, metavar="ACTION"
    )
    p = with_store(people.add_parser("load", help="replace a store's customers, publish them"))
    p.add_argument("file", metavar="FILE", help="JSON list of customers (docs/relay.md)")
    p.set_defaults(func=cmd_relay_customers_load)

    from relay.connectors.cli import add_parsers as add_accounting_parsers

    add_accounting_parsers(actions, with_config, with_store)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tillbox", description="Tillbox point of sale.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            metavar="PATH",
            help="terminal config file (default /etc/tillbox/terminal.toml)",
        )
        return p

    p = with_config(sub.add_parser("terminal", help="run the counter daemon (local API)"))
    p.add_argument("--host", help="override api.host (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="override api.port")
    p.set_defaults(func=cmd_terminal)

    p = sub.add_parser("demo", help="run the whole box with demo data and print the URL")
    p.add_argument("--dir", default="./demo-state", help="where demo state lives")
    p.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sim", help="run simulated printer+drawer, scanner and card terminal")
    p.add_argument("--dir", default="./sim-devices", help="folder for the device symlinks")
    p.add_argument("--printer-port", type=int, default=0, help="printer TCP port (0: any)")
    p.add_argument("--no-zvt", action="store_true", help="do not start the ZVT terminal")
    p.set_defaults(func=cmd_sim)

    journal = sub.add_parser("journal", help="inspect the sale journal").add_subparsers(
        dest="journal_command", required=True, metavar="ACTION"
    )
    p = with_config(
        journal.add_parser("verify", help="walk the hash chain; exit 1 naming the first bad event")
    )
    p.add_argument("--db", metavar="PATH", help="journal file (default: from the config)")
    p.set_defaults(func=cmd_journal_verify)

    config = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_command", required=True, metavar="ACTION"
    )
    p = with_config(config.add_parser("check", help="validate the config and the catalog"))
    p.set_defaults(func=cmd_config_check)

    certs = sub.add_parser(
        "certs", help="development CA for the MQTT broker (see docs/certificates.md)"
    ).add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    for action, text in (
        ("init", "create the CA and the broker's certificate for 127.0.0.1/localhost"),
        ("terminal", "issue a terminal's client certificate (CN <store>/<terminal>)"),
        ("relay", "issue a relay's client certificate"),
        ("operator", "issue the fleet operator's client certificate"),
        ("acl", "print the broker ACL: the shipped rules plus one block per terminal"),
    ):
        p = certs.add_parser(action, help=text)
        p.add_argument("--dir", required=True, metavar="DIR", help="the CA folder")
        if action == "terminal":
            p.add_argument("--store", required=True, help="store id, e.g. s1")
            p.add_argument("--terminal", required=True, help="terminal id, e.g. t1")
        elif action in ("relay", "operator"):
            p.add_argument("--name", default=action, help=f"identity (CN); default {action}")
        p.set_defaults(func=cmd_certs)

    p = sub.add_parser("hash-pin", help="print the pin_hash for a cashier PIN (read from stdin)")
    p.set_defaults(func=cmd_hash_pin)
    add_relay_parser(sub)
    add_fleet_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    from terminal.config import ConfigError

    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"tillbox: configuration problem: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
