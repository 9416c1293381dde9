# purpose: ESC/POS through a device file: /dev/usb/lp* (kernel usblp), a parallel port, a file.
from __future__ import annotations

import contextlib
import os
import select
from typing import IO, Any

from . import _escpos
from .base import ReceiptPrinter


class FilePrinter(ReceiptPrinter):
    """Writes to a device file, leaving the USB work to the kernel's ``usblp`` driver.

    ``bidirectional=True`` also reads status answers from the same file (``/dev/usb/lp0``
    of a bidirectional printer, a tty); write-only files report ``reported=False``.
    """

    def __init__(self, devfile: str, *, bidirectional: bool = False, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", f"receipt printer {devfile}"), **kwargs)
        self.devfile = devfile
        self.supports_status = bidirectional
        self._esc: Any = _escpos.make_file(devfile)
        self._fd: int | None = None

    def _open(self) -> None:
        if not self.supports_status:
            self._esc.open()
            return
        # usblp allows one open at a time, so reading and writing share one descriptor.
        fd = os.open(self.devfile, os.O_RDWR | os.O_NOCTTY)
        handle: IO[bytes] = os.fdopen(fd, "r+b", buffering=0)
        self._fd = fd
        self._esc.device = handle

    def _write(self, data: bytes) -> None:
        if not self._esc.device:
            raise ConnectionError("printer file is not open")
        self._esc._raw(data)

    def _read_some(self, timeout: float) -> bytes:
        if self._fd is None:
            raise ConnectionError("printer file is not open")
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return b""
        data = os.read(self._fd, 64)
        if not data:
            raise ConnectionResetError("the printer device went away")
        return data

    def _drain(self) -> None:
        while self._fd is not None and self._read_some(0):
            pass

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self._esc.close()
        self._esc.device = False
        self._fd = None
