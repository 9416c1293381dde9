# purpose: ESC/POS over an RS-232 or USB-serial port (and the simulator's pseudo-terminal).
from __future__ import annotations

import contextlib
from typing import Any

from . import _escpos
from .base import ReceiptPrinter


class SerialPrinter(ReceiptPrinter):
    """A printer on a serial port; the line settings must match the printer's DIP switches.

    Use ``rtscts=True`` when the printer is set to hardware flow control: without it a long
    raster logo at 9600 baud can overrun the printer's buffer. XON/XOFF is off by default
    because raster and barcode data may contain the XON/XOFF bytes.
    """

    def __init__(
        self,
        devfile: str,
        *,
        baudrate: int = 9600,
        rtscts: bool = False,
        dsrdtr: bool = False,
        xonxoff: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=kwargs.pop("name", f"receipt printer {devfile}"), **kwargs)
        self.devfile = devfile
        self.rtscts = rtscts
        self._esc: Any = _escpos.make_serial(
            devfile,
            baudrate=baudrate,
            timeout=self.status_timeout_s,
            dsrdtr=dsrdtr,
            xonxoff=xonxoff,
        )

    def _port(self) -> Any:
        port = self._esc.device
        if not port:
            raise ConnectionError("serial port is not open")
        return port

    def _open(self) -> None:
        self._esc.open()
        if self.rtscts:
            self._port().rtscts = True  # python-escpos has no such argument; pyserial applies it

    def _write(self, data: bytes) -> None:
        self._port().write(data)

    def _read_some(self, timeout: float) -> bytes:
        port = self._port()
        port.timeout = timeout
        first = bytes(port.read(1))
        if not first:
            return b""
        waiting = int(port.in_waiting)
        return first + (bytes(port.read(waiting)) if waiting else b"")

    def _drain(self) -> None:
        self._port().reset_input_buffer()

    def _flush(self) -> None:
        # tcdrain: returns once the UART (or the pty's reader) has taken every byte, so the
        # status request that follows is not stuck behind a long receipt at 9600 baud.
        self._port().flush()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._esc.close()
        self._esc.device = False
