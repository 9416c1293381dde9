# ZVT payment-terminal simulator (the PT side) on a pseudo-terminal or TCP, with scripted outcomes.
"""A card terminal at the wire, written from the terminal's side of PA00P015/PA00P016.

It imports nothing from ``drivers`` or ``terminal``: its framing, CRC and field
code are its own, so a bug shared with the driver cannot hide. It only ever sends
masked card numbers.

    sim = ZvtSimulator("tcp").start()       # or ZvtSimulator("pty"); sim.device
    sim.decline(0x05)                        # the next transaction is declined
    ...
    sim.stop()

Run by hand: ``python -m hwsim.zvt --tcp 20007`` or ``python -m hwsim.zvt --pty``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

_DLE, _STX, _ETX, _ACK, _NAK = 0x10, 0x02, 0x03, 0x06, 0x15
_SLICE = 0.05
_LAST_LINE = 0x81  # 1xxx xxxx other than 80: end of a receipt


# --- wire helpers (the terminal's own) ---------------------------------------------


def crc_kermit(data: bytes) -> int:
    """Bit by bit, deliberately unlike the driver's table: CRC-16/KERMIT."""
    crc = 0x0000
    for byte in data:
        crc ^= byte
        for _ in range(8):
            if crc & 0x0001:
                crc = (crc >> 1) ^ 0x8408
            else:
                crc >>= 1
    return crc


def frame(apdu: bytes, corrupt: bool = False) -> bytes:
    check = crc_kermit(apdu + b"\x03")
    if corrupt:
        check ^= 0x5A5A
    stuffed = apdu.replace(b"\x10", b"\x10\x10")
    return b"\x10\x02" + stuffed + b"\x10\x03" + bytes((check & 0xFF, (check >> 8) & 0xFF))


def apdu(cls: int, ins: int, data: bytes = b"") -> bytes:
    n = len(data)
    head = bytes((cls, ins))
    if n < 0xFF:
        return head + bytes((n,)) + data
    return head + b"\xff" + n.to_bytes(2, "little") + data


def bcd(number: int, width: int) -> bytes:
    text = f"{number:0{width * 2}d}"
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def unbcd(raw: bytes) -> int:
    value = 0
    for byte in raw:
        hi, lo = byte >> 4, byte & 0x0F
        if hi > 9 or lo > 9:
            raise ValueError("not BCD")
        value = value * 100 + hi * 10 + lo
    return value


def llvar(data: bytes, digits: int = 2) -> bytes:
    count = f"{len(data):0{digits}d}"
    return bytes(0xF0 + int(c) for c in count) + data


def tlv_length(n: int) -> bytes:
    """BER-style length: short form, 81 nn, or 82 hi lo."""
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    return bytes((0x82, n >> 8, n & 0xFF))


def tlv(tag: int, value: bytes) -> bytes:
    return tag.to_bytes(2 if tag > 0xFF else 1, "big") + tlv_length(len(value)) + value


Bmp = tuple[int, bytes | None]  # (BMP number, its encoded value; None: left out)


def status_info(result: int, *bmps: Bmp) -> bytes:
    """A status-information APDU (04 0F): the result code (BMP 27), then the BMPs in order."""
    data = b"\x27" + bytes((result,))
    data += b"".join(bytes((bmp,)) + value for bmp, value in bmps if value is not None)
    return apdu(0x04, 0x0F, data)


def clock_bmps(when: datetime.datetime) -> tuple[Bmp, Bmp]:
    """Time (BMP 0C) and date (BMP 0D) of a booking or a totals report."""
    return (0x0C, bcd(int(when.strftime("%H%M%S")), 3)), (0x0D, bcd(int(when.strftime("%m%d")), 2))


# Fixed widths of the BMPs an ECR sends us; a variable one gives its digit count.
_BMP_WIDTH: dict[int, int] = {
    0x01: 1, 0x02: 1, 0x03: 1, 0x04: 6, 0x05: 1, 0x0B: 3, 0x0C: 3, 0x0D: 2,
    0x0E: 2, 0x17: 2, 0x19: 1, 0x27: 1, 0x29: 4, 0x2A: 15, 0x37: 3, 0x3A: 2,
    0x3B: 8, 0x3D: 3, 0x49: 2, 0x87: 2, 0x88: 3, 0x8A: 1, 0x8C: 1, 0xA0: 1,
    0xAA: 3, 0xBA: 5, 0xD2: 1, 0xFA: 1,
}  # fmt: skip
_BMP_VAR: dict[int, int] = {0x22: 2, 0x23: 2, 0x2D: 2, 0x8B: 2, 0x24: 3, 0x2E: 3, 0x3C: 3, 0x60: 3}


def read_bmps(data: bytes) -> dict[int, bytes]:
    """Fields of an ECR request; ValueError on anything this terminal cannot follow."""
    out: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        bmp = data[i]
        i += 1
        if bmp == 0x06:
            first = data[i]
            if first < 0x80:
                size, i = first, i + 1
            elif first == 0x81:
                size, i = data[i + 1], i + 2
            elif first == 0x82:
                size, i = (data[i + 1] << 8) | data[i + 2], i + 3
            else:
                raise ValueError("bad TLV length")
        elif bmp in _BMP_WIDTH:
            size = _BMP_WIDTH[bmp]
        elif bmp in _BMP_VAR:
            digits = _BMP_VAR[bmp]
            size = 0
            for b in data[i : i + digits]:
                if b & 0xF0 != 0xF0:
                    raise ValueError("bad LLVAR")
                size = size * 10 + (b & 0x0F)
            i += digits
        else:
            raise ValueError(f"unknown BMP {bmp:02X}")
        if i + size > len(data):
            raise ValueError("truncated")
        out[bmp] = data[i : i + size]
        i += size
    return out


# --- cards, outcomes, batch ---------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """A presented card. ``pan_nibbles`` is already masked: E hides a digit, F pads."""

    name: str
    card_type: int
    pan_nibbles: str
    bucket: int  # slot in the BMP 60 totals

    @property
    def printed_pan(self) -> str:
        return self.pan_nibbles.rstrip("F").replace("E", "*")

    @property
    def bmps(self) -> tuple[Bmp, Bmp]:
        """Card type (BMP 8A) and card name (BMP 8B)."""
        return (0x8A, bytes((self.card_type,))), (0x8B, llvar(self.name.encode() + b"\0"))


CARDS: dict[str, Card] = {
    "girocard": Card("girocard", 5, "672559EEEEEEEE4711", 0),
    "jcb": Card("JCB", 14, "356999EEEEEE0815", 1),
    "mastercard": Card("Mastercard", 6, "545454EEEEEE5454", 2),
    "amex": Card("American Express", 8, "374245EEEEE1001F", 3),
    "visa": Card("Visa", 10, "476173EEEEEE0119", 4),
    "diners": Card("Diners", 12, "360569EEEE1234", 5),
    "maestro": Card("Maestro", 46, "679999EEEEEEEEE123", 6),
}


class Scenario(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    CUSTOMER_CANCEL = "customer_cancel"
    TIMEOUT = "timeout"
    DISCONNECT = "disconnect"
    POWER_LOSS_BEFORE_APPROVAL = "power_loss_before_approval"
    POWER_LOSS_AFTER_APPROVAL = "power_loss_after_approval"
    OFFLINE_APPROVAL = "offline_approval"


@dataclass(frozen=True)
class Plan:
    """What the next card transaction does."""

    scenario: Scenario = Scenario.APPROVE
    result_code: int = 0x05
    card: str = "girocard"


@dataclass
class Booking:
    kind: str  # "sale", "refund", "reversal"
    amount: int
    receipt: int
    trace: int
    card: Card
    when: datetime.datetime
    auth_code: str
    offline: bool = False
    original_trace: int | None = None
    reversed: bool = False


@dataclass
class _Registration:
    config: int = 0x00
    currency: bytes | None = None
    text_blocks: bool = False

    @property
    def statuses(self) -> bool:
        return bool(self.config & 0x08)

    @property
    def payment_receipts(self) -> bool:
        return self.config & 0x82 == 0x82

    @property
    def admin_receipts(self) -> bool:
        return self.config & 0x84 == 0x84


class _Gone(Exception):
    """The link is closed (ECR hung up, or we pulled the plug)."""


class _Stopped(Exception):
    """The simulator is shutting down."""


class _PowerLoss(Exception):
    """Unwind the current transaction: the terminal just lost power."""


class _Silence(Exception):
    """Unwind the current transaction without another byte: the terminal hangs."""


# --- raw byte links -------------------------------------------------------------------


class _Link:
    """Raw bytes to and from the ECR: the pty master (serial) or a TCP connection."""

    def __init__(self, end: int | socket.socket, stop: threading.Event) -> None:
        self.end = end
        self.stop = stop

    def read(self, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while True:
            if self.stop.is_set():
                raise _Stopped
            wait = min(_SLICE, max(0.0, end - time.monotonic()))
            try:
                ready = select.select([self.end], [], [], wait)[0]
                if ready:
                    if isinstance(self.end, socket.socket):
                        data = self.end.recv(4096)
                    else:
                        data = os.read(self.end, 4096)
                    if not data:
                        raise _Gone
                    return data
            except OSError as err:
                # A pty gives EIO once nobody holds the slave open, EBADF after our own close.
                if self.stop.is_set():
                    raise _Stopped from err
                raise _Gone from err
            if time.monotonic() >= end:
                return b""

    def write(self, data: bytes) -> None:
        try:
            if isinstance(self.end, socket.socket):
                self.end.sendall(data)
            else:
                os.write(self.end, data)
        except OSError as err:
            raise _Gone from err


class _Wire:
    """Terminal-side transport: frames with ACK/NAK on serial, bare APDUs on TCP."""

    def __init__(self, link: _Link, framed: bool, sim: ZvtSimulator) -> None:
        self.link = link
        self.framed = framed
        self.sim = sim
        self.buf = bytearray()
        self.apdus: collections.deque[bytes] = collections.deque()
        self.controls: collections.deque[int] = collections.deque()
        self.last_rx = time.monotonic()
        self.last_frame: bytes | None = None  # for spotting a repeat after a lost ACK

    def _fill(self, timeout: float) -> None:
        data = self.link.read(timeout)
        now = time.monotonic()
        if data:
            self.last_rx = now
            self.buf += data
        elif self.framed and self.buf and now - self.last_rx > self.sim.t1:
            # A frame torn off mid-way (T1): refuse it and forget the bytes.
            self.buf.clear()
            self.link.write(bytes((_NAK,)))
        self._parse()

    def _scan_frame(self) -> tuple[str, bytes, int]:
        """At buf[0:2] == DLE STX: ("wait"|"good"|"bad", apdu, bytes consumed)."""
        body = bytearray()
        i = 2
        while i < len(self.buf):
            byte = self.buf[i]
            if byte != _DLE:
                body.append(byte)
                i += 1
                continue
            if i + 1 >= len(self.buf):
                return ("wait", b"", 0)
            nxt = self.buf[i + 1]
            if nxt == _DLE:
                body.append(_DLE)
                i += 2
            elif nxt == _ETX:
                if i + 3 >= len(self.buf):
                    return ("wait", b"", 0)
                sent = self.buf[i + 2] | (self.buf[i + 3] << 8)
                ok = sent == crc_kermit(bytes(body) + b"\x03") and _apdu_complete(bytes(body))
                return ("good" if ok else "bad", bytes(body), i + 4)
            else:
                return ("bad", b"", i + 2)
        return ("wait", b"", 0)

    def _parse(self) -> None:
        if not self.framed:
            while len(self.buf) >= 3:
                size = _apdu_size(bytes(self.buf))
                if size is None or len(self.buf) < size:
                    return
                self.apdus.append(bytes(self.buf[:size]))
                del self.buf[:size]
            return
        while self.buf:
            head = self.buf[0]
            if head in (_ACK, _NAK):
                self.controls.append(head)
                del self.buf[0]
            elif head == _DLE:
                if len(self.buf) < 2:
                    return
                if self.buf[1] != _STX:
                    del self.buf[0]
                    continue
                verdict, body, used = self._scan_frame()
                if verdict == "wait":
                    return
                del self.buf[:used]
                if verdict == "good" and self.sim._take_fault("nak"):
                    verdict = "bad"
                if verdict != "good" or not self.sim._take_fault("lose_ack"):
                    self.link.write(bytes((_ACK if verdict == "good" else _NAK,)))
                if verdict == "good" and body != self.last_frame:
                    self.last_frame = body
                    self.apdus.append(body)
            else:
                del self.buf[0]

    def recv(self, timeout: float) -> bytes | None:
        end = time.monotonic() + timeout
        while not self.apdus:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self._fill(min(left, _SLICE))
        got = self.apdus.popleft()
        self.sim._record(got)
        return got

    def send(self, data: bytes) -> bool:
        """Deliver one APDU; on serial wait for ACK and repeat at most twice."""
        if not self.framed:
            self.link.write(data)
            return True
        self.last_frame = None
        for _ in range(3):
            junk = self.sim._take_garbage()
            self.controls.clear()
            self.link.write(junk + frame(data, corrupt=self.sim._take_fault("corrupt")))
            end = time.monotonic() + self.sim.t2
            while not self.controls and time.monotonic() < end:
                self._fill(_SLICE)
            if self.controls and self.controls.popleft() == _ACK:
                return True
        return False

    def drain(self) -> None:
        self.buf.clear()
        self.apdus.clear()
        self.controls.clear()
        while self.link.read(0.0):
            pass


def _apdu_size(buf: bytes) -> int | None:
    if len(buf) < 3:
        return None
    if buf[2] == 0xFF:
        return None if len(buf) < 5 else 5 + int.from_bytes(buf[3:5], "little")
    return 3 + buf[2]


def _apdu_complete(body: bytes) -> bool:
    return _apdu_size(body) == len(body)


def _data(raw: bytes) -> bytes:
    return raw[5:] if raw[2] == 0xFF else raw[3:]


# --- the terminal -----------------------------------------------------------------------

_OK = apdu(0x80, 0x00)
_REFUSE = apdu(0x84, 0x83)
_BAD_REQUEST = apdu(0x84, 0x9A)
_FORBIDDEN_FIELDS = (0x22, 0x23, 0x24, 0x2D, 0x3A, 0x0E)


class ZvtSimulator:
    """A ZVT terminal on ``mode`` "tcp" (127.0.0.1) or "pty", served from one thread."""

    def __init__(
        self,
        mode: str = "tcp",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        terminal_id: str = "52500001",
        step_delay: float = 0.01,
        response_timeout: float = 5.0,
        t1: float = 0.2,
        t2: float = 5.0,
        power_off_seconds: float = 0.5,
        default_card: str = "girocard",
        clock: Callable[[], datetime.datetime] = datetime.datetime.now,
    ) -> None:
        if mode not in ("tcp", "pty"):
            raise ValueError("mode is 'tcp' or 'pty'")
        if default_card not in CARDS:
            raise ValueError(f"unknown card {default_card!r}; one of {sorted(CARDS)}")
        self.mode = mode
        self.host = host
        self.port = port
        self.device: str | None = None
        self.terminal_id = terminal_id
        self.step_delay = step_delay
        self.response_timeout = response_timeout
        self.t1 = t1
        self.t2 = t2
        self.power_off_seconds = power_off_seconds
        self.default_card = default_card
        self.clock = clock
        self.batch: list[Booking] = []
        self.last_booking: Booking | None = None
        self.received: list[bytes] = []
        self.events: list[str] = []
        self.card_data_requested = False
        self.power_cycles = 0
        self._plans: collections.deque[Plan] = collections.deque()
        self._faults: dict[str, int] = {"nak": 0, "corrupt": 0, "lose_ack": 0, "garble": 0}
        self._garbage = b""
        self._next_receipt = 1
        self._next_trace = 1
        self._reg = _Registration()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None

    # --- control ---------------------------------------------------------------------

    def start(self) -> ZvtSimulator:
        if self.mode == "tcp":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(4)
            self.port = listener.getsockname()[1]
            self._listener = listener
        else:
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line editing: a plain byte pipe
            self._master, self._slave = master, slave
            self.device = os.ttyname(slave)
        self._thread = threading.Thread(
            target=self._serve, name=f"zvt-sim-{self.mode}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_pty()
        for sock in (self._conn, self._listener):
            if sock is not None:
                sock.close()
        self._conn = self._listener = None

    def __enter__(self) -> ZvtSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def where(self) -> str:
        return f"tcp {self.host}:{self.port}" if self.mode == "tcp" else f"pty {self.device}"

    def script(self, *plans: Plan) -> None:
        """Queue outcomes for the next card transactions (sale, refund, reversal)."""
        for plan in plans:
            if plan.card not in CARDS:
                raise ValueError(f"unknown card {plan.card!r}; one of {sorted(CARDS)}")
        with self._lock:
            self._plans.extend(plans)

    def approve(self, card: str = "") -> None:
        self.script(Plan(Scenario.APPROVE, card=card or self.default_card))

    def decline(self, result_code: int = 0x05, card: str = "") -> None:
        self.script(Plan(Scenario.DECLINE, result_code, card or self.default_card))

    def customer_cancel(self) -> None:
        self.script(Plan(Scenario.CUSTOMER_CANCEL))

    def stop_answering(self) -> None:
        self.script(Plan(Scenario.TIMEOUT))

    def disconnect(self) -> None:
        self.script(Plan(Scenario.DISCONNECT))

    def power_loss_before_approval(self, card: str = "") -> None:
        self.script(Plan(Scenario.POWER_LOSS_BEFORE_APPROVAL, card=card or self.default_card))

    def power_loss_after_approval(self, card: str = "") -> None:
        self.script(Plan(Scenario.POWER_LOSS_AFTER_APPROVAL, card=card or self.default_card))

    def offline_approval(self, card: str = "") -> None:
        self.script(Plan(Scenario.OFFLINE_APPROVAL, card=card or self.default_card))

    def nak_next(self, count: int) -> None:
        """Answer the ECR's next ``count`` good frames with NAK (serial only)."""
        with self._lock:
            self._faults["nak"] += count

    def corrupt_next(self, count: int) -> None:
        """Send our next ``count`` frames with a wrong CRC (serial only)."""
        with self._lock:
            self._faults["corrupt"] += count

    def lose_ack_next(self, count: int) -> None:
        """Take the ECR's next ``count`` frames but let our ACK byte get lost (serial only)."""
        with self._lock:
            self._faults["lose_ack"] += count

    def garble_next_status(self) -> None:
        """Append an unknown BMP to the next status information (the ECR cannot read it)."""
        with self._lock:
            self._faults["garble"] += 1

    def garbage_next(self, data: bytes) -> None:
        """Put stray bytes on the line before our next frame (serial only)."""
        with self._lock:
            self._garbage += data

    @property
    def pending_faults(self) -> dict[str, int]:
        """Injected faults not yet used up (nak, corrupt, lose_ack, garble)."""
        with self._lock:
            return dict(self._faults)

    def totals(self) -> list[tuple[int, int]]:
        """Per BMP 60 slot: (count, net total) of the open batch."""
        slots = [(0, 0)] * 7
        for b in self.batch:
            if b.kind == "reversal" or b.reversed:
                continue
            count, total = slots[b.card.bucket]
            sign = -1 if b.kind == "refund" else 1
            slots[b.card.bucket] = (count + 1, total + sign * b.amount)
        return slots

    # --- internals used by _Wire ---------------------------------------------------

    def _take_fault(self, kind: str) -> bool:
        with self._lock:
            if self._faults[kind] > 0:
                self._faults[kind] -= 1
                return True
            return False

    def _take_garbage(self) -> bytes:
        with self._lock:
            junk, self._garbage = self._garbage, b""
            return junk

    def _record(self, raw: bytes) -> None:
        if raw[:1] not in (b"\x80", b"\x84"):
            self.received.append(raw)

    def _note(self, text: str) -> None:
        self.events.append(text)

    def _next_plan(self) -> Plan:
        with self._lock:
            return self._plans.popleft() if self._plans else Plan(card=self.default_card)

    # --- serving -------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            if self.mode == "pty":
                assert self._master is not None
                self._serve_link(_Link(self._master, self._stop), framed=True)
            else:
                self._accept_loop()
        except _Stopped:
            pass

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            if not select.select([self._listener], [], [], _SLICE)[0]:
                continue
            conn, _ = self._listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
            try:
                self._serve_link(_Link(conn, self._stop), framed=False)
            finally:
                conn.close()
                self._conn = None

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def _serve_link(self, link: _Link, framed: bool) -> None:
        wire = _Wire(link, framed, self)
        while True:
            try:
                raw = wire.recv(_SLICE * 4)
                if raw is not None:
                    self._dispatch(wire, raw)
            except _Gone:
                self._note("link closed")
                return
            except _Silence:
                self._note("went silent")
            except _PowerLoss:
                self._power_cycle(wire)
                if not framed:
                    return

    def _power_cycle(self, wire: _Wire) -> None:
        self.power_cycles += 1
        self._note("power lost")
        if self.mode == "tcp" and self._conn is not None:
            self._conn.close()
        end = time.monotonic() + self.power_off_seconds
        while time.monotonic() < end:
            if self._stop.is_set():
                raise _Stopped
            time.sleep(_SLICE)
        if self.mode == "pty":
            wire.drain()
        self._note("power back")

    # --- protocol steps ---------------------------------------------------------

    def _send(self, wire: _Wire, data: bytes) -> None:
        if not wire.send(data):
            raise _Silence  # the ECR does not take our frames any more

    def _answer(self, wire: _Wire, data: bytes) -> bytes | None:
        """Send a message the ECR must answer; its 80/84 answer, or None if it stays quiet."""
        self._send(wire, data)
        end = time.monotonic() + self.response_timeout
        while True:
            raw = wire.recv(max(0.0, end - time.monotonic()))
            if raw is None:
                return None
            if raw[0] in (0x80, 0x84):
                return raw
            self._note(f"ECR sent {raw[:2].hex()} while we were master")
            self._send(wire, _REFUSE)

    def _ask(self, wire: _Wire, data: bytes) -> bool:
        """True when the ECR takes the message: 80 00 or 84 00."""
        raw = self._answer(wire, data)
        return raw is not None and (raw[0] == 0x80 or raw[1] == 0x00)

    def _pause(self, wire: _Wire, seconds: float) -> bool:
        """Wait like a terminal doing work; True if the ECR asked to abort meanwhile."""
        end = time.monotonic() + seconds
        while True:
            raw = wire.recv(max(0.0, end - time.monotonic()))
            if raw is None:
                return False
            if raw[:2] == b"\x06\xb0":
                self._send(wire, _OK)
                return True

    def _status(self, wire: _Wire, code: int) -> None:
        if self._reg.statuses and not self._ask(wire, apdu(0x04, 0xFF, bytes((code,)))):
            raise _Silence

    def _dispatch(self, wire: _Wire, raw: bytes) -> None:
        cmd = raw[:2]
        body = _data(raw)
        handlers: dict[bytes, Callable[[_Wire, bytes], None]] = {
            b"\x06\x00": self._register,
            b"\x06\x01": self._authorise,
            b"\x06\x31": self._refund,
            b"\x06\x30": self._reverse,
            b"\x06\x50": self._end_of_day,
            b"\x06\x10": self._turnover,
            b"\x06\x20": self._repeat_receipt,
            b"\x05\x01": self._status_enquiry,
        }
        handler = handlers.get(cmd)
        if cmd == b"\x06\xb0":
            self._send(wire, _OK)
        elif cmd == b"\x06\xc0":
            self.card_data_requested = True
            self._send(wire, _REFUSE)
        elif raw[0] in (0x80, 0x84):
            pass  # a late answer to something we gave up on
        elif handler is None:
            self._send(wire, _REFUSE)
        else:
            handler(wire, body)

    def _register(self, wire: _Wire, body: bytes) -> None:
        if len(body) < 4:
            self._send(wire, _BAD_REQUEST)
            return
        currency = body[4:6] if len(body) >= 6 else None
        if currency is not None and currency != b"\x09\x78":
            self._send(wire, apdu(0x84, 0x1E, b"\x6f" + currency))
            return
        try:
            fields = read_bmps(body[6:])
        except (ValueError, IndexError):
            self._send(wire, _BAD_REQUEST)
            return
        permitted = fields.get(0x06, b"")
        self._reg = _Registration(body[3], currency, b"\x0a\x02\x06\xd3" in permitted)
        self._send(wire, _OK)
        done = b"\x19\x00\x29" + bytes.fromhex(self.terminal_id)
        if currency is not None:
            done += b"\x49" + currency
        self._ask(wire, apdu(0x06, 0x0F, done))

    def _request(self, wire: _Wire, body: bytes, with_password: bool) -> dict[int, bytes] | None:
        try:
            fields = read_bmps(body[3:] if with_password else body)
        except (ValueError, IndexError):
            self._send(wire, _BAD_REQUEST)
            return None
        if any(f in fields for f in _FORBIDDEN_FIELDS):
            self.card_data_requested = True
        return fields

    def _authorise(self, wire: _Wire, body: bytes) -> None:
        self._amount_transaction(wire, body, "sale", with_password=False)

    def _refund(self, wire: _Wire, body: bytes) -> None:
        self._amount_transaction(wire, body, "refund", with_password=True)

    def _amount_transaction(self, wire: _Wire, body: bytes, kind: str, with_password: bool) -> None:
        fields = self._request(wire, body, with_password=with_password)
        if fields is None:
            return
        if 0x04 not in fields:
            self._send(wire, _BAD_REQUEST)
            return
        self._card_transaction(wire, kind, unbcd(fields[0x04]), fields)

    def _reverse(self, wire: _Wire, body: bytes) -> None:
        fields = self._request(wire, body, with_password=True)
        if fields is None:
            return
        if 0x87 not in fields:
            self._send(wire, _BAD_REQUEST)
            return
        wanted = unbcd(fields[0x87])
        target = next((b for b in self.batch if b.receipt == wanted and b.kind == "sale"), None)
        if target is None or target.reversed:
            self._send(wire, _OK)
            code = 0xB4 if target is not None else 0xB5
            self._ask(wire, status_info(code))
            self._ask(wire, apdu(0x06, 0x1E, bytes((code,))))
            return
        self._card_transaction(wire, "reversal", target.amount, fields, target)

    def _card_transaction(
        self,
        wire: _Wire,
        kind: str,
        amount: int,
        fields: dict[int, bytes],
        original: Booking | None = None,
    ) -> None:
        plan = self._next_plan()
        card = original.card if original is not None else CARDS.get(plan.card, CARDS["girocard"])
        self._send(wire, _OK)
        self._note(f"{kind} {amount} -> {plan.scenario}")
        self._status(wire, 0x0A)  # insert card
        if self._pause(wire, self.step_delay * 3) or plan.scenario is Scenario.CUSTOMER_CANCEL:
            self._ask(wire, apdu(0x06, 0x1E, b"\x6c"))
            return
        if plan.scenario is Scenario.TIMEOUT:
            raise _Silence
        if plan.scenario is Scenario.DISCONNECT:
            self._pull_plug()
        self._status(wire, 0x68)  # card inserted
        self._status(wire, 0x01)  # watch PIN pad
        time.sleep(self.step_delay)
        offline = plan.scenario is Scenario.OFFLINE_APPROVAL
        self._status(wire, 0xF3 if offline else 0x04)  # offline / waiting for host
        if plan.scenario is Scenario.POWER_LOSS_BEFORE_APPROVAL:
            raise _PowerLoss
        cc = fields.get(0x49)
        if plan.scenario is Scenario.DECLINE:
            self._status(wire, 0x1D)
            self._ask(
                wire, status_info(plan.result_code, (0x04, bcd(amount, 6)), *card.bmps, (0x49, cc))
            )
            if self._reg.payment_receipts:
                self._print(wire, self._decline_receipt(amount, card, plan.result_code))
            self._ask(wire, apdu(0x06, 0x1E, bytes((plan.result_code,))))
            return
        booking = Booking(
            kind=kind,
            amount=amount,
            receipt=self._next_receipt,
            trace=self._next_trace,
            card=card,
            when=self.clock(),
            auth_code=f"{(self._next_trace * 7919) % 1000000:06d}",
            offline=offline,
            original_trace=original.trace if original is not None else None,
        )
        self._next_trace += 1
        if plan.scenario is Scenario.POWER_LOSS_AFTER_APPROVAL:
            self._book(booking, original)
            raise _PowerLoss
        self._status(wire, 0x0B)  # remove card
        bmps = self._booking_bmps(booking, cc)
        if self._take_fault("garble"):
            bmps.append((0x5A, b"\x00"))  # a BMP no ECR can know the length of
        answer = self._answer(wire, status_info(0x00, *bmps))
        if answer is None or not (answer[0] == 0x80 or answer[1] == 0x00):
            self._note("ECR did not confirm the result: auto-reversal")
            if answer is not None:
                self._ask(wire, apdu(0x06, 0x1E, bytes((answer[1],))))
            return
        if self._reg.payment_receipts and not self._print(wire, self._receipt(booking)):
            self._note("ECR did not take the receipt: auto-reversal")
            return
        self._book(booking, original)
        self._ask(wire, apdu(0x06, 0x0F))

    def _book(self, booking: Booking, original: Booking | None) -> None:
        self._next_receipt = self._next_receipt % 9999 + 1
        if original is not None:
            original.reversed = True
        self.batch.append(booking)
        self.last_booking = booking
        self._note(f"booked {booking.kind} receipt {booking.receipt}")

    def _pull_plug(self) -> None:
        self._note("disconnecting")
        if self.mode == "tcp":
            if self._conn is not None:
                self._conn.shutdown(socket.SHUT_RDWR)
            raise _Gone
        self._close_pty()
        raise _Gone

    def _booking_bmps(self, b: Booking, cc: bytes | None) -> list[Bmp]:
        """What the status information of a booking carries (masked card number only)."""
        payment_type = 0x40 if b.offline else (0x70 if b.card.bucket == 0 else 0x60)
        original = None if b.original_trace is None else bcd(b.original_trace, 3)
        return [
            (0x04, bcd(b.amount, 6)),
            (0x0B, bcd(b.trace, 3)),
            *clock_bmps(b.when),
            (0x19, bytes((payment_type,))),
            (0x22, llvar(bytes.fromhex(b.card.pan_nibbles))),
            (0x29, bytes.fromhex(self.terminal_id)),
            (0x3B, b.auth_code.encode().ljust(8, b"\0")),
            (0x87, bcd(b.receipt, 2)),
            *b.card.bmps,
            (0x37, original),
            (0x49, cc),
        ]

    def _receipt(self, b: Booking) -> list[str]:
        title = {"sale": "PAYMENT", "refund": "REFUND", "reversal": "REVERSAL"}[b.kind]
        when = b.when
        lines = [
            "Tillbox Simulated Terminal",
            f"Terminal-ID  {self.terminal_id}",
            f"Date {when:%d.%m.%y}   Time {when:%H:%M:%S}",
            title,
            b.card.name,
            f"Card {b.card.printed_pan}",
            f"Trace {b.trace:06d}   Receipt {b.receipt:04d}",
            f"Auth code {b.auth_code}",
            f"AMOUNT EUR {b.amount // 100:>10d}.{b.amount % 100:02d}",
            "OFFLINE APPROVED" if b.offline else "APPROVED",
        ]
        return lines

    def _decline_receipt(self, amount: int, card: Card, code: int) -> list[str]:
        return [
            "Tillbox Simulated Terminal",
            card.name,
            f"AMOUNT EUR {amount // 100:>10d}.{amount % 100:02d}",
            f"DECLINED ({code:02X})",
        ]

    def _print(self, wire: _Wire, lines: list[str]) -> bool:
        if self._reg.text_blocks:
            items = b"\x09\x01\x00" + b"".join(tlv(0x07, line.encode("ascii")) for line in lines)
            items += tlv(0x09, bytes((_LAST_LINE,)))
            container = tlv(0x25, items) + tlv(0x1F07, b"\x02")
            body = b"\x06" + tlv_length(len(container)) + container
            return self._ask(wire, apdu(0x06, 0xD3, body))
        for n, line in enumerate(lines):
            attribute = _LAST_LINE if n == len(lines) - 1 else 0x00
            if not self._ask(wire, apdu(0x06, 0xD1, bytes((attribute,)) + line.encode("ascii"))):
                return False
        return True

    def _totals_status(self) -> bytes:
        slots = self.totals()
        receipts = [b.receipt for b in self.batch]
        first, last = (min(receipts), max(receipts)) if receipts else (0, 0)
        single = bcd(first, 2) + bcd(last, 2)
        for count, total in slots:
            single += bytes((min(count, 255),)) + bcd(max(total, 0), 6)
        grand = sum(max(total, 0) for _, total in slots)
        trace = bcd(self._next_trace, 3)
        self._next_trace += 1
        return status_info(
            0x00,
            (0x04, bcd(grand, 6)),
            (0x0B, trace),
            *clock_bmps(self.clock()),
            (0x60, llvar(single, 3)),
        )

    def _totals_receipt(self, heading: str) -> list[str]:
        lines = ["Tillbox Simulated Terminal", heading]
        names = ["girocard", "JCB", "Mastercard", "Amex", "Visa", "Diners", "Other"]
        for name, (count, total) in zip(names, self.totals(), strict=True):
            if count:
                lines.append(f"{name:<12}{count:>4}{total // 100:>10d}.{total % 100:02d}")
        return lines

    def _end_of_day(self, wire: _Wire, body: bytes) -> None:
        self._totals_command(wire, body, close=True)

    def _turnover(self, wire: _Wire, body: bytes) -> None:
        self._totals_command(wire, body, close=False)

    def _totals_command(self, wire: _Wire, body: bytes, close: bool) -> None:
        if self._request(wire, body, with_password=True) is None:
            return
        self._send(wire, _OK)
        self._status(wire, 0x0E)  # please wait
        if not self._ask(wire, self._totals_status()):
            return
        if self._reg.admin_receipts:
            self._print(wire, self._totals_receipt("END OF DAY" if close else "TOTALS"))
        if close:
            self._note(f"end of day: {len(self.batch)} bookings closed")
            self.batch.clear()
        self._ask(wire, apdu(0x06, 0x0F))

    def _repeat_receipt(self, wire: _Wire, body: bytes) -> None:
        fields = self._request(wire, body, with_password=True)
        if fields is None:
            return
        service = fields.get(0x03, b"\x00")[0]
        self._send(wire, _OK)
        last = self.last_booking
        if last is None:
            self._ask(wire, apdu(0x06, 0x1E, b"\x83"))
            return
        if service & 0x01:
            self._ask(wire, status_info(0x00, *self._booking_bmps(last, None)))
        if not service & 0x02 and self._reg.payment_receipts:
            self._print(wire, ["*** COPY ***", *self._receipt(last)])
        self._ask(wire, apdu(0x06, 0x0F))

    def _status_enquiry(self, wire: _Wire, body: bytes) -> None:
        self._send(wire, _OK)
        self._ask(wire, apdu(0x06, 0x0F, llvar(b"SIM-1.0", 3) + b"\x00"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulated ZVT card terminal")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT (0: any)")
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    parser.add_argument("--card", default="girocard", choices=sorted(CARDS))
    parser.add_argument(
        "--outcome",
        action="append",
        default=[],
        metavar="SCENARIO[:CODE]",
        help=f"queue an outcome; one of {', '.join(s.value for s in Scenario)}",
    )
    args = parser.parse_args(argv)
    if args.pty:
        sim = ZvtSimulator("pty", default_card=args.card)
    else:
        sim = ZvtSimulator("tcp", port=args.tcp, default_card=args.card)
    for item in args.outcome:
        name, _, code = item.partition(":")
        sim.script(Plan(Scenario(name), int(code, 16) if code else 0x05, args.card))
    sim.start()
    print(f"ZVT simulator listening on {sim.where}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
