# The `tillbox` command: one entry point, a subcommand per job, each with --help.
from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def _config_path(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if args.config else None


def cmd_terminal(args: argparse.Namespace) -> int:
    import uvicorn

    from terminal.api import create_app
    from terminal.config import load

    config = load(_config_path(args))
    app = create_app(config)
    host = args.host or config.api.host
    port = args.port or config.api.port
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from terminal.demo.run import run_demo

    return run_demo(Path(args.dir), args.port)


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

    p = sub.add_parser("hash-pin", help="print the pin_hash for a cashier PIN (read from stdin)")
    p.set_defaults(func=cmd_hash_pin)
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
