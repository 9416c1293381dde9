# purpose: the real daemon with [payment] on, wired to a ZVT simulator over TCP or a pty.
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from hwsim.zvt import ZvtSimulator

from terminal.demo.run import free_port, write_config
from terminal.journal import Reader, verify
from tests.conftest import MANAGER_PIN, Daemon

FINAL = ("approved", "failed", "needs_review", "resolved")


def new_sim(mode: str, **kw: Any) -> ZvtSimulator:
    """A simulator with short waits, so faults end in a second or two."""
    settings: dict[str, Any] = {
        "step_delay": 0.005,
        "response_timeout": 1.0,
        "t2": 0.5,
        "power_off_seconds": 0.3,
    } | kw
    return ZvtSimulator(mode, **settings).start()


def payment_env(sim: ZvtSimulator, **keys: str) -> dict[str, str]:
    """`TILLBOX_PAYMENT__*` variables pointing the daemon at the simulator."""
    env = {
        "enabled": "true",
        "retry_s": "0.2",
        "recovery_timeout_s": "3",
        "connect_timeout_s": "1",
        "ack_timeout_s": "0.5",
        "answer_timeout_s": "1",
        "completion_timeout_s": "1.5",
        "log_frames": "true",
    }
    if sim.mode == "tcp":
        env |= {"transport": "tcp", "port": str(sim.port)}
    else:
        assert sim.device is not None
        env |= {"transport": "serial", "device": sim.device}
    env |= keys
    return {f"TILLBOX_PAYMENT__{k.upper()}": v for k, v in env.items()}


class Till:
    """One daemon (restartable) in front of one simulator, with a cashier and a manager."""

    def __init__(
        self, folder: Path, sim: ZvtSimulator, config: Path | None = None, **keys: str
    ) -> None:
        self.sim = sim
        self.config_path = config or write_config(folder / "state", free_port())
        self.keys = keys
        self.daemon: Daemon | None = None
        self.cashier: httpx.Client | None = None
        self.manager: httpx.Client | None = None

    def start(self, crash_after: str | None = None, **keys: str) -> Till:
        env = payment_env(self.sim, **(self.keys | keys))
        if crash_after:
            env["TILLBOX_TEST_CRASH_AFTER"] = crash_after
        self.daemon = Daemon(self.config_path, env)
        self.daemon.start()
        self.cashier = self.daemon.client()
        self.manager = self.daemon.client(MANAGER_PIN)
        return self

    def stop(self) -> None:
        for c in (self.cashier, self.manager):
            if c is not None:
                c.close()
        if self.daemon is not None:
            self.daemon.stop()

    @property
    def c(self) -> httpx.Client:
        assert self.cashier is not None
        return self.cashier

    @property
    def m(self) -> httpx.Client:
        assert self.manager is not None
        return self.manager

    @property
    def log(self) -> Path:
        assert self.daemon is not None
        return self.daemon.log

    def wait_exit(self, timeout: float = 15) -> int:
        """The daemon's exit status once it died on its own (a test crash hook)."""
        assert self.daemon is not None and self.daemon.proc is not None
        return self.daemon.proc.wait(timeout)

    # -- sales ---------------------------------------------------------------------------

    def ensure_shift(self) -> None:
        if self.c.get("/shifts/current").status_code == 404:
            assert self.c.post("/shifts", json={"opening_float": 10000}).status_code == 201

    def sale(self, skus: int = 1) -> str:
        """An open sale with `skus` different piece items on it."""
        self.ensure_shift()
        sale_id: str = self.c.post("/sales").json()["sale_id"]
        items = self.c.get("/catalog/items", params={"limit": 50}).json()["items"]
        pieces = [i for i in items if i["unit"] == "each"][:skus]
        for item in pieces:
            r = self.c.post(f"/sales/{sale_id}/lines", json={"sku": item["sku"]})
            assert r.status_code == 201, r.text
        return sale_id

    def pay_card(self, sale_id: str, amount: int | None = None, key: str | None = None) -> str:
        headers = {"Idempotency-Key": key} if key else {}
        r = self.c.post(f"/sales/{sale_id}/payments/card", json={"amount": amount}, headers=headers)
        assert r.status_code == 202, r.text
        payment_id: str = r.json()["payment_id"]
        return payment_id

    def wait(self, payment_id: str, states: tuple[str, ...] = FINAL, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            r = self.c.get(f"/payments/{payment_id}")
            if r.status_code == 200 and r.json()["state"] in states:
                return r.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"payment stuck: {r.status_code} {r.text}")
            time.sleep(0.03)

    # -- the journal, as the test reads it -------------------------------------------------

    def events(self, types: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        assert self.daemon is not None
        reader = Reader(self.daemon.config.journal_path)
        try:
            found = [e for e in reader.events_from(1) if types is None or e["type"] in types]
        finally:
            reader.close()
        return found

    def journal_ok(self) -> bool:
        assert self.daemon is not None
        return verify(self.daemon.config.journal_path).ok


@contextmanager
def running(folder: Path, sim: ZvtSimulator, **keys: str) -> Iterator[Till]:
    till = Till(folder, sim, **keys).start()
    try:
        yield till
    finally:
        till.stop()
