# `tillbox relay dlq|connectors|reconcile|settlement|ledger|mapping …`: the accounting commands.
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tillbox import settle_gc

Adder = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def _fail(text: str, code: int = 2) -> int:
    print(f"tillbox: {text}", file=sys.stderr)
    return code


def _guard(action: Callable[[], int]) -> int:
    from relay.config import ConfigError
    from relay.store import StoreError

    from . import ConnectorConfigError
    from .base import ConnectorError

    try:
        return action()
    except ConfigError as err:
        return _fail(f"configuration problem: {err}")
    except ConnectorConfigError as err:
        return _fail(f"configuration problem: {err}")
    except StoreError as err:
        return _fail(f"central store: {err}")
    except ConnectorError as err:
        return _fail(str(err))


def _config(args: argparse.Namespace) -> Any:
    from relay.config import load

    return load(Path(args.config) if args.config else None)


def _runtime(config: Any, *, only: set[str] | None = None, publish: Any = None) -> Any:
    from relay.admin import _open

    from .runtime import Runtime

    return Runtime(config, _open(config), only=only, publish=publish)


# ----- dead letters -------------------------------------------------------------------------


def cmd_dlq_list(args: argparse.Namespace) -> int:
    def go() -> int:
        from .state import ConnectorState

        rt_state = ConnectorState(_store(args).engine)
        rows = rt_state.dead_letters(args.connector, include_replayed=args.all)
        if not rows:
            print("no dead letters")
            return 0
        print(f"{'id':>5}  {'connector':<12} {'when (UTC)':<19}  {'what':<40} reason")
        for r in rows:
            when = f"{r['at']:%Y-%m-%d %H:%M:%S}"
            gone = " (replayed)" if r["replayed_at"] else ""
            print(
                f"{r['id']:>5}  {r['connector']:<12} {when:<19}  {r['summary'][:40]:<40} "
                f"{r['reason'][:120]}{gone}"
            )
        return 1

    return _guard(go)


def cmd_dlq_show(args: argparse.Namespace) -> int:
    def go() -> int:
        from .state import ConnectorState

        row = ConnectorState(_store(args).engine).dead_letter(args.id)
        if row is None:
            return _fail(f"no dead letter #{args.id}; `tillbox relay dlq list` lists them", 1)
        out = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        remote = out.pop("remote", "")
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
        if remote:
            print("remote answer:")
            print(remote)
        return 0

    return _guard(go)


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    """Plan the dead letters again with today's mapping and queue them; the relay posts them."""

    def go() -> int:
        config = _config(args)
        rt = _runtime(config)
        rows = rt.state.dead_letters(args.connector)
        if args.id is not None:
            rows = [r for r in rows if r["id"] == args.id]
            if not rows:
                return _fail(f"no dead letter #{args.id} waiting for a replay", 1)
        elif not args.all:
            return _fail("say which: a dead-letter ID, or --all")
        done = 0
        for r in rows:
            try:
                worker = rt.worker(r["connector"])
            except KeyError:
                print(f"#{r['id']}: connector {r['connector']} is not configured; skipped")
                continue
            worker.mapping.refresh()
            digest = worker.mapping.current.digest if worker.mapping.current else ""
            flowing, _ = rt.state.replan(worker.name, worker._plan, digest, ids=[r["queue_id"]])
            rt.state.mark_replayed([r["id"]])
            state = "queued again" if flowing else "waits for a mapping"
            print(f"#{r['id']} {r['summary']}: {state}")
            done += 1
        print(f"{done} dead letter(s) replayed; the running relay posts them")
        return 0

    return _guard(go)


# ----- connectors ---------------------------------------------------------------------------


def cmd_connectors_status(args: argparse.Namespace) -> int:
    def go() -> int:
        from .base import public_config

        config = _config(args)
        rt = _runtime(config)
        bad = 0
        for w in [None, *rt.workers]:
            name = "ledger" if w is None else w.name
            st = rt.state.status(name)
            counts = ", ".join(f"{k} {v}" for k, v in sorted(st.counts.items())) or "empty"
            kind = "built in" if w is None else w.connector.kind
            print(f"{name} ({kind}): {counts}")
            if w is not None and args.verbose:
                print("  config: " + json.dumps(public_config(w.config), default=str))
            if st.mapping:
                print(f"  mapping {st.mapping}")
            if st.failing:
                bad += 1
                print(f"  FAILING since {st.since:%Y-%m-%d %H:%M:%S}Z: {st.failing}")
            for summary, attempts, reason in st.retrying:
                print(f"  retrying ({attempts} attempts): {summary}: {reason[:160]}")
            for summary, reason in st.waiting:
                bad += 1
                print(f"  WAITING {summary}: {reason}")
            if st.dead:
                bad += 1
                print(f"  {st.dead} dead letter(s): tillbox relay dlq list --connector {name}")
            if st.unknown:
                types = sorted({u["type"] for u in rt.state.unknown_events(name)})
                print(
                    f"  {st.unknown} event(s) of types it does not know, kept: {', '.join(types)}"
                )
        return 1 if bad else 0

    return _guard(go)


def cmd_connectors_check(args: argparse.Namespace) -> int:
    def go() -> int:
        config = _config(args)
        only = {args.name} if args.name else None
        rt = _runtime(config, only=only)
        problems = 0
        for w in rt.workers:
            w.mapping.refresh()
            if w.connector.needs_mapping and w.mapping.current is None:
                print(f"{w.name}: {w.mapping.error or 'no mapping file configured'}")
                problems += 1
                continue
            found = w.connector.check(w.mapping.current)
            for p in found:
                print(f"{w.name}: {p}")
            if not found:
                print(f"{w.name}: OK")
            problems += len(found)
        return 1 if problems else 0

    return _guard(go)


def cmd_connectors_drift(args: argparse.Namespace) -> int:
    """Each connector's reconcile(): what we posted, compared with what the remote holds."""

    def go() -> int:
        config = _config(args)
        rt = _runtime(config, only={args.name} if args.name else None)
        found = 0
        for w in rt.workers:
            drift = w.connector.reconcile(rt.state.all_bindings(w.name))
            for d in drift:
                print(f"{w.name}: {d.local_id} -> {d.remote_id or '-'}: {d.problem}")
            found += len(drift)
            if not drift:
                print(f"{w.name}: no drift")
        return 1 if found else 0

    return _guard(go)


def cmd_connectors_run(args: argparse.Namespace) -> int:
    """The ledger and connectors alone, without MQTT ingest (another process ingests)."""

    def go() -> int:
        config = _config(args)
        logging.getLogger().setLevel(config.log.level)
        only = set(args.only) if args.only else None
        publish, link = _alert_publisher(config)
        rt = _runtime(config, only=only, publish=publish)
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        rt.start()
        settle_gc()
        logging.getLogger("tillbox.relay").info(
            "connectors running: ledger and %s, database %s",
            ", ".join(w.name for w in rt.workers) or "no connectors",
            rt.store.safe_url,
        )
        done.wait()
        rt.stop()
        if link is not None:
            link.stop()
        return 0

    return _guard(go)


def _alert_publisher(config: Any) -> tuple[Callable[[str, bytes], None] | None, Any]:
    """A publisher over a connection of our own, for alerts, and that link; None without a
    broker."""
    if config.broker is None:
        return None, None
    import os

    from relay.mqtt import Link

    broker = config.broker
    link = Link(
        broker, client_id=f"{broker.client_id}-connectors-{os.getpid()}"[:64], persistent=False
    )
    link.start()

    def publish(topic: str, payload: bytes) -> None:
        if not link.publish(topic, payload).wait(10.0):
            raise RuntimeError(f"the broker did not acknowledge {topic} in time")

    return publish, link


# ----- reconciliation, settlement, ledger, mapping ------------------------------------------


def cmd_reconcile(args: argparse.Namespace) -> int:
    def go() -> int:
        from relay.reconcile import business_day, for_config, render

        try:
            day = business_day(args.day)
        except ValueError as err:
            return _fail(f"--day: {err}")
        config = _config(args)
        store = _store(args, config)
        rep = for_config(config, store.engine).report(args.store, day)
        if args.json:
            print(json.dumps(rep.to_json(), indent=2, ensure_ascii=False))
        else:
            print(render(rep), end="")
        return 1 if rep.differences else 0

    return _guard(go)


def cmd_settlement_import(args: argparse.Namespace) -> int:
    def go() -> int:
        from relay.accounting.settlement import SettlementError, parse, records

        from .state import ConnectorState

        path = Path(args.file)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            return _fail(f"{path}: cannot read it: {err}")
        try:
            recs = records(parse(text, str(path)))
        except SettlementError as err:
            return _fail(str(err))
        added = ConnectorState(_store(args).engine).add_imported(recs)
        print(
            f"{path}: {len(recs)} payout(s), {added} new; the relay posts them and reconciles the "
            "days they pay"
        )
        return 0

    return _guard(go)


def cmd_ledger_export(args: argparse.Namespace) -> int:
    """Write the ledger as Beancount files into a folder and check them with beancount."""

    def go() -> int:
        from relay.accounting.ledger import days

        from .beancount.export import MAIN, export_day, validate, write_main

        config = _config(args)
        store = _store(args, config)
        folder = Path(args.out)
        pairs = days(store.engine, args.store)
        if args.day:
            pairs = [p for p in pairs if p[1] == args.day]
        for s, d in pairs:
            export_day(store.engine, folder, s, d)
        write_main(store.engine, folder, "Tillbox", [config.ledger.currency])
        errors = validate(folder / MAIN)
        for e in errors:
            print(e, file=sys.stderr)
        print(f"{folder / MAIN}: {len(pairs)} day file(s), {len(errors)} error(s) from beancount")
        return 1 if errors else 0

    return _guard(go)


def cmd_mapping_check(args: argparse.Namespace) -> int:
    def go() -> int:
        from .mapping import load

        m = load(args.file)
        d = m.doc
        print(
            f"{args.file}: OK, revision {d.revision or '-'}: {len(d.tenders)} tender(s), "
            f"{len(d.tax_rates)} tax rate(s), {len(d.stores)} store(s), {len(d.items)} item(s)"
        )
        return 0

    return _guard(go)


def _store(args: argparse.Namespace, config: Any = None) -> Any:
    from relay.admin import _open

    return _open(config or _config(args), must_exist=True)


def add_parsers(actions: Any, with_config: Adder, with_store: Adder) -> None:
    """The accounting commands under `tillbox relay` (docs/connectors.md, docs/accounting.md)."""
    dlq = actions.add_parser("dlq", help="connector dead letters").add_subparsers(
        dest="dlq_command", required=True, metavar="ACTION"
    )
    p = with_config(dlq.add_parser("list", help="postings a remote refused for good"))
    p.add_argument("--connector", metavar="NAME", help="only this connector")
    p.add_argument("--all", action="store_true", help="also those already replayed")
    p.set_defaults(func=cmd_dlq_list)
    p = with_config(dlq.add_parser("show", help="one dead letter with the remote's answer"))
    p.add_argument("id", type=int, metavar="ID")
    p.set_defaults(func=cmd_dlq_show)
    p = with_config(dlq.add_parser("replay", help="plan again with today's mapping and post"))
    p.add_argument("id", type=int, nargs="?", metavar="ID")
    p.add_argument("--all", action="store_true", help="every dead letter (of --connector)")
    p.add_argument("--connector", metavar="NAME", help="only this connector")
    p.set_defaults(func=cmd_dlq_replay)

    con = actions.add_parser("connectors", help="the ledger and connectors").add_subparsers(
        dest="connectors_command", required=True, metavar="ACTION"
    )
    p = with_config(con.add_parser("status", help="queues, waiting events, failures"))
    p.add_argument("-v", "--verbose", action="store_true", help="show each config (no secrets)")
    p.set_defaults(func=cmd_connectors_status)
    p = with_config(con.add_parser("check", help="check credentials and mappings remotely"))
    p.add_argument("name", nargs="?", metavar="NAME", help="only this connector")
    p.set_defaults(func=cmd_connectors_check)
    p = with_config(con.add_parser("drift", help="compare what was posted with the remote"))
    p.add_argument("name", nargs="?", metavar="NAME", help="only this connector")
    p.set_defaults(func=cmd_connectors_drift)
    p = with_config(con.add_parser("run", help="run the ledger and connectors without ingest"))
    p.add_argument("--only", action="append", metavar="NAME", help="only this connector")
    p.set_defaults(func=cmd_connectors_run)

    p = with_store(actions.add_parser("reconcile", help="end-of-day report of a store's day"))
    p.add_argument("--day", required=True, metavar="YYYY-MM-DD", help="the shop's business day")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_reconcile)

    settle = actions.add_parser("settlement", help="card acquirer reports").add_subparsers(
        dest="settlement_command", required=True, metavar="ACTION"
    )
    p = with_config(settle.add_parser("import", help="import a settlement report (CSV)"))
    p.add_argument("file", metavar="FILE", help="CSV as in docs/accounting.md")
    p.set_defaults(func=cmd_settlement_import)

    ledger = actions.add_parser("ledger", help="the internal ledger").add_subparsers(
        dest="ledger_command", required=True, metavar="ACTION"
    )
    p = with_config(ledger.add_parser("export", help="write it as Beancount files and check"))
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the books")
    p.add_argument("--store", help="only this store")
    p.add_argument("--day", metavar="YYYY-MM-DD", help="only this day")
    p.set_defaults(func=cmd_ledger_export)

    mapping = actions.add_parser("mapping", help="field-mapping files").add_subparsers(
        dest="mapping_command", required=True, metavar="ACTION"
    )
    p = mapping.add_parser("check", help="validate a mapping file")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_mapping_check)
