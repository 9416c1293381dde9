# purpose: ESC/POS over TCP (raw port 9100), the reference transport to copy for a new one.
from __future__ import annotations

import contextlib
import socket
from typing import Any

from . import _escpos
from .base import ReceiptPrinter


class NetworkPrinter(ReceiptPrinter):
    """A printer with an Ethernet/Wi-Fi interface speaking raw TCP (JetDirect, port 9100)."""

    def __init__(
        self,
        host: str,
        port: int = 9100,
        *,
        connect_timeout_s: float = 3.0,
        write_timeout_s: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=kwargs.pop("name", f"receipt printer {host}:{port}"), **kwargs)
        self.host = host
        self.port = port
        self.write_timeout_s = write_timeout_s
        self._esc: Any = _escpos.make_network(host, port, timeout=connect_timeout_s)

    def _sock(self) -> socket.socket:
        sock = self._esc.device
        if not isinstance(sock, socket.socket):
            raise ConnectionError("printer socket is not open")
        return sock

    def _open(self) -> None:
        self._esc.open()
        self._sock().settimeout(self.write_timeout_s)

    def _write(self, data: bytes) -> None:
        self._sock().sendall(data)

    def _read_some(self, timeout: float) -> bytes:
        sock = self._sock()
        sock.settimeout(timeout)
        try:
            data = sock.recv(64)
        except TimeoutError:
            return b""
        finally:
            sock.settimeout(self.write_timeout_s)
        if not data:
            raise ConnectionResetError("the printer closed the connection")
        return data

    def _drain(self) -> None:
        sock = self._sock()
        sock.setblocking(False)
        try:
            while True:
                try:
                    data = sock.recv(256)
                except BlockingIOError:
                    return
                if not data:
                    raise ConnectionResetError("the printer closed the connection")
        finally:
            sock.settimeout(self.write_timeout_s)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._esc.close()
        self._esc.device = False
