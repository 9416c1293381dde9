# ZVT field codecs: BCD numbers, LLVAR/LLLVAR, the BMP table of PA00P015 ch. 13, TLV (BMP 06).
"""Every parser here raises only ``ZvtParseError`` on any input; encoders raise ValueError
for arguments that cannot be encoded (a programming error, not a terminal fault)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import Enum

from .errors import ZvtParseError


class Var(Enum):
    """Variable-length BMP formats; fixed ones are plain byte counts in ``BMP_FORMATS``."""

    LL = 2
    LLL = 3
    TLV = 0


# Summary of utilised BMPs (PA00P015 chapter 13). An unknown BMP cannot be skipped
# because its length is unknown, so it is a parse error rather than a guess.
BMP_FORMATS: dict[int, int | Var] = {
    0x01: 1, 0x02: 1, 0x03: 1, 0x04: 6, 0x05: 1, 0x06: Var.TLV,
    0x0B: 3, 0x0C: 3, 0x0D: 2, 0x0E: 2, 0x17: 2, 0x19: 1,
    0x22: Var.LL, 0x23: Var.LL, 0x24: Var.LLL, 0x27: 1, 0x29: 4, 0x2A: 15,
    0x2D: Var.LL, 0x2E: Var.LLL, 0x37: 3, 0x3A: 2, 0x3B: 8, 0x3C: Var.LLL,
    0x3D: 3, 0x49: 2, 0x4C: Var.LL, 0x60: Var.LLL,
    0x70: 4, 0x71: 4, 0x72: 1, 0x73: 1, 0x74: 1, 0x75: 1,
    0x87: 2, 0x88: 3, 0x8A: 1, 0x8B: Var.LL, 0x8C: 1, 0x9A: Var.LLL,
    0xA0: 1, 0xA7: Var.LL, 0xAA: 3, 0xAF: Var.LLL, 0xBA: 5,
    0xD0: 1, 0xD1: Var.LL, 0xD2: 1, 0xD3: 1,
    0xE0: 1, 0xE1: Var.LL, 0xE2: Var.LL, 0xE3: Var.LL, 0xE4: Var.LL,
    0xE5: Var.LL, 0xE6: Var.LL, 0xE7: Var.LL, 0xE8: Var.LL,
    0xE9: 1, 0xEA: 1, 0xEB: 8,
    0xF0: 1, 0xF1: Var.LL, 0xF2: Var.LL, 0xF3: Var.LL, 0xF4: Var.LL,
    0xF5: Var.LL, 0xF6: Var.LL, 0xF7: Var.LL, 0xF8: Var.LL,
    0xF9: 1, 0xFA: 1, 0xFB: 1, 0xFC: 1, 0xFD: 1,
}  # fmt: skip

MAX_TLV_DEPTH = 8


# --- BCD ------------------------------------------------------------------


def bcd_encode(value: int, nbytes: int) -> bytes:
    """Packed BCD, right aligned and zero padded: 1000 in 6 bytes -> 00 00 00 00 10 00."""
    digits = str(value)
    if value < 0 or len(digits) > 2 * nbytes:
        raise ValueError(f"{value} does not fit in {nbytes} BCD bytes")
    return bytes.fromhex(digits.rjust(2 * nbytes, "0"))


def bcd_decode(data: bytes) -> int:
    """Strict packed BCD to int; a nibble above 9 is an error, not a guess."""
    text = data.hex()
    if not text:
        raise ZvtParseError("empty BCD field")
    if not text.isdigit():
        raise ZvtParseError(f"not BCD: {text.upper()}")
    return int(text)


def bcd_text(data: bytes) -> str:
    """Packed BCD as a digit string, leading zeros kept (dates, terminal ids)."""
    text = data.hex()
    if not text.isdigit():
        raise ZvtParseError(f"not BCD: {text.upper()}")
    return text


# --- LLVAR / LLLVAR -------------------------------------------------------


def encode_var(data: bytes, digits: int) -> bytes:
    """LLVAR (2) or LLLVAR (3) prefix: the length's decimal digits in F-high nibbles."""
    if len(data) >= 10**digits:
        raise ValueError(f"{len(data)} bytes too long for a {digits}-digit length")
    return bytes(0xF0 | int(d) for d in str(len(data)).rjust(digits, "0")) + data


def read_var_length(data: bytes, pos: int, digits: int) -> tuple[int, int]:
    """Read an Fx Fy (Fz) length at pos; returns (length, position after it)."""
    if pos + digits > len(data):
        raise ZvtParseError("truncated LLVAR length")
    length = 0
    for byte in data[pos : pos + digits]:
        if byte >> 4 != 0xF or byte & 0x0F > 9:
            raise ZvtParseError(f"bad LLVAR length byte {byte:02X}")
        length = length * 10 + (byte & 0x0F)
    return length, pos + digits


# --- TLV (BMP 06) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlvObject:
    """One data object; ``children`` is filled for constructed tags (bit 6 of the first byte)."""

    tag: int
    value: bytes
    children: tuple[TlvObject, ...] = ()

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)

    def find(self, tag: int) -> TlvObject | None:
        return find_tlv(self.children, tag)


def encode_tlv_length(n: int) -> bytes:
    """TLV length: 00-7F, 81 nn, or 82 hi lo (high byte first, unlike the APDU length)."""
    if n < 0 or n > 0xFFFF:
        raise ValueError(f"TLV length {n} out of range")
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def read_tlv_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ZvtParseError("truncated TLV length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x81:
        if pos + 2 > len(data):
            raise ZvtParseError("truncated TLV length")
        return data[pos + 1], pos + 2
    if first == 0x82:
        if pos + 3 > len(data):
            raise ZvtParseError("truncated TLV length")
        return (data[pos + 1] << 8) | data[pos + 2], pos + 3
    raise ZvtParseError(f"invalid TLV length byte {first:02X}")


def encode_tag(tag: int) -> bytes:
    if tag < 0:
        raise ValueError("negative TLV tag")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_tlv(objects: tuple[TlvObject, ...] | list[TlvObject]) -> bytes:
    out = bytearray()
    for obj in objects:
        value = encode_tlv(obj.children) if obj.children else obj.value
        out += encode_tag(obj.tag) + encode_tlv_length(len(value)) + value
    return bytes(out)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ZvtParseError("truncated TLV tag")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        for count in range(3):
            if pos >= len(data):
                raise ZvtParseError("truncated multi-byte TLV tag")
            byte = data[pos]
            tag = (tag << 8) | byte
            pos += 1
            if not byte & 0x80:
                break
            if count == 2:
                raise ZvtParseError("TLV tag longer than 4 bytes")
    return tag, pos


def parse_tlv(data: bytes, _depth: int = 0) -> tuple[TlvObject, ...]:
    """Parse a list of data objects, descending into constructed ones."""
    if _depth > MAX_TLV_DEPTH:
        raise ZvtParseError("TLV nested too deeply")
    out: list[TlvObject] = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_tag(data, pos)
        length, pos = read_tlv_length(data, pos)
        if pos + length > len(data):
            raise ZvtParseError(f"TLV tag {tag:X} runs past the end of its container")
        value = bytes(data[pos : pos + length])
        pos += length
        obj = TlvObject(tag, value)
        if obj.constructed:
            # Some terminals set the constructed bit on opaque data; then keep the bytes.
            with contextlib.suppress(ZvtParseError):
                obj = TlvObject(tag, value, parse_tlv(value, _depth + 1))
        out.append(obj)
    return tuple(out)


def find_tlv(objects: tuple[TlvObject, ...], tag: int) -> TlvObject | None:
    """First object with this tag, searching depth first."""
    for obj in objects:
        if obj.tag == tag:
            return obj
        hit = find_tlv(obj.children, tag)
        if hit is not None:
            return hit
    return None


def find_all_tlv(objects: tuple[TlvObject, ...], tag: int) -> list[TlvObject]:
    hits: list[TlvObject] = []
    for obj in objects:
        if obj.tag == tag:
            hits.append(obj)
        hits.extend(find_all_tlv(obj.children, tag))
    return hits


def encode_tlv_container(objects: tuple[TlvObject, ...] | list[TlvObject]) -> bytes:
    """BMP 06 with its TLV-style length (not LLLVAR) around a list of data objects."""
    body = encode_tlv(objects)
    return bytes([0x06]) + encode_tlv_length(len(body)) + body


# --- BMP streams -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BmpField:
    """One BMP and its value without the LLVAR/TLV length prefix."""

    bmp: int
    value: bytes


def parse_bmps(data: bytes) -> tuple[BmpField, ...]:
    """Split a data block of BMP-prefixed fields per the BMP table."""
    out: list[BmpField] = []
    pos = 0
    data = bytes(data)
    while pos < len(data):
        bmp = data[pos]
        pos += 1
        fmt = BMP_FORMATS.get(bmp)
        if fmt is None:
            raise ZvtParseError(f"unknown BMP {bmp:02X} at offset {pos - 1}")
        if fmt is Var.TLV:
            length, pos = read_tlv_length(data, pos)
        elif isinstance(fmt, Var):
            length, pos = read_var_length(data, pos, fmt.value)
        else:
            length = fmt
        if pos + length > len(data):
            raise ZvtParseError(f"BMP {bmp:02X} truncated")
        out.append(BmpField(bmp, data[pos : pos + length]))
        pos += length
    return tuple(out)


def bmp_map(fields: tuple[BmpField, ...]) -> dict[int, bytes]:
    """First value of each BMP; later duplicates are ignored as the spec gives no meaning."""
    out: dict[int, bytes] = {}
    for field in fields:
        out.setdefault(field.bmp, field.value)
    return out


def encode_bmp(bmp: int, value: bytes) -> bytes:
    fmt = BMP_FORMATS.get(bmp)
    if fmt is None:
        raise ValueError(f"unknown BMP {bmp:02X}")
    if fmt is Var.TLV:
        return bytes([bmp]) + encode_tlv_length(len(value)) + value
    if isinstance(fmt, Var):
        return bytes([bmp]) + encode_var(value, fmt.value)
    if len(value) != fmt:
        raise ValueError(f"BMP {bmp:02X} needs {fmt} bytes, got {len(value)}")
    return bytes([bmp]) + value


def decode_nibbles(data: bytes) -> str:
    """Digits of a BCD-ish field where E marks a hidden digit and trailing F pads."""
    out = []
    for nib in data.hex().upper():
        if nib.isdigit():
            out.append(nib)
        elif nib == "E":
            out.append("*")
        elif nib == "F":
            continue
        elif nib == "D":
            out.append("=")
        else:
            raise ZvtParseError(f"unexpected nibble {nib} in card number")
    return "".join(out)
