# SerialScanner: a scanner in serial mode (USB CDC /dev/ttyACM*, or RS-232) read with pyserial.
from __future__ import annotations

import contextlib
from typing import Any

import serial  # type: ignore[import-untyped, unused-ignore]

from .base import DropCallback, ErrorCallback, ReconnectingScanner, ScanCallback, StateCallback
from .errors import ScannerConfigError, translate_os_error
from .framing import FramingConfig

BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
BYTESIZES = (7, 8)
PARITIES = ("N", "E", "O")
STOPBITS = (1, 2)


class SerialScanner(ReconnectingScanner):
    """Reads scans from a serial port and re-opens the same path after an unplug.

    Configure a stable path (a udev symlink such as /dev/tillbox/scanner); it is also the
    device id unless one is given. Bytes that arrived while no one was listening are
    discarded on open, so a scan made while the till was down never rings up later.
    """

    def __init__(
        self,
        port: str,
        *,
        on_scan: ScanCallback,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
        framing: FramingConfig | None = None,
        device_id: str | None = None,
        retry_interval: float = 1.0,
        read_timeout: float = 0.1,
        on_drop: DropCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_state: StateCallback | None = None,
    ) -> None:
        _check_choice("baudrate", baudrate, BAUDRATES)
        _check_choice("bytesize", bytesize, BYTESIZES)
        _check_choice("parity", parity, PARITIES)
        _check_choice("stopbits", stopbits, STOPBITS)
        if not port:
            raise ScannerConfigError("scanner port must name a device path")
        super().__init__(
            device_id or f"serial:{port}",
            on_scan=on_scan,
            framing=framing,
            retry_interval=retry_interval,
            read_timeout=read_timeout,
            on_drop=on_drop,
            on_error=on_error,
            on_state=on_state,
        )
        self.port = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self._serial: Any = None

    def _open(self) -> None:
        try:
            port = serial.Serial(
                self.port,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=self.read_timeout,
                exclusive=True,
            )
        except OSError as err:
            raise translate_os_error(err, self.port, "open") from err
        try:
            port.reset_input_buffer()
        except OSError as err:
            port.close()
            raise translate_os_error(err, self.port, "open") from err
        self._serial = port

    def _read(self) -> bytes:
        port = self._serial
        try:
            data: bytes = port.read(max(1, port.in_waiting))
        except OSError as err:
            # pyserial's SerialException is an OSError; a vanished device lands here.
            raise translate_os_error(err, self.port, "read") from err
        return data

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        with contextlib.suppress(OSError):
            port.close()


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        listed = ", ".join(str(choice) for choice in choices)
        raise ScannerConfigError(f"scanner {name} {value!r} is not one of {listed}")
