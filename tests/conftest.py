# Shared fixtures: demo configs in temporary folders and a real daemon process on a free port.
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from terminal.config import TerminalConfig, load
from terminal.demo.run import free_port, write_config

CASHIER_PIN = "1111"
MANAGER_PIN = "9999"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path / "state", free_port())


@pytest.fixture
def config(config_path: Path) -> TerminalConfig:
    return load(config_path, environ={})


class Daemon:
    """`tillbox terminal` as a real process, started and stopped by the test."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.extra_env = env or {}
        self.config = load(config_path, environ=self.extra_env)
        self.url = f"http://127.0.0.1:{self.config.api.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config_path.parent.parent / "daemon.log"

    def start(self, timeout: float = 20.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}
        env.update(self.extra_env)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tillbox.cli",
                    "terminal",
                    "--config",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=log,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("daemon did not answer in time")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, pin: str = CASHIER_PIN) -> httpx.Client:
        c = httpx.Client(base_url=f"{self.url}/api/v1", timeout=10)
        token = c.post("/sessions", json={"pin": pin}).json()["token"]
        c.headers["Authorization"] = f"Bearer {token}"
        return c


@pytest.fixture
def daemon(config_path: Path) -> Iterator[Daemon]:
    d = Daemon(config_path)
    d.start()
    yield d
    d.stop()


def demo_barcodes() -> list[str]:
    """Barcodes of piece items from the demo catalog."""
    import json

    from terminal.catalog_source import DEMO_CATALOG

    doc: dict[str, Any] = json.loads(DEMO_CATALOG.read_text(encoding="utf-8"))
    return [i["barcodes"][0] for i in doc["items"] if i["unit"] == "each"]
