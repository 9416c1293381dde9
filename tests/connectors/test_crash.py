# A relay killed with SIGKILL in the middle of a post: after a restart the posting exists once.
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from relay.connectors.state import ConnectorState
from relay.store import Store

from .conftest import ingest, xero_table
from .helpers import write_config
from .shopday import shop_day
from .standins.xero import XeroStandIn

ROOT = Path(__file__).resolve().parents[2]


class Connectors:
    """`tillbox relay connectors run` as a real process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tillbox.cli",
                    "relay",
                    "connectors",
                    "run",
                    "--config",
                    str(self.config),
                    "--only",
                    "xero",
                ],
                stdout=out,
                stderr=out,
                env=env,
                cwd=ROOT,
            )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait(predicate: Callable[[], object], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _setup(tmp_path: Path, xero: XeroStandIn, tills: int) -> tuple[Store, Connectors]:
    url = f"sqlite:///{tmp_path / 'relay.sqlite'}"
    store = Store(url)
    for n in range(tills):
        ingest(store, shop_day(terminal=f"t{n + 1}", sales=4, seed=n).envelopes)
    config = write_config(tmp_path / "relay.toml", url, {"xero": xero_table(xero, timeout_s=20.0)})
    return store, Connectors(config, tmp_path / "connectors.log")


def test_kill_mid_post_then_restart_posts_exactly_once(tmp_path: Path, xero: XeroStandIn) -> None:
    store, proc = _setup(tmp_path, xero, 1)
    xero.fail("timeout", delay=30.0, only="ManualJournals")  # created, then no answer
    proc.start()
    try:
        assert wait(lambda: xero.created("ManualJournals")), proc.log.read_text()[-2000:]
        proc.kill()  # the relay dies between the remote's commit and its own
        state = ConnectorState(store.engine)
        assert [r["state"] for r in state.rows("xero")] == ["running"]
        proc.start()
        assert wait(lambda: [r["state"] for r in state.rows("xero")] == ["done"])
    finally:
        proc.stop()
    assert len(xero.created("ManualJournals")) == 1
    puts = [r for r in xero.requests if r.method == "PUT"]
    assert len(puts) == 1, "the restarted relay found the journal instead of posting it again"
    assert "looked up remotely" in proc.log.read_text()


@pytest.mark.soak
def test_kill_soak(tmp_path: Path, xero: XeroStandIn) -> None:
    """30 tills' journals, the connector process killed at random moments 25 times."""
    store, proc = _setup(tmp_path, xero, 30)
    rng = random.Random(5)
    for _ in range(40):
        xero.fail("timeout", delay=rng.uniform(0.05, 1.0))
    state = ConnectorState(store.engine)
    try:
        for _ in range(25):
            proc.start()
            time.sleep(rng.uniform(0.3, 2.0))
            proc.kill()
        proc.start()
        assert wait(lambda: {r["state"] for r in state.rows("xero")} == {"done"}, timeout=180)
    finally:
        proc.stop()
    narrations = [j["Narration"] for j in xero.created("ManualJournals")]
    assert len(narrations) == 30 == len(set(narrations))
