# ZVT transport framing: serial DLE/STX frames with CRC-16/KERMIT, and APDU splitting for TCP.
"""Pure byte codecs in the manner of pyserial's ``Packetizer``: feed bytes, get events.

Neither decoder owns a port and neither raises on any input: faults come back as
events so the transport can NAK them, and a bounded buffer keeps memory flat.
"""

from __future__ import annotations

from dataclasses import dataclass

from .apdu import MAX_APDU, apdu_size

DLE = 0x10
STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_table()


def crc16_kermit(data: bytes | bytearray, crc: int = 0) -> int:
    """CRC-16/KERMIT (reflected 0x1021, init 0): what terminals really send, not XMODEM."""
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def frame_crc(apdu: bytes | bytearray) -> int:
    """The frame CRC covers the unstuffed APDU plus the ETX byte."""
    return crc16_kermit(bytes(apdu) + bytes([ETX]))


def encode_frame(apdu: bytes | bytearray) -> bytes:
    """DLE STX, APDU with every DLE doubled, DLE ETX, CRC low, CRC high (never stuffed)."""
    crc = frame_crc(apdu)
    body = bytes(apdu).replace(bytes([DLE]), bytes([DLE, DLE]))
    return bytes([DLE, STX]) + body + bytes([DLE, ETX, crc & 0xFF, crc >> 8])


@dataclass(frozen=True, slots=True)
class FrameReceived:
    """A frame with a good CRC and a well-formed APDU: acknowledge it with ACK."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that started but is unusable (bad CRC, bad escape, torn off): answer NAK."""

    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class ControlReceived:
    """A bare ACK (06) or NAK (15) byte outside any frame."""

    byte: int

    @property
    def is_ack(self) -> bool:
        return self.byte == ACK


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes between frames that belong to nothing; logged, never answered."""

    data: bytes


DecoderEvent = FrameReceived | FrameRejected | ControlReceived | Garbage

_IDLE, _GOT_DLE, _BODY, _BODY_DLE, _CRC_LO, _CRC_HI = range(6)
# Stuffing can at most double the APDU; anything longer is noise, not a frame.
MAX_FRAME_BODY = MAX_APDU


class SerialDecoder:
    """Incremental decoder for the serial transport; ``feed`` never raises."""

    def __init__(self, max_body: int = MAX_FRAME_BODY) -> None:
        self._max_body = max_body
        self._state = _IDLE
        self._body = bytearray()
        self._raw = bytearray()
        self._garbage = bytearray()
        self._crc_lo = 0

    @property
    def in_frame(self) -> bool:
        """True while a frame (or a lone DLE) is half received, so T1 applies."""
        return self._state != _IDLE

    def reset(self) -> None:
        self._state = _IDLE
        self._body.clear()
        self._raw.clear()
        self._garbage.clear()

    def expire(self) -> list[DecoderEvent]:
        """Call when T1 passed without a byte: a torn frame becomes a rejection."""
        events: list[DecoderEvent] = []
        if self._state == _GOT_DLE:
            self._garbage.append(DLE)
        elif self._state != _IDLE:
            events.append(FrameRejected("incomplete frame (T1 expired)", bytes(self._raw)))
        self._flush_garbage(events, first=True)
        self._state = _IDLE
        self._body.clear()
        self._raw.clear()
        return events

    def feed(self, data: bytes | bytearray) -> list[DecoderEvent]:
        events: list[DecoderEvent] = []
        for byte in bytes(data):
            self._step(byte, events)
        if self._state in (_IDLE, _GOT_DLE):
            self._flush_garbage(events)
        return events

    def _flush_garbage(self, events: list[DecoderEvent], first: bool = False) -> None:
        if self._garbage:
            item = Garbage(bytes(self._garbage))
            if first:
                events.insert(0, item)
            else:
                events.append(item)
            self._garbage.clear()

    def _start_frame(self) -> None:
        self._state = _BODY
        self._body.clear()
        self._raw[:] = bytes([DLE, STX])

    def _step(self, byte: int, events: list[DecoderEvent]) -> None:
        state = self._state
        if state == _IDLE:
            if byte == DLE:
                self._state = _GOT_DLE
            elif byte in (ACK, NAK):
                self._flush_garbage(events)
                events.append(ControlReceived(byte))
            else:
                self._garbage.append(byte)
                if len(self._garbage) > self._max_body:
                    self._flush_garbage(events)
            return
        if state == _GOT_DLE:
            if byte == STX:
                self._flush_garbage(events)
                self._start_frame()
            elif byte == DLE:
                self._garbage.append(DLE)
            else:
                # A stray DLE: drop it and let the byte be judged on its own.
                self._garbage.append(DLE)
                self._state = _IDLE
                self._step(byte, events)
            return
        self._raw.append(byte)
        if len(self._raw) > 2 * self._max_body + 8:
            events.append(FrameRejected("frame too long", bytes(self._raw[:64])))
            self._state = _IDLE
            self._body.clear()
            self._raw.clear()
            return
        if state == _BODY:
            if byte == DLE:
                self._state = _BODY_DLE
            else:
                self._body.append(byte)
        elif state == _BODY_DLE:
            if byte == DLE:
                self._body.append(DLE)
                self._state = _BODY
            elif byte == ETX:
                self._state = _CRC_LO
            elif byte == STX:
                # The sender gave up on the old frame and started over.
                events.append(FrameRejected("frame restarted", bytes(self._raw[:-2])))
                self._start_frame()
            else:
                events.append(FrameRejected(f"invalid DLE escape {byte:02X}", bytes(self._raw)))
                self._state = _IDLE
                self._body.clear()
                self._raw.clear()
        elif state == _CRC_LO:
            self._crc_lo = byte
            self._state = _CRC_HI
        else:
            got = self._crc_lo | (byte << 8)
            body = bytes(self._body)
            raw = bytes(self._raw)
            self._state = _IDLE
            self._body.clear()
            self._raw.clear()
            if got != frame_crc(body):
                events.append(FrameRejected("bad CRC", raw))
            elif apdu_size(body) != len(body):
                events.append(FrameRejected("APDU length does not match frame", raw))
            else:
                events.append(FrameReceived(body))


class TcpDecoder:
    """Splits a TCP byte stream into APDUs; TCP has no frames, so only lengths delimit."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an APDU not yet complete (for the T3 'arrives too slowly' case)."""
        return len(self._buf)

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            size = apdu_size(self._buf)
            if size is None or len(self._buf) < size:
                return out
            out.append(bytes(self._buf[:size]))
            del self._buf[:size]
