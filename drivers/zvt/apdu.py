# ZVT APDU codec (CLASS INSTR LEN data), including the FF extended two-byte length.
from __future__ import annotations

from dataclasses import dataclass

from .errors import ZvtParseError

MAX_DATA = 0xFFFF
# A one-byte length tops out at 254 because FF announces the two-byte form.
MAX_SHORT_DATA = 0xFE
MAX_APDU = 5 + MAX_DATA


@dataclass(frozen=True, slots=True)
class Apdu:
    """One decoded APDU; for answers CLASS/INSTR are CCRC/APRC (80 00, 84 xx)."""

    cls: int
    instr: int
    data: bytes = b""

    @property
    def control(self) -> tuple[int, int]:
        return (self.cls, self.instr)

    def encode(self) -> bytes:
        return encode_apdu(self.cls, self.instr, self.data)


def encode_length(n: int) -> bytes:
    """Length field: one byte up to 254, else FF followed by the length low byte first."""
    if n < 0 or n > MAX_DATA:
        raise ValueError(f"APDU data length {n} out of range")
    if n <= MAX_SHORT_DATA:
        return bytes([n])
    return bytes([0xFF, n & 0xFF, n >> 8])


def encode_apdu(cls: int, instr: int, data: bytes = b"") -> bytes:
    if not (0 <= cls <= 0xFF and 0 <= instr <= 0xFF):
        raise ValueError("CLASS and INSTR must be single bytes")
    return bytes([cls, instr]) + encode_length(len(data)) + bytes(data)


def apdu_size(buf: bytes | bytearray) -> int | None:
    """Total size of the APDU starting at buf[0], or None while the header is incomplete."""
    if len(buf) < 3:
        return None
    if buf[2] != 0xFF:
        return 3 + buf[2]
    if len(buf) < 5:
        return None
    return 5 + (buf[3] | (buf[4] << 8))


def decode_apdu(raw: bytes | bytearray) -> Apdu:
    """Decode exactly one APDU; the length field must match the bytes given."""
    size = apdu_size(raw)
    if size is None:
        raise ZvtParseError(f"APDU too short ({len(raw)} bytes)")
    if size != len(raw):
        raise ZvtParseError(f"APDU length field says {size} bytes, got {len(raw)}")
    header = 3 if raw[2] != 0xFF else 5
    return Apdu(raw[0], raw[1], bytes(raw[header:]))
