# purpose: the daemon's sd_notify: READY once serving, watchdog pings, STOPPING on SIGTERM.
from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from terminal import sdnotify
from tests.conftest import Daemon


class NotifySocket:
    """What systemd does: a datagram socket that collects (time, message) pairs."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), data.decode()))

    def messages(self, prefix: str) -> list[float]:
        return [t for t, m in list(self.got) if m.startswith(prefix)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(str(tmp_path / "notify"))
    yield s
    s.close()


def test_ready_watchdog_and_stopping(config_path: Path, notify_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.sock.getsockname(), "WATCHDOG_USEC": "400000"}
    daemon = Daemon(config_path, env=env)
    daemon.start()
    try:
        ready = notify_socket.messages("READY=1")
        assert len(ready) == 1
        # READY came after the socket was listening: the health check answered at once.
        assert httpx.get(f"{daemon.url}/healthz", timeout=2).status_code == 200
        time.sleep(1.5)
        pings = notify_socket.messages("WATCHDOG=1")
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert len(pings) >= 6, pings  # every 0.2 s: half of WATCHDOG_USEC
        assert all(0.1 < g < 0.35 for g in gaps[1:]), gaps
    finally:
        daemon.stop()
    # uvicorn re-raises SIGTERM after a clean shutdown; systemd counts that as success.
    assert daemon.proc is not None and daemon.proc.returncode in (0, -15)
    assert len(notify_socket.messages("STOPPING=1")) == 1
    assert notify_socket.messages("READY=1")[0] < notify_socket.messages("STOPPING=1")[0]


def test_no_socket_means_no_notifications(config_path: Path, notify_socket: NotifySocket) -> None:
    daemon = Daemon(config_path, env={"WATCHDOG_USEC": "400000"})
    daemon.start()
    daemon.stop()
    assert notify_socket.got == []


def test_abstract_sockets_and_foreign_watchdogs(tmp_path: Path) -> None:
    name = f"tillbox-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert sdnotify.notify("STATUS=hello", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"STATUS=hello"
    assert not sdnotify.notify("READY=1", {})
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "nonsense"}) is None
