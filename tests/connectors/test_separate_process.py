# Ingest with ingest.connectors = "separate" and the ledger/connectors in their own processes.
from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Table, func, inspect, select

from relay.accounting.ledger import balances, postings
from relay.connectors.beancount.export import MAIN, validate
from relay.connectors.state import ConnectorState, cursors
from relay.store import Store
from tests.relay.plainbroker import (  # noqa: F401 - the fixture
    PlainBroker,
    Till,
    plain_broker_fixture,
    wait_for,
)

from .dayend import relay_process
from .helpers import write_config
from .shopday import shop_day

CONNECTORS = ("connectors", "run")
STREAM = "t/s1/t1"
NAMES = ("books", "reconcile")  # the queued connectors: the reconcile one is built in


def separate_config(path: Path, url: str, books: Path, broker: PlainBroker) -> Path:
    """relay.toml of a busy relay: ingest only; connectors in `tillbox relay connectors run`."""
    write_config(
        path, url, {"books": {"kind": "beancount", "path": str(books)}}, (broker.host, broker.port)
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[ingest]\n", '[ingest]\nconnectors = "separate"\n'), "utf-8")
    return path


def _count(store: Store, table: Table) -> int:
    """Rows in `table`; 0 while nobody has created it (ingest leaves the ledger's tables)."""
    if not inspect(store.engine).has_table(table.name):
        return 0
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _positions(store: Store) -> dict[tuple[str, str], int]:
    with store.engine.connect() as conn:
        return {(r.connector, r.stream): int(r.position) for r in conn.execute(select(cursors))}


def test_ingest_acks_and_two_connector_processes_post_once(
    plain_broker: PlainBroker, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'relay.sqlite'}"
    books = tmp_path / "books"
    config = separate_config(tmp_path / "relay.toml", url, books, plain_broker)
    day = shop_day("s1", "t1", sales=12, seed=5)
    half = len(day.envelopes) // 2
    till = Till(plain_broker.host, plain_broker.port, "s1", "t1")
    store = Store(url)
    try:
        with relay_process(config, tmp_path / "ingest.log") as _ingest:
            till.send(*day.envelopes[:half])
            assert till.wait_upto(half) == half
            # Ingest alone stores and acks, and leaves the ledger and the books alone.
            time.sleep(1.5)  # three of the connector runtime's polls
            assert _count(store, postings) == 0 and _count(store, cursors) == 0
            assert not books.exists()
            assert "in `tillbox relay connectors run`" in (tmp_path / "ingest.log").read_text()

            # Two connector processes on the same file (e.g. a restart overlapping, or two
            # hosts): each event reaches the ledger once and no command is leased twice.
            with (
                relay_process(
                    config, tmp_path / "c1.log", action=CONNECTORS, ready="connectors"
                ) as _c1,
                relay_process(
                    config, tmp_path / "c2.log", action=CONNECTORS, ready="connectors"
                ) as _c2,
            ):
                till.send(*day.envelopes[half:])
                last = day.envelopes[-1]["seq"]
                assert till.wait_upto(last) == last
                state = ConnectorState(store.engine)

                def caught_up() -> bool:
                    at = _positions(store)
                    fed = all(at.get((n, STREAM)) == last for n in ("ledger", *NAMES))
                    done = {"done"}
                    return fed and all(set(state.status(n).counts) == done for n in NAMES)

                assert wait_for(caught_up, 60), (_positions(store), state.status("books"))
                # No process leased a command another one held (that would mark it uncertain).
                for name in NAMES:
                    rows = state.rows(name)
                    assert rows and all(r["state"] == "done" for r in rows), (name, rows)
                    assert not any(r["uncertain"] for r in rows), (name, rows)
    finally:
        till.close()
    # The ledger took every event once: a doubled feed would double the cash shortage.
    totals = balances(store.engine)
    assert day.shortage and sum(totals.values()) == 0
    assert totals["Expenses:Cash:OverShort:S1"] == day.shortage
    assert validate(books / MAIN) == []
    day_file = (books / "s1" / f"{day.day}.beancount").read_text(encoding="utf-8")
    assert "balance Assets:Cash:Drawer:S1:T1  0.00 EUR" in day_file
    logs = (tmp_path / "c1.log").read_text() + (tmp_path / "c2.log").read_text()
    assert logs.count("connectors running: ledger and books, reconcile") == 2, logs[-2000:]
