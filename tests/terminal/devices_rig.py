# purpose: the devices rig for scenario tests: hw-sim lab + real daemon + an event-stream listener.
from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwsim.lab import Lab

from terminal.demo.run import free_port, write_config
from tests.conftest import CASHIER_PIN, Daemon

FAST_DEVICES = """
[devices]
poll_interval_s = 0.2
missing_after = 2
retry_interval_s = 0.1
discover = false

[devices.printer]
transport = "network"
host = "127.0.0.1"
port = {port}
status_timeout_s = 0.3
after_print_timeout_s = 1.0

[devices.drawer]
verify_s = 0.3
max_kick_age_s = {kick_age}

[[devices.scanners]]
mode = "serial"
path = "{scanner}"
"""


def devices_config(folder: Path, printer_port: int, scanner: Path, kick_age: float = 2.0) -> Path:
    """A demo config whose [devices] point at a lab, with fast checks for tests."""
    path = write_config(folder, free_port())
    extra = FAST_DEVICES.format(port=printer_port, scanner=scanner, kick_age=kick_age)
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return path


class Stream:
    """The daemon's event stream, read on a thread into a queue.

    Spoken as HTTP/1.0 on a plain socket, so ``close()`` can hang up at once: the daemon
    only finishes stopping when no stream is open.
    """

    def __init__(self, url: str, token: str) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._ready = threading.Event()
        host, port = url.removeprefix("http://").split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=10)
        self._sock.settimeout(None)
        request = f"GET /api/v1/events?token={token} HTTP/1.0\r\nHost: {host}\r\n\r\n"
        self._sock.sendall(request.encode())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("event stream did not open")

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if line.startswith("retry:"):
                    self._ready.set()
                elif line.startswith("data: "):
                    self.events.put(json.loads(line[6:]))

    def wait(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The next event (earlier ones included) for which ``match`` is true."""
        for event in self.seen:
            if match(event):
                self.seen.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if match(event):
                return event
            self.seen.append(event)
        raise TimeoutError(f"no matching event; saw {[_short(e) for e in self.seen][-15:]}")

    def close(self) -> None:
        """Hang up, so the daemon can stop without waiting for the stream."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)


def _short(event: dict[str, Any]) -> str:
    if event["type"] == "device":
        return f"device/{event.get('event')}/{event.get('changes') or event.get('code', '')}"
    return str(event["type"])


def device_event(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """Match a device event by its name and some of its fields."""

    def match(event: dict[str, Any]) -> bool:
        if event["type"] != "device" or event.get("event") != name:
            return False
        return all(_get(event, k) == v for k, v in fields.items())

    return match


def _get(event: dict[str, Any], key: str) -> Any:
    node: Any = event
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def journal_event(kind: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        return event["type"] == kind and all(event["data"].get(k) == v for k, v in fields.items())

    return match


class Rig:
    """A lab and a daemon configured for it; ``client`` is logged in as a cashier."""

    def __init__(self, tmp: Path, *, kick_age: float = 2.0, proxy: bool = False) -> None:
        self.lab = Lab(tmp / "lab", zvt=False)
        self.where = self.lab.start()
        self.proxy = CuttingProxy(self.where.printer_port) if proxy else None
        port = self.proxy.port if self.proxy else self.where.printer_port
        self.config_path = devices_config(tmp / "state", port, self.where.scanner_link, kick_age)
        self.daemon = Daemon(self.config_path)
        self.daemon.start()
        self.client = self.daemon.client(CASHIER_PIN)
        token = self.client.headers["Authorization"].removeprefix("Bearer ")
        self.stream = Stream(self.daemon.url, token)

    @property
    def printer(self) -> Any:
        return self.lab.printer

    @property
    def scanner(self) -> Any:
        assert self.lab.scanner is not None
        return self.lab.scanner

    def close(self) -> None:
        self.stream.close()
        self.client.close()
        self.daemon.stop()
        if self.proxy is not None:
            self.proxy.close()
        self.lab.stop()


class CuttingProxy:
    """A TCP hop in front of the printer that can cut the line after N bytes of a receipt.

    ``cut_after(n)``: the next n bytes towards the printer pass, then the connection is
    reset and new ones are refused (a printer unplugged mid-receipt) until ``heal()``.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._budget: int | None = None
        self.down = False
        self._closed = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        with self._lock:
            self._budget = n

    def heal(self) -> None:
        with self._lock:
            self.down = False
            self._budget = None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                _reset(client)
                continue
            self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_printer: bool) -> None:
        while True:
            try:
                data = src.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            if to_printer:
                with self._lock:
                    if self.down:
                        break
                    if self._budget is not None:
                        data, self._budget = data[: self._budget], self._budget - len(data)
                        if self._budget <= 0:
                            self.down = True
            try:
                if data:
                    dst.sendall(data)
            except OSError:
                break
            if to_printer and self.down:
                break
        _reset(src)
        _reset(dst)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for conn in self._conns:
            _reset(conn)


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    except OSError:
        pass


def wait_until(check: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s")
        time.sleep(step)
