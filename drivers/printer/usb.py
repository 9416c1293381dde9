# purpose: ESC/POS over USB bulk endpoints with pyusb, taking the printer from the kernel's usblp.
from __future__ import annotations

import contextlib
import errno
from typing import Any

from . import _escpos
from .base import ReceiptPrinter
from .errors import PrinterTransportError

USBLP_HINT = (
    "The kernel's usblp driver may hold the printer. Tillbox detaches it when it is allowed to "
    "(libusb backend, write access to the USB device); otherwise install the udev rule from "
    "docs/printing.md, or print through /dev/usb/lp0 with FilePrinter."
)


class UsbPrinter(ReceiptPrinter):
    """A printer on USB, addressed by vendor and product id (``lsusb`` shows them).

    python-escpos finds the device and detaches the ``usblp`` kernel driver from interface 0
    before claiming it; the endpoints default to Epson's (OUT 0x01, IN 0x82).
    """

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        *,
        in_ep: int = 0x82,
        out_ep: int = 0x01,
        write_timeout_ms: int = 10_000,
        **kwargs: Any,
    ) -> None:
        name = kwargs.pop("name", f"receipt printer usb {vendor_id:04x}:{product_id:04x}")
        super().__init__(name=name, **kwargs)
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.in_ep = in_ep
        self.out_ep = out_ep
        self.write_timeout_ms = write_timeout_ms
        # Made on first open: without pyusb, python-escpos's Usb raises even from __del__.
        self._esc: Any = None

    def _dev(self) -> Any:
        dev = self._esc.device if self._esc is not None else None
        if not dev:
            raise ConnectionError("USB printer is not open")
        return dev

    def _open(self) -> None:
        if not _escpos.usb_available():
            raise PrinterTransportError(
                "USB printing needs pyusb and libusb: install python-escpos[usb] and the "
                "libusb-1.0-0 package.",
                detail="pyusb is not installed",
            )
        if self._esc is None:
            self._esc = _escpos.make_usb(
                self.vendor_id,
                self.product_id,
                in_ep=self.in_ep,
                out_ep=self.out_ep,
                timeout_ms=self.write_timeout_ms,
            )
        try:
            self._esc.open()
        except ValueError as err:  # pyusb's NoBackendError: libusb itself is missing
            raise PrinterTransportError(
                "USB printing needs libusb: install the libusb-1.0-0 package.", detail=str(err)
            ) from err

    def _write(self, data: bytes) -> None:
        self._dev()
        try:
            self._esc._raw(data)
        except OSError as err:
            if err.errno in (errno.EBUSY, errno.EACCES):
                raise PrinterTransportError(USBLP_HINT, detail=str(err)) from err
            raise

    def _read_some(self, timeout: float) -> bytes:
        try:
            return bytes(self._dev().read(self.in_ep, 64, max(1, int(timeout * 1000))))
        except OSError as err:
            if _is_timeout(err):
                return b""
            raise

    def _drain(self) -> None:
        for _ in range(8):
            if not self._read_some(0.001):
                return

    def _close(self) -> None:
        if self._esc is None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            self._esc.close()
        self._esc.device = False


def _is_timeout(err: OSError) -> bool:
    # pyusb's USBTimeoutError is an OSError with errno ETIMEDOUT (or a libusb code -7).
    return err.errno == errno.ETIMEDOUT or getattr(err, "backend_error_code", None) == -7
