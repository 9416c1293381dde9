# The connector framework on both databases: cursors, mappings, dead letters, limits, leases.
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from relay.connectors.keys import command_key, remote_key
from relay.connectors.runtime import RateLimiter, Runtime
from relay.connectors.state import queue
from relay.store import Store
from tillbox.cli import main

from .conftest import XERO_MAPPING, ingest, relay_config, xero_table
from .helpers import settle, write_config
from .shopday import extend, shop_day
from .standins.xero import XeroStandIn


def test_feeding_is_restart_safe_and_unknown_events_are_kept(
    store: Store, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = shop_day(sales=8)
    extend(day.envelopes, "loyalty.points_awarded", {"customer": "c1", "points": 12})
    ingest(store, day.envelopes)
    config = relay_config(db_url, {"books": {"kind": "beancount", "path": str(tmp_path / "b")}})
    rt = Runtime(config, store)
    rt.drain(30)
    first = rt.state.rows("books")
    assert [r["state"] for r in first] == ["done"], "one coalesced day command, done"
    unknown = rt.state.unknown_events()
    assert {(u["connector"], u["type"]) for u in unknown} >= {
        ("books", "loyalty.points_awarded"),
        ("ledger", "loyalty.points_awarded"),
        ("reconcile", "loyalty.points_awarded"),
    }
    # A restarted relay feeds from its cursors: nothing is planned or ledgered twice.
    again = Runtime(config, store)
    again.drain(30)
    assert len(again.state.rows("books")) == 1
    assert again.ledger.run_once() == 0
    assert store.events_of("s1", "t1")[-1]["type"] == "loyalty.points_awarded", "event kept"
    path = write_config(
        tmp_path / "relay.toml",
        db_url,
        {"books": {"kind": "beancount", "path": str(tmp_path / "b")}},
    )
    capsys.readouterr()
    main(["relay", "connectors", "status", "--config", str(path)])
    out = capsys.readouterr().out
    assert "loyalty.points_awarded" in out and "books (beancount): done 1" in out


def test_event_waits_for_a_missing_mapping_then_flows(
    store: Store, db_url: str, tmp_path: Path, xero: XeroStandIn
) -> None:
    mapping = tmp_path / "mapping.toml"
    full = XERO_MAPPING.read_text(encoding="utf-8")
    mapping.write_text(full.replace('"7" = "OUTPUT"\n', ""), encoding="utf-8")
    ingest(store, shop_day(sales=12).envelopes)
    rt = Runtime(relay_config(db_url, {"xero": xero_table(xero, mapping)}), store)
    w = rt.worker("xero")
    w.drain(10)
    st = rt.state.status("xero")
    assert st.counts == {"waiting": 1}
    ((summary, reason),) = st.waiting
    assert 'tax rate 7% has no tax code; add "7"' in reason and "shift.closed" in summary
    assert xero.created("ManualJournals") == []
    time.sleep(0.01)
    mapping.write_text(full + "\n# fixed\n", encoding="utf-8")
    assert settle(rt, lambda: rt.state.status("xero").counts == {"done": 1})
    assert len(xero.created("ManualJournals")) == 1
    assert xero.state.violations == []


def test_a_400_goes_to_dead_letters_and_replay_after_the_fix_posts_once(
    store: Store, db_url: str, tmp_path: Path, xero: XeroStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "mapping.toml"
    good = XERO_MAPPING.read_text(encoding="utf-8")
    mapping.write_text(good.replace('sales = "200"', 'sales = "299"'), encoding="utf-8")
    ingest(store, shop_day(sales=10).envelopes)
    table = xero_table(xero, mapping)
    rt = Runtime(relay_config(db_url, {"xero": table}), store)
    rt.worker("xero").drain(10)
    assert rt.state.status("xero").counts == {"dead": 1}
    config = write_config(tmp_path / "relay.toml", db_url, {"xero": table})
    capsys.readouterr()
    assert main(["relay", "dlq", "list", "--config", str(config)]) == 1
    listed = capsys.readouterr().out
    assert "Account code '299' is not a valid code" in listed
    (dead,) = rt.state.dead_letters()
    assert main(["relay", "dlq", "show", str(dead["id"]), "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert '"status": 400' in shown and "ValidationErrors" in shown
    mapping.write_text(good, encoding="utf-8")
    assert main(["relay", "dlq", "replay", "--all", "--config", str(config)]) == 0
    assert "queued again" in capsys.readouterr().out
    assert settle(rt, lambda: rt.state.status("xero").counts == {"done": 1})
    (journal,) = xero.created("ManualJournals")
    assert {line["AccountCode"] for line in journal["JournalLines"]} >= {"200"}
    assert len([r for r in xero.creates() if "ManualJournals" in r.path]) == 1
    assert rt.state.dead_letters() == [], "replayed dead letters leave the list"
    assert main(["relay", "dlq", "list", "--config", str(config)]) == 0


def test_one_connector_down_does_not_delay_another(
    store: Store, db_url: str, xero: XeroStandIn
) -> None:
    other = XeroStandIn(tenant="tenant-2")
    other.start()
    other.stop()  # down for the whole first part
    ingest(store, shop_day(sales=6).envelopes)
    config = relay_config(
        db_url,
        {"up": xero_table(xero), "down": xero_table(other, tenant_id="tenant-2", timeout_s=1.0)},
    )
    rt = Runtime(config, store, poll_s=0.05)
    rt.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not xero.created("ManualJournals"):
            time.sleep(0.05)
        assert len(xero.created("ManualJournals")) == 1
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not rt.state.status("down").failing:
            time.sleep(0.05)
        down = rt.state.status("down")
        assert down.failing and "NewConnectionError" in down.failing
        assert other.created("ManualJournals") == []
        other.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not other.created("ManualJournals"):
            time.sleep(0.05)
        assert len(other.created("ManualJournals")) == 1
    finally:
        rt.stop()
        other.stop()


def test_retry_after_is_honoured(store: Store, db_url: str, xero: XeroStandIn) -> None:
    ingest(store, shop_day(sales=6).envelopes)
    xero.fail("429", retry_after=1.5)
    rt = Runtime(relay_config(db_url, {"xero": xero_table(xero)}), store)
    assert settle(rt, lambda: bool(xero.created("ManualJournals")))
    puts = [r for r in xero.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [429, 200]
    assert puts[1].at - puts[0].at >= 1.4


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rate_limits_are_respected(store: Store, db_url: str) -> None:
    """25 journals against 10 calls per 2 s and 5 at once: no call is refused, 5 run at once."""
    standin = XeroStandIn(calls=10, window_s=2.0, concurrent=5)
    standin.start()
    try:
        for n in range(25):
            ingest(store, shop_day(terminal=f"t{n + 1}", sales=2, seed=n).envelopes)
        for _ in range(5):
            standin.fail("timeout", delay=0.3)  # slow answers, so calls overlap
        table = xero_table(
            standin, calls_per_minute=10, rate_window_s=2.0, max_concurrent=5, timeout_s=5.0
        )
        rt = Runtime(relay_config(db_url, {"xero": table}), store, poll_s=0.02)
        rt.start()
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and len(standin.created("ManualJournals")) < 25:
                time.sleep(0.05)
        finally:
            rt.stop()
        assert len(standin.created("ManualJournals")) == 25
        assert standin.state.limit_hits == []
        assert 2 <= standin.state.peak_in_flight <= 5
        assert standin.state.violations == []
    finally:
        standin.stop()


def test_rate_limiter_window_concurrency_and_pause() -> None:
    lim = RateLimiter(calls=3, period_s=0.5, concurrent=2)
    starts: list[float] = []
    active = []
    peak = [0]
    lock = threading.Lock()

    def call() -> None:
        with lim.call():
            with lock:
                starts.append(time.monotonic())
                active.append(1)
                peak[0] = max(peak[0], len(active))
            time.sleep(0.05)
            with lock:
                active.pop()

    t0 = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert peak[0] <= 2
    for i in range(3, len(starts)):
        assert starts[i] - starts[i - 3] >= 0.49, "more than 3 calls in a 0.5 s window"
    lim.pause(0.3)
    before = time.monotonic()
    with lim.call():
        pass
    assert time.monotonic() - before >= 0.29
    assert time.monotonic() - t0 < 5


def test_idempotency_keys_are_deterministic_and_fit_each_limit() -> None:
    a = command_key("xero.journal", ["e2", "e1"])
    assert a == command_key("xero.journal", ["e1", "e2"])
    assert a != command_key("xero.journal", ["e1"])
    for limit in (50, 128):
        k = remote_key(a, "journal", limit)
        assert len(k) <= limit and k == remote_key(a, "journal", limit)
        assert k != remote_key(a, "payment-card", limit)
    assert len(remote_key(a, "x", 50)) == 50
    with pytest.raises(ValueError):
        remote_key(a, "x", 20)


def test_a_killed_worker_s_lease_is_taken_back_as_uncertain(store: Store, db_url: str) -> None:
    ingest(store, shop_day(sales=4).envelopes)
    rt = Runtime(relay_config(db_url, {"books": {"kind": "beancount", "path": "/tmp/x"}}), store)
    w = rt.worker("books")
    rt.ledger.run_once()
    rt.state.feed("books", w._plan)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = w.owner.split(":")[0]
    (claimed,) = rt.state.claim("books", 1, 600, f"{host}:{dead.stdout.strip()}:gone")
    assert not claimed.uncertain
    assert rt.state.recover_orphans("books", w.owner) == 1
    with store.engine.connect() as conn:
        row = conn.execute(queue.select()).one()
    assert (row.state, row.uncertain) == ("ready", True)
    (again,) = rt.state.claim("books", 1, 600, w.owner)
    assert again.uncertain
