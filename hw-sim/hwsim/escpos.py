# purpose: a simulated ESC/POS receipt printer with its cash drawer, on a pseudo-terminal and TCP.
"""An ESC/POS printer as seen from the device side of the wire.

It reads the byte stream a POS sends (on a pty like a serial printer, or on TCP like a
network printer on port 9100), prints it into readable receipts (text in the selected code
page, barcodes, QR payloads, raster images, cuts), answers ``DLE EOT n`` status requests,
and drives a cash drawer on the kick connector. Tests inject faults (paper near end, paper
out, cover open, errors, powered off) and a jammed drawer, and clear them again.

Written from the Epson ESC/POS command reference; it imports nothing from ``drivers`` or
``terminal`` so a misunderstanding there cannot hide here.

Run ``python -m hwsim.escpos --tcp 9100`` or ``--pty`` to use it by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import selectors
import signal
import socket
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image

Align = Literal["left", "center", "right"]
_ALIGNS: tuple[Align, Align, Align] = ("left", "center", "right")
_Style = tuple[bool, bool, Align, int, int, int]

ESC, GS, DLE, FS = 0x1B, 0x1D, 0x10, 0x1C
LF, CR, HT, FF = 0x0A, 0x0D, 0x09, 0x0C
EOT, ENQ, DC4, NUL = 0x04, 0x05, 0x14, 0x00

# ESC t n → Python codec (Epson's character code tables; the ones a POS in Europe meets).
CODE_PAGES: dict[int, str] = {
    0: "cp437",
    2: "cp850",
    3: "cp860",
    4: "cp863",
    5: "cp865",
    13: "cp857",
    14: "cp737",
    15: "iso8859_7",
    16: "cp1252",
    17: "cp866",
    18: "cp852",
    19: "cp858",
    33: "cp775",
    34: "cp855",
    35: "cp861",
    36: "cp862",
    37: "cp864",
    38: "cp869",
    39: "iso8859_2",
    40: "iso8859_15",
    44: "cp1125",
    45: "cp1250",
    46: "cp1251",
    47: "cp1253",
    48: "cp1254",
    49: "cp1255",
    50: "cp1256",
    51: "cp1257",
    52: "cp1258",
}


def _table(codec: str) -> str:
    chars = []
    for b in range(256):
        try:
            chars.append(bytes((b,)).decode(codec))
        except UnicodeDecodeError:
            chars.append("\ufffd")
    return "".join(chars)


_TABLES: dict[int, str] = {}


def _decode_table(page: int) -> str:
    table = _TABLES.get(page)
    if table is None:
        table = _TABLES[page] = _table(CODE_PAGES.get(page, "cp437"))
    return table


# ------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class TextLine:
    """One printed line of text and the style of its first character."""

    text: str
    bold: bool = False
    underline: bool = False
    align: Align = "left"
    width: int = 1
    height: int = 1
    code_page: int = 0


@dataclass(frozen=True, slots=True)
class BarcodePrinted:
    """A 1D barcode (``GS k``) or a PDF417 symbol, with its decoded payload."""

    symbology: str
    data: str


@dataclass(frozen=True, slots=True)
class QrPrinted:
    """A QR code printed from ``GS ( k`` with the payload it stored."""

    data: str


@dataclass(frozen=True, slots=True)
class RasterImage:
    """A bit image: ``width_bytes`` × 8 dots wide, rows top to bottom, 1 bits are black."""

    width_bytes: int
    height: int
    data: bytes

    @property
    def width(self) -> int:
        """Width in dots."""
        return self.width_bytes * 8

    def to_image(self) -> Image.Image:
        """The image as a Pillow 1-bit image."""
        from PIL import Image

        return Image.frombytes("1", (self.width, self.height), self.data, "raw", "1;I")

    def save_png(self, path: str | os.PathLike[str]) -> Path:
        """Write the image as PNG and return its path."""
        out = Path(path)
        self.to_image().save(out, format="PNG")
        return out


@dataclass(frozen=True, slots=True)
class ImagePrinted:
    """A raster image (``GS v 0`` or ``GS ( L``) was printed."""

    image: RasterImage


@dataclass(frozen=True, slots=True)
class Cut:
    """The paper was cut (``GS V``, ``ESC i``, ``ESC m``)."""

    partial: bool


@dataclass(frozen=True, slots=True)
class Kick:
    """A drawer kick pulse (``ESC p`` or ``DLE DC4 1``) on connector pin 2 or 5."""

    pin: int
    on_ms: int
    off_ms: int


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """``DLE EOT n``: the host wants one status byte back."""

    n: int


@dataclass(frozen=True, slots=True)
class Initialized:
    """``ESC @``: modes back to power-on defaults."""


Event = (
    TextLine | BarcodePrinted | QrPrinted | ImagePrinted | Cut | Kick | StatusRequest | Initialized
)


class _Incomplete(Exception):
    """The buffer ends inside a command; wait for more bytes."""


# Parameter byte counts of the fixed-length commands (after the two command bytes).
_ESC_PARAMS: dict[int, int] = {
    **{ord(c): 0 for c in "@2<iLmSv"},
    **{ord(c): 1 for c in "!-EGJMRTUVade{rt3 =?%KFu"},
    **{ord(c): 2 for c in "$\\fBc"},
    ord("p"): 3,
    ord("W"): 8,
}
_GS_PARAMS: dict[int, int] = {
    **{ord(c): 0 for c in ":c"},
    **{ord(c): 1 for c in "!BbHhwfarI|TEjZ/"},
    **{ord(c): 2 for c in "LWP$\\"},
    ord("^"): 3,
}
_BARCODE_A = {0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR"}
_BARCODE_B = {
    65: "UPC-A",
    66: "UPC-E",
    67: "EAN13",
    68: "EAN8",
    69: "CODE39",
    70: "ITF",
    71: "CODABAR",
    72: "CODE93",
    73: "CODE128",
    74: "GS1-128",
    75: "GS1 DATABAR OMNIDIRECTIONAL",
    76: "GS1 DATABAR TRUNCATED",
    77: "GS1 DATABAR LIMITED",
    78: "GS1 DATABAR EXPANDED",
}
_MAX_IMAGE_BYTES = 4 * 1024 * 1024
_LINGER_RST = (1).to_bytes(4, sys.byteorder) + (0).to_bytes(4, sys.byteorder)


def decode_code128(data: bytes) -> str:
    """Human-readable payload of ``GS k 73`` data (``{A``/``{B``/``{C`` code set switches)."""
    out: list[str] = []
    code_set = "B"
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x7B and i + 1 < len(data):
            nxt = data[i + 1]
            if nxt in b"ABC":
                code_set = chr(nxt)
                i += 2
                continue
            if nxt == 0x7B:
                out.append("{")
                i += 2
                continue
            if nxt in b"S1234":
                i += 2
                continue
        if code_set == "C":
            out.append(f"{c:02d}" if c < 100 else "")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        i += 1
    return "".join(out)


class EscPosParser:
    """Incremental ESC/POS parser: ``feed`` bytes in any chunks, get printer events out.

    Pure: it keeps the print modes and the half-filled line, does no I/O, and skips what it
    does not know without ever raising.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._events: list[Event] = []
        self._line: list[str] = []
        self._line_style: _Style | None = None
        self._qr_data = b""
        self._pdf417_data = b""
        self._graphics: RasterImage | None = None
        self.reset_modes()

    def reset_modes(self) -> None:
        """Power-on print modes (what ``ESC @`` does)."""
        self.bold = False
        self.underline = False
        self.align: Align = "left"
        self.width = 1
        self.height = 1
        self.code_page = 0

    @property
    def pending_text(self) -> str:
        """Characters received since the last line feed."""
        return "".join(self._line)

    def feed(self, data: bytes) -> list[Event]:
        """Parse as much as possible; an incomplete trailing command waits for more bytes."""
        self._buf += data
        pos = 0
        buf = self._buf
        while pos < len(buf):
            try:
                pos = self._one(buf, pos)
            except _Incomplete:
                break
        del buf[:pos]
        events, self._events = self._events, []
        return events

    def flush_line(self) -> None:
        """End the current line as if a line feed came (used before cuts and barcodes)."""
        if self._line:
            self._emit_line()

    # ------------------------------------------------------------------ internals

    def _emit_line(self) -> None:
        style = self._line_style or self._style()
        bold, underline, align, width, height, page = style
        self._events.append(
            TextLine("".join(self._line), bold, underline, align, width, height, page)
        )
        self._line = []
        self._line_style = None

    def _style(self) -> _Style:
        return (self.bold, self.underline, self.align, self.width, self.height, self.code_page)

    def _char(self, byte: int) -> None:
        if self._line_style is None:
            self._line_style = self._style()
        self._line.append(_decode_table(self.code_page)[byte])

    @staticmethod
    def _need(buf: bytearray, end: int) -> None:
        if end > len(buf):
            raise _Incomplete

    def _one(self, buf: bytearray, pos: int) -> int:
        b = buf[pos]
        if b >= 0x20:
            if b != 0x7F:
                self._char(b)
            return pos + 1
        if b == LF:
            self._emit_line()
            return pos + 1
        if b == HT:
            for _ in range(8 - len(self._line) % 8):
                self._char(0x20)
            return pos + 1
        if b == FF:
            self.flush_line()
            return pos + 1
        if b == ESC:
            return self._esc(buf, pos)
        if b == GS:
            return self._gs(buf, pos)
        if b == DLE:
            return self._dle(buf, pos)
        if b == FS:
            return self._fs(buf, pos)
        return pos + 1  # CR, NUL and other controls print nothing

    def _esc(self, buf: bytearray, pos: int) -> int:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == ord("*"):  # column bit image: m nL nH data
            self._need(buf, pos + 5)
            m, n = buf[pos + 2], buf[pos + 3] | buf[pos + 4] << 8
            end = pos + 5 + n * (3 if m in (32, 33) else 1)
            self._need(buf, end)
            return end
        if cmd == ord("D"):  # tab stops, NUL-terminated (at most 32)
            for i in range(pos + 2, pos + 2 + 33):
                self._need(buf, i + 1)
                if buf[i] == NUL:
                    return i + 1
            return pos + 2 + 33
        if cmd == ord("&"):  # user-defined characters: y c1 c2 then x + y*x bytes each
            self._need(buf, pos + 5)
            y, c1, c2 = buf[pos + 2], buf[pos + 3], buf[pos + 4]
            i = pos + 5
            for _ in range(max(0, min(c2 - c1 + 1, 95))):
                self._need(buf, i + 1)
                i += 1 + y * buf[i]
            self._need(buf, i)
            return i
        count = _ESC_PARAMS.get(cmd)
        if count is None:
            return pos + 2  # unknown: skip the pair, hope to resync
        end = pos + 2 + count
        self._need(buf, end)
        p = buf[pos + 2 : end]
        if cmd == ord("@"):
            self.flush_line()
            self.reset_modes()
            self._events.append(Initialized())
        elif cmd == ord("!"):
            n = p[0]
            self.bold = bool(n & 0x08)
            self.height = 2 if n & 0x10 else 1
            self.width = 2 if n & 0x20 else 1
            self.underline = bool(n & 0x80)
        elif cmd == ord("E"):
            self.bold = bool(p[0] & 1)
        elif cmd == ord("-"):
            self.underline = p[0] not in (0, 48)
        elif cmd == ord("a"):
            self.align = _ALIGNS[p[0] % 48] if p[0] % 48 < 3 else "left"
        elif cmd == ord("t"):
            self.code_page = p[0]
        elif cmd == ord("d"):
            feeds = p[0]
            if self._line:
                self._emit_line()
                feeds -= 1
            for _ in range(max(0, min(feeds, 255))):
                self._emit_line()
        elif cmd == ord("J"):
            self.flush_line()
        elif cmd == ord("p"):
            pin = 2 if p[0] in (0, 48) else 5
            self._events.append(Kick(pin, p[1] * 2, p[2] * 2))
        elif cmd in (ord("i"), ord("m")):
            self.flush_line()
            self._events.append(Cut(partial=cmd == ord("m")))
        return end

    def _gs(self, buf: bytearray, pos: int) -> int:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == ord("V"):
            return self._cut(buf, pos)
        if cmd == ord("k"):
            return self._barcode(buf, pos)
        if cmd == ord("("):
            self._need(buf, pos + 5)
            end = pos + 5 + (buf[pos + 3] | buf[pos + 4] << 8)
            self._need(buf, end)
            self._gs_paren(buf[pos + 2], bytes(buf[pos + 5 : end]))
            return end
        if cmd == ord("8"):  # GS 8 L: like GS ( L with a four-byte length
            self._need(buf, pos + 7)
            size = int.from_bytes(buf[pos + 3 : pos + 7], "little")
            if size > _MAX_IMAGE_BYTES:
                return pos + 7
            end = pos + 7 + size
            self._need(buf, end)
            if buf[pos + 2] == ord("L"):
                self._gs_paren(ord("L"), bytes(buf[pos + 7 : end]))
            return end
        if cmd == ord("v"):
            self._need(buf, pos + 8)
            if buf[pos + 2] != ord("0"):
                return pos + 3
            wb = buf[pos + 4] | buf[pos + 5] << 8
            h = buf[pos + 6] | buf[pos + 7] << 8
            size = wb * h
            if size == 0 or size > _MAX_IMAGE_BYTES:
                return pos + 8
            end = pos + 8 + size
            self._need(buf, end)
            self.flush_line()
            self._events.append(ImagePrinted(RasterImage(wb, h, bytes(buf[pos + 8 : end]))))
            return end
        if cmd == ord("*"):  # define downloaded bit image: x y then x*y*8 bytes
            self._need(buf, pos + 4)
            end = pos + 4 + buf[pos + 2] * buf[pos + 3] * 8
            self._need(buf, end)
            return end
        if cmd == ord("g"):  # maintenance counters: GS g 0 m nL nH / GS g 2 m nL nH
            self._need(buf, pos + 3)
            return pos + 6 if buf[pos + 2] in (0x30, 0x32) else pos + 3
        count = _GS_PARAMS.get(cmd)
        if count is None:
            return pos + 2
        end = pos + 2 + count
        self._need(buf, end)
        if cmd == ord("!"):
            n = buf[pos + 2]
            self.width = ((n >> 4) & 0x07) + 1
            self.height = (n & 0x07) + 1
        return end

    def _cut(self, buf: bytearray, pos: int) -> int:
        self._need(buf, pos + 3)
        m = buf[pos + 2]
        end = pos + 3 + (1 if m in (65, 66, 97, 98, 103, 104) else 0)
        self._need(buf, end)
        self.flush_line()
        self._events.append(Cut(partial=m in (1, 49, 66, 98, 104)))
        return end

    def _barcode(self, buf: bytearray, pos: int) -> int:
        self._need(buf, pos + 3)
        m = buf[pos + 2]
        if m <= 6:
            i = pos + 3
            while True:
                self._need(buf, i + 1)
                if buf[i] == NUL:
                    break
                if i - pos > 258:
                    return i
                i += 1
            data = bytes(buf[pos + 3 : i])
            end = i + 1
            name = _BARCODE_A.get(m, f"type {m}")
        else:
            self._need(buf, pos + 4)
            end = pos + 4 + buf[pos + 3]
            self._need(buf, end)
            data = bytes(buf[pos + 4 : end])
            name = _BARCODE_B.get(m, f"type {m}")
        self.flush_line()
        if name in ("CODE128", "GS1-128"):
            text = decode_code128(data)
        else:
            text = data.decode("ascii", errors="replace")
        self._events.append(BarcodePrinted(name, text))
        return end

    def _gs_paren(self, fn_letter: int, body: bytes) -> None:
        if fn_letter == ord("k") and len(body) >= 2:
            cn, fn = body[0], body[1]
            if cn == 49 and fn == 80:  # QR: store data (cn fn m data)
                self._qr_data = body[3:]
            elif cn == 49 and fn == 81:  # QR: print stored data
                self.flush_line()
                self._events.append(QrPrinted(self._qr_data.decode("utf-8", errors="replace")))
            elif cn == 48 and fn == 80:
                self._pdf417_data = body[3:]
            elif cn == 48 and fn == 81:
                self.flush_line()
                payload = self._pdf417_data.decode("utf-8", errors="replace")
                self._events.append(BarcodePrinted("PDF417", payload))
        elif fn_letter == ord("L") and len(body) >= 2:
            fn = body[1]
            if fn == 112 and len(body) >= 10:  # store raster graphics: m fn a bx by c xL xH yL yH
                w = body[6] | body[7] << 8
                h = body[8] | body[9] << 8
                wb = (w + 7) // 8
                data = body[10 : 10 + wb * h]
                if wb and h and len(data) == wb * h:
                    self._graphics = RasterImage(wb, h, data)
            elif fn in (50, 2) and self._graphics is not None:  # print stored graphics
                self.flush_line()
                self._events.append(ImagePrinted(self._graphics))
                self._graphics = None

    def _dle(self, buf: bytearray, pos: int) -> int:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd == EOT:
            self._need(buf, pos + 3)
            n = buf[pos + 2]
            if n in (7, 8):
                self._need(buf, pos + 4)
                return pos + 4
            if 1 <= n <= 4:
                self._events.append(StatusRequest(n))
            return pos + 3
        if cmd == ENQ:
            self._need(buf, pos + 3)
            return pos + 3
        if cmd == DC4:
            self._need(buf, pos + 3)
            fn = buf[pos + 2]
            length = {1: 5, 2: 5, 3: 5, 7: 4, 8: 10}.get(fn, 3)
            self._need(buf, pos + length)
            if fn == 1:
                m, t = buf[pos + 3], buf[pos + 4]
                self._events.append(Kick(2 if m == 0 else 5, t * 100, t * 100))
            return pos + length
        return pos + 1

    def _fs(self, buf: bytearray, pos: int) -> int:
        self._need(buf, pos + 2)
        cmd = buf[pos + 1]
        if cmd in (ord("&"), ord(".")):
            return pos + 2
        if cmd in (ord("!"), ord("-"), ord("C"), ord("W")):
            self._need(buf, pos + 3)
            return pos + 3
        if cmd in (ord("p"), ord("S")):
            self._need(buf, pos + 4)
            return pos + 4
        return pos + 2


# ---------------------------------------------------------------------------- receipts


@dataclass
class PrintedReceipt:
    """Everything printed between two cuts."""

    lines: list[TextLine] = field(default_factory=list)
    barcodes: list[BarcodePrinted] = field(default_factory=list)
    qr_codes: list[str] = field(default_factory=list)
    images: list[RasterImage] = field(default_factory=list)
    cut: Literal["full", "partial"] | None = None
    code_pages: set[int] = field(default_factory=set)

    @property
    def text(self) -> str:
        """The printed text, one line per line, trailing blank lines kept."""
        return "\n".join(line.text for line in self.lines)

    def save_images(self, directory: str | os.PathLike[str], stem: str = "image") -> list[Path]:
        """Write each raster image as ``{stem}-{n}.png`` and return the paths."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        return [img.save_png(folder / f"{stem}-{i}.png") for i, img in enumerate(self.images)]

    def add(self, event: Event) -> None:
        """Put one printing event on the paper."""
        if isinstance(event, TextLine):
            self.lines.append(event)
            if event.text:
                self.code_pages.add(event.code_page)
        elif isinstance(event, BarcodePrinted):
            self.barcodes.append(event)
        elif isinstance(event, QrPrinted):
            self.qr_codes.append(event.data)
        elif isinstance(event, ImagePrinted):
            self.images.append(event.image)

    @property
    def empty(self) -> bool:
        """Nothing visible was printed."""
        return not (
            any(line.text.strip() for line in self.lines)
            or self.barcodes
            or self.qr_codes
            or self.images
        )


# ------------------------------------------------------------------------------ drawer


class SimDrawer:
    """A cash drawer on the printer's kick connector, with its open sensor on pin 3."""

    def __init__(
        self,
        *,
        pin: int = 2,
        auto_close_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pin = pin
        self.auto_close_s = auto_close_s
        self.jammed = False
        self.kicks: deque[Kick] = deque(maxlen=10_000)
        self._clock = clock
        self._open = False
        self._opened_at = 0.0

    @property
    def is_open(self) -> bool:
        """Whether the drawer is out (closing itself after ``auto_close_s`` if set)."""
        if (
            self._open
            and self.auto_close_s is not None
            and self._clock() - self._opened_at >= self.auto_close_s
        ):
            self._open = False
        return self._open

    def pulse(self, kick: Kick) -> None:
        """A kick pulse arrived; the solenoid on our pin releases the drawer unless jammed."""
        self.kicks.append(kick)
        if kick.pin == self.pin and not self.jammed:
            self._open = True
            self._opened_at = self._clock()

    def close(self) -> None:
        """The cashier pushes the drawer shut."""
        self._open = False


# ------------------------------------------------------------------------------ device


class _Channel:
    """One byte stream into the printer (the pty, or one TCP connection)."""

    def __init__(
        self, name: str, send: Callable[[bytes], None], sock: socket.socket | None = None
    ) -> None:
        self.name = name
        self.send = send
        self.sock = sock
        self.parser = EscPosParser()
        self.page = PrintedReceipt()
        self.held = bytearray()
        self.scan_pos = 0


Fault = Literal[
    "paper_near_end",
    "paper_out",
    "cover_open",
    "offline",
    "error",
    "cutter_error",
    "unrecoverable_error",
    "auto_recoverable_error",
]
FAULTS: tuple[Fault, ...] = (
    "paper_near_end",
    "paper_out",
    "cover_open",
    "offline",
    "error",
    "cutter_error",
    "unrecoverable_error",
    "auto_recoverable_error",
)
_STOPPING_FAULTS = frozenset(FAULTS) - {"paper_near_end", "offline"}


class EscPosPrinterSim:
    """A receipt printer with a drawer, reachable on a pty and/or TCP, driven by a test.

    Faults: ``paper_out``, ``cover_open`` and the errors stop printing (data is held and
    printed after recovery, as a real printer does, while ``DLE EOT`` keeps being
    answered); ``offline`` is a powered-off printer: the pty swallows bytes, the TCP port
    refuses connections.
    """

    def __init__(
        self,
        *,
        drawer_pin: int = 2,
        drawer_open_high: bool = True,
        drawer_auto_close_s: float | None = None,
        image_dir: str | os.PathLike[str] | None = None,
        on_receipt: Callable[[PrintedReceipt], None] | None = None,
        keep_receipts: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_receipts = keep_receipts
        self.drawer = SimDrawer(pin=drawer_pin, auto_close_s=drawer_auto_close_s, clock=clock)
        self.drawer_open_high = drawer_open_high
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.on_receipt = on_receipt
        self.status_requests: deque[int] = deque(maxlen=10_000)
        self.received_bytes = 0
        self.printed_count = 0
        self._faults: set[str] = set()
        self._receipts: list[PrintedReceipt] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._channels: dict[int, _Channel] = {}
        self._pty_channel: _Channel | None = None
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._calls: queue.Queue[tuple[Callable[[], object], threading.Event]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._listener: socket.socket | None = None
        self._tcp_addr: tuple[str, int] | None = None
        self._pty_master: int | None = None
        self._pty_slave: int | None = None
        self.pty_path: str | None = None

    # ----------------------------------------------------------------- transports

    def start_tcp(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the real port."""
        sock = self._bind(host, port)
        self._tcp_addr = (host, sock.getsockname()[1])
        self._run_in_loop(lambda: self._add_listener(sock))
        return self._tcp_addr[1]

    @property
    def tcp_port(self) -> int | None:
        """The TCP port, once ``start_tcp`` ran."""
        return self._tcp_addr[1] if self._tcp_addr else None

    def start_pty(self) -> str:
        """Open a pseudo-terminal and return the slave path a serial driver opens."""
        master, slave = os.openpty()
        # Raw both ways: no echo, no CR/LF mangling, no signals from 0x03 in raster data.
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._pty_master, self._pty_slave = master, slave
        self.pty_path = os.ttyname(slave)

        def send(data: bytes) -> None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(master, data)

        channel = _Channel("pty", send)
        self._pty_channel = channel
        self._run_in_loop(lambda: self._sel.register(master, selectors.EVENT_READ, channel))
        return self.pty_path

    def stop(self) -> None:
        """Close every port and stop the background thread."""
        if self._thread is not None and self._thread.is_alive():
            self._stopping = True
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
        self._close_tcp()
        for fd in (self._pty_master, self._pty_slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._pty_master = self._pty_slave = None
        with contextlib.suppress(OSError):
            os.close(self._wake_r)
        with contextlib.suppress(OSError):
            os.close(self._wake_w)
        self._sel.close()

    def __enter__(self) -> EscPosPrinterSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------- control

    def set_fault(self, fault: Fault, on: bool = True) -> None:
        """Inject (``on=True``) or clear one fault."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        with self._lock:
            was_stopped = self._stopped()
            if on:
                self._faults.add(fault)
            else:
                self._faults.discard(fault)
            if was_stopped and not self._stopped():
                self._resume()
        if fault == "offline" and self._tcp_addr is not None:
            self._run_in_loop(self._sync_listener)

    def clear_faults(self) -> None:
        """Back to a healthy printer (the drawer's state is left alone)."""
        for fault in FAULTS:
            self.set_fault(fault, False)

    def set_paper_near_end(self, on: bool = True) -> None:
        """The roll's near-end sensor trips (printing goes on)."""
        self.set_fault("paper_near_end", on)

    def set_paper_out(self, on: bool = True) -> None:
        """The roll is empty: printing stops until cleared."""
        self.set_fault("paper_out", on)

    def set_cover_open(self, on: bool = True) -> None:
        """The cover is open: printing stops until cleared."""
        self.set_fault("cover_open", on)

    def set_offline(self, on: bool = True) -> None:
        """Power the printer off (no answers, TCP refused) or back on."""
        self.set_fault("offline", on)

    @property
    def faults(self) -> frozenset[str]:
        """The faults in force."""
        with self._lock:
            return frozenset(self._faults)

    def close_drawer(self) -> None:
        """Push the drawer shut."""
        with self._lock:
            self.drawer.close()

    def set_drawer_jammed(self, on: bool = True) -> None:
        """A jammed drawer ignores kicks."""
        with self._lock:
            self.drawer.jammed = on

    @property
    def drawer_open(self) -> bool:
        """Whether the drawer is out."""
        with self._lock:
            return self.drawer.is_open

    @property
    def drawer_kicks(self) -> list[Kick]:
        """Every kick pulse the printer fired, on any pin."""
        with self._lock:
            return list(self.drawer.kicks)

    @property
    def receipts(self) -> list[PrintedReceipt]:
        """Receipts finished by a cut, oldest first."""
        with self._lock:
            return list(self._receipts)

    def pending(self) -> list[PrintedReceipt]:
        """What each input has printed since its last cut (not yet a receipt)."""
        with self._lock:
            channels = list(self._channels.values())
            if self._pty_channel is not None:
                channels.append(self._pty_channel)
            return [ch.page for ch in channels if not ch.page.empty]

    def clear_receipts(self) -> None:
        """Forget the printed receipts (``wait_for_receipts`` counts from zero again)."""
        with self._lock:
            self._receipts.clear()
            self.printed_count = 0

    def wait_for_receipts(self, count: int, timeout: float = 5.0) -> list[PrintedReceipt]:
        """Block until at least ``count`` receipts are printed; raise ``TimeoutError`` if not."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.printed_count < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.printed_count} of {count} receipts printed")
                self._changed.wait(left)
            return list(self._receipts)

    def status_byte(self, n: int) -> int:
        """The byte this printer answers to ``DLE EOT n`` right now."""
        with self._lock:
            f = self._faults
            stopped = self._stopped()
            if n == 1:
                pin3_high = self.drawer.is_open == self.drawer_open_high
                return 0x12 | (0x04 if pin3_high else 0) | (0x08 if stopped else 0)
            if n == 2:
                any_error = bool(f & {"error", "cutter_error", "unrecoverable_error"}) or bool(
                    "auto_recoverable_error" in f
                )
                return (
                    0x12
                    | (0x04 if "cover_open" in f else 0)
                    | (0x20 if "paper_out" in f else 0)
                    | (0x40 if any_error else 0)
                )
            if n == 3:
                return (
                    0x12
                    | (0x04 if "error" in f else 0)
                    | (0x08 if "cutter_error" in f else 0)
                    | (0x20 if "unrecoverable_error" in f else 0)
                    | (0x40 if "auto_recoverable_error" in f else 0)
                )
            near_end = "paper_near_end" in f or "paper_out" in f
            return 0x12 | (0x0C if near_end else 0) | (0x60 if "paper_out" in f else 0)

    def feed(self, data: bytes) -> bytes:
        """Process bytes as if they came in on a wire of their own; return the answers."""
        answers = bytearray()
        with self._lock:
            channel = self._channels.get(-1)
            if channel is None:
                channel = self._channels[-1] = _Channel("feed", answers.extend)
            channel.send = answers.extend
            self._on_data(channel, data)
        return bytes(answers)

    # ------------------------------------------------------------------ internals

    def _stopped(self) -> bool:
        return bool(self._faults & _STOPPING_FAULTS)

    def _on_data(self, ch: _Channel, data: bytes) -> None:
        with self._lock:
            self.received_bytes += len(data)
            if "offline" in self._faults:
                return
            if self._stopped():
                ch.held += data
                self._answer_realtime(ch)
                return
            self._process(ch, data)

    def _answer_realtime(self, ch: _Channel) -> None:
        """While stopped, answer DLE EOT found in the held bytes and take it out of them."""
        held = ch.held
        i = held.find(b"\x10\x04", ch.scan_pos)
        while i != -1:
            if i + 2 >= len(held):
                ch.scan_pos = i
                return
            n = held[i + 2]
            if 1 <= n <= 4:
                self.status_requests.append(n)
                ch.send(bytes((self.status_byte(n),)))
                del held[i : i + 3]
            else:
                i += 1
            i = held.find(b"\x10\x04", i)
        ch.scan_pos = max(0, len(held) - 1)

    def _resume(self) -> None:
        channels = list(self._channels.values())
        if self._pty_channel is not None:
            channels.append(self._pty_channel)
        for ch in channels:
            held, ch.held, ch.scan_pos = bytes(ch.held), bytearray(), 0
            if held:
                self._process(ch, held)

    def _process(self, ch: _Channel, data: bytes) -> None:
        for event in ch.parser.feed(data):
            if isinstance(event, StatusRequest):
                self.status_requests.append(event.n)
                ch.send(bytes((self.status_byte(event.n),)))
            elif isinstance(event, Kick):
                self.drawer.pulse(event)
            elif isinstance(event, Cut):
                ch.page.cut = "partial" if event.partial else "full"
                self._finish(ch.page)
                ch.page = PrintedReceipt()
            elif isinstance(event, Initialized):
                pass
            else:
                ch.page.add(event)

    def _finish(self, page: PrintedReceipt) -> None:
        self._receipts.append(page)
        self.printed_count += 1
        if self.keep_receipts is not None and len(self._receipts) > self.keep_receipts:
            del self._receipts[: len(self._receipts) - self.keep_receipts]
        if self.image_dir is not None and page.images:
            page.save_images(self.image_dir, stem=f"receipt-{self.printed_count:04d}")
        if self.on_receipt is not None:
            self.on_receipt(page)
        self._changed.notify_all()

    # TCP

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(8)
        sock.setblocking(False)
        return sock

    def _add_listener(self, sock: socket.socket) -> None:
        self._listener = sock
        self._sel.register(sock, selectors.EVENT_READ, "listen")
        self._sync_listener()

    def _sync_listener(self) -> None:
        """Powered off: no listener and no connections. Powered on: listening."""
        offline = "offline" in self.faults
        if offline and self._listener is not None:
            self._close_tcp()
        elif not offline and self._listener is None and self._tcp_addr is not None:
            sock = self._bind(*self._tcp_addr)
            self._listener = sock
            self._sel.register(sock, selectors.EVENT_READ, "listen")

    def _close_tcp(self) -> None:
        for fd, channel in list(self._channels.items()):
            if channel.sock is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(fd)
            with contextlib.suppress(OSError):
                # RST rather than FIN: a switched-off printer does not say goodbye.
                channel.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            channel.sock.close()
            with self._lock:
                self._channels.pop(fd, None)
        if self._listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        conn.settimeout(2.0)
        fd = conn.fileno()

        def send(data: bytes) -> None:
            with contextlib.suppress(OSError):
                conn.sendall(data)

        channel = _Channel(f"tcp:{fd}", send, conn)
        with self._lock:
            self._channels[fd] = channel
        self._sel.register(fd, selectors.EVENT_READ, channel)

    def _drop(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(fd)
        with self._lock:
            channel = self._channels.pop(fd, None)
        if channel is not None and channel.sock is not None:
            channel.sock.close()

    # loop

    def _run_in_loop(self, fn: Callable[[], object]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="hwsim-escpos", daemon=True)
            self._thread.start()
        if threading.current_thread() is self._thread:
            fn()
            return
        done = threading.Event()
        self._calls.put((fn, done))
        os.write(self._wake_w, b"x")
        if not done.wait(timeout=5):
            raise TimeoutError("simulator loop did not answer")

    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._sel.select(timeout=0.5):
                tag = key.data
                if tag == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                elif tag == "listen":
                    self._accept()
                elif isinstance(tag, _Channel):
                    self._read_channel(key.fd, tag)
            while not self._calls.empty():
                fn, done = self._calls.get_nowait()
                try:
                    fn()
                finally:
                    done.set()

    def _read_channel(self, fd: int, ch: _Channel) -> None:
        if ch.sock is None:  # the pty master; we hold the slave open, so no EIO on hang-up
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
        else:
            try:
                data = ch.sock.recv(65536)
            except (BlockingIOError, InterruptedError, TimeoutError):
                return
            except OSError:
                data = b""
            if not data:
                self._drop(fd)
                return
        if data:
            self._on_data(ch, data)


# --------------------------------------------------------------------------------- CLI


def _echo(receipt: PrintedReceipt) -> None:
    width = max([len(line.text) for line in receipt.lines] + [32])
    print("=" * width)
    print(receipt.text)
    for code in receipt.barcodes:
        print(f"[{code.symbology}: {code.data}]")
    for qr in receipt.qr_codes:
        print(f"[QR: {qr}]")
    for image in receipt.images:
        print(f"[image {image.width}x{image.height}]")
    print(f"[{receipt.cut or 'no'} cut]")
    sys.stdout.flush()


def main(argv: Iterable[str] | None = None) -> int:
    """Run the simulator until interrupted, echoing each receipt."""
    ap = argparse.ArgumentParser(prog="python -m hwsim.escpos", description=__doc__.split("\n")[0])
    ap.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT (0 = any)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--pty", action="store_true", help="open a pseudo-terminal")
    ap.add_argument("--images", metavar="DIR", help="save printed raster images as PNG here")
    ap.add_argument("--drawer-auto-close", type=float, metavar="S", help="close drawer after S s")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.tcp is None and not args.pty:
        ap.error("give --tcp PORT and/or --pty")
    sim = EscPosPrinterSim(
        image_dir=args.images,
        on_receipt=_echo,
        keep_receipts=100,
        drawer_auto_close_s=args.drawer_auto_close,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if args.tcp is not None:
            port = sim.start_tcp(args.tcp, args.host)
            print(f"escpos printer listening on tcp {args.host}:{port}", flush=True)
        if args.pty:
            print(f"escpos printer on pty {sim.start_pty()}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
