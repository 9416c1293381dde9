# purpose: the one typed seam over python-escpos, which ships no type information.
"""Everything this package takes from python-escpos passes through here.

python-escpos builds the bytes (``Dummy``) and moves them (``Usb``, ``Serial``, ``Network``,
``File``); the rest of ``drivers.printer`` only sees the typed functions below and ``Any``
handles to the transport objects.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

from escpos import printer as _printer  # type: ignore[import-untyped]
from escpos.exceptions import (  # type: ignore[import-untyped]
    DeviceNotFoundError as _DeviceNotFoundError,
)
from escpos.exceptions import Error as _EscposError
from escpos.image import EscposImage  # type: ignore[import-untyped]
from PIL import Image

DeviceNotFoundError: type[Exception] = _DeviceNotFoundError
EscposError: type[Exception] = _EscposError

Align = Literal["left", "center", "right"]


class Builder:
    """Builds ESC/POS bytes with python-escpos's ``Dummy`` in one fixed code page."""

    def __init__(self, *, code_page: str, profile: str | None = None) -> None:
        self._dummy: Any = _printer.Dummy(profile=profile)
        self._dummy.hw("INIT")
        # Forcing the code page stops python-escpos from hopping between tables per character
        # (it would pick ISO 8859-7 for the euro sign); one table per receipt prints everywhere.
        self._dummy.charcode(code_page)
        self._style: tuple[str, bool, bool, bool] | None = None

    def style(
        self,
        *,
        align: Align = "left",
        bold: bool = False,
        double_width: bool = False,
        double_height: bool = False,
    ) -> None:
        """Set alignment, emphasis and size for the text that follows (only if it changes)."""
        style = (align, bold, double_width, double_height)
        if style == self._style:
            return
        self._style = style
        self._dummy.set(
            align=align,
            bold=bold,
            normal_textsize=not (double_width or double_height),
            double_width=double_width,
            double_height=double_height,
        )

    def line(self, text: str = "") -> None:
        """Print one line of text in the current style."""
        self._dummy.textln(text)

    def feed(self, lines: int = 1) -> None:
        """Print what is buffered and feed ``lines`` lines."""
        self._dummy.print_and_feed(lines)

    def image(self, img: Image.Image) -> None:
        """Print a raster image (``GS v 0``, in slices of 960 rows); it must fit the paper.

        Built here rather than with ``Dummy.image``, which prints to stdout when the profile
        does not know the paper width.
        """
        for top in range(0, img.height, 960):
            part: Any = EscposImage(img.crop((0, top, img.width, min(img.height, top + 960))))
            header = b"\x1dv0\x00" + struct.pack("<HH", part.width_bytes, part.height)
            self._dummy._raw(header + bytes(part.to_raster_format()))

    def code128(self, payload: str) -> None:
        """Print a centered CODE128 (code set B) barcode with its text below."""
        escaped = payload.replace("{", "{{")
        # _hw_barcode is barcode() without its print() to stdout; the bytes are the same.
        self._style = None
        self._dummy._hw_barcode(
            "{B" + escaped, "CODE128", height=64, width=2, pos="BELOW", function_type="B"
        )

    def qr(self, payload: str, size: int = 5) -> None:
        """Print a QR code rendered by the printer (``GS ( k``)."""
        self._style = None
        self._dummy.set(align="center")
        self._dummy.qr(payload, size=size, native=True)
        self._dummy.textln()

    def cut(self, *, partial: bool = True) -> None:
        """Feed past the cutter and cut."""
        self._dummy.cut(mode="PART" if partial else "FULL")

    def output(self) -> bytes:
        """All bytes built so far."""
        return bytes(self._dummy.output)


def kick_bytes(pin: Literal[2, 5], on_ms: int, off_ms: int) -> bytes:
    """``ESC p m t1 t2``: pulse drawer kick connector pin 2 or 5 (times in 2 ms units)."""
    dummy: Any = _printer.Dummy()
    t1 = max(1, min(255, on_ms // 2))
    t2 = max(1, min(255, off_ms // 2))
    dummy.cashdraw([27, 112, 0 if pin == 2 else 1, t1, t2])
    return bytes(dummy.output)


def make_usb(vendor_id: int, product_id: int, *, in_ep: int, out_ep: int, timeout_ms: int) -> Any:
    """A python-escpos ``Usb`` printer (not opened yet)."""
    return _printer.Usb(vendor_id, product_id, timeout=timeout_ms, in_ep=in_ep, out_ep=out_ep)


def make_serial(devfile: str, *, baudrate: int, timeout: float, dsrdtr: bool, xonxoff: bool) -> Any:
    """A python-escpos ``Serial`` printer (not opened yet)."""
    return _printer.Serial(
        devfile=devfile, baudrate=baudrate, timeout=timeout, dsrdtr=dsrdtr, xonxoff=xonxoff
    )


def make_network(host: str, port: int, *, timeout: float) -> Any:
    """A python-escpos ``Network`` printer (not opened yet)."""
    return _printer.Network(host=host, port=port, timeout=timeout)


def make_file(devfile: str) -> Any:
    """A python-escpos ``File`` printer (not opened yet); write-only."""
    return _printer.File(devfile=devfile, auto_flush=True)


def usb_available() -> bool:
    """Whether pyusb is installed so the USB transport can work at all."""
    return bool(_printer.Usb.is_usable())
