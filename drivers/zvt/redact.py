# Log-safe rendering of ZVT frames: card numbers masked, track data, CVV and passwords removed.
"""Raw protocol dumps must be redacted before they reach a log (DESIGN.md section 6).

``redact_frame`` never raises: it is called from logging paths on whatever arrived.
"""

from __future__ import annotations

import re

from .apdu import decode_apdu
from .bmp import (
    BmpField,
    TlvObject,
    decode_nibbles,
    parse_bmps,
    parse_tlv,
)
from .errors import ZvtError
from .framing import DLE, ETX, STX, FrameReceived, SerialDecoder

# Fields that must never be shown, even in part.
SECRET_BMPS: dict[int, str] = {
    0x0E: "expiry",
    0x23: "track 2",
    0x24: "track 3",
    0x2D: "track 1",
    0x2E: "chip data",
    0x3A: "CVV",
    0x3D: "password",
    0x9A: "GeldKarte record",
    0xA7: "EF_ID",
    0xAF: "EF_Info",
    0xD1: "PIN data",
}
SECRET_TAGS: frozenset[int] = frozenset(
    {0x4D, 0x1F08, 0x1F09, 0x1F0A, 0x1F1A, 0x1F31, 0x1F3E, 0x1F5C, 0x1F5D, 0x1F5E}
)
# Leading fixed fields (before any BMPs) per command: (name, size); "pwd" is hidden.
_PREFIX: dict[tuple[int, int], tuple[tuple[str, int], ...]] = {
    (0x06, 0x00): (("pwd", 3), ("config", 1), ("cc", 2)),
    (0x06, 0x10): (("pwd", 3),),
    (0x06, 0x20): (("pwd", 3),),
    (0x06, 0x21): (("pwd", 3),),
    (0x06, 0x30): (("pwd", 3),),
    (0x06, 0x31): (("pwd", 3),),
    (0x06, 0x50): (("pwd", 3),),
    (0x05, 0x01): (("pwd", 3),),
    (0x06, 0x01): (),
    (0x04, 0x0F): (),
    (0x06, 0x0F): (),
    (0x06, 0xD3): (),
    (0x06, 0xB0): (),
    (0x06, 0x1E): (("rc", 1),),
}

_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12,}")


def mask_pan(pan: str) -> str:
    """Keep at most the first 6 and last 4 digits; shorter numbers keep only the last 4."""
    chars = list(pan)
    positions = [i for i, c in enumerate(chars) if c.isdigit() or c == "*"]
    n = len(positions)
    if n >= 13:
        keep = set(positions[:6]) | set(positions[-4:])
    elif n > 4:
        keep = set(positions[-4:])
    else:
        keep = set()
    for i in positions:
        if i not in keep:
            chars[i] = "*"
    return "".join(chars)


def _mask_run(match: re.Match[str]) -> str:
    return mask_pan(match.group(0))


def mask_digit_runs(text: str) -> str:
    """Mask every run of 13 or more digits (spaces/dashes allowed between them)."""
    return _DIGIT_RUN.sub(_mask_run, text)


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_if_card(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = re.sub(r"\D", "", run)
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return mask_pan(run)
    return run


def mask_card_numbers(text: str) -> str:
    """Mask only digit runs that look like card numbers (13-19 digits, Luhn valid).

    Receipt text keeps long reference numbers readable; a real PAN never survives.
    """
    return _DIGIT_RUN.sub(_mask_if_card, text)


def _text(data: bytes) -> str:
    return repr(mask_digit_runs(data.decode("cp437", errors="replace")))


def _render_tlv(objects: tuple[TlvObject, ...]) -> str:
    parts = []
    for obj in objects:
        if obj.tag in SECRET_TAGS:
            body = f"<redacted {len(obj.value)} bytes>"
        elif obj.children:
            body = _render_tlv(obj.children)
        elif obj.tag == 0x07:
            body = _text(obj.value)
        else:
            body = obj.value.hex().upper()
        parts.append(f"<{obj.tag:02X}>{body}")
    return "[" + " ".join(parts) + "]"


def _render_bmp(field: BmpField) -> str:
    label = f"<{field.bmp:02X}>"
    if field.bmp in SECRET_BMPS:
        return f"{label}<{SECRET_BMPS[field.bmp]} redacted>"
    if field.bmp == 0x22:
        try:
            return f"{label}{mask_pan(decode_nibbles(field.value))!r}"
        except ZvtError:
            return f"{label}<card number redacted>"
    if field.bmp in (0x8B, 0x3C, 0x2A, 0x3B):
        return label + _text(field.value.rstrip(b"\x00"))
    if field.bmp == 0x06:
        return label + _render_tlv(parse_tlv(field.value))
    if field.bmp == 0x60 and len(field.value) >= 4:
        # Totals: receipt range, then count/amount per brand, kept readable in logs.
        value = field.value
        parts = [f"receipts {value[0:2].hex()}-{value[2:4].hex()}"]
        for pos in range(4, len(value) - 6, 7):
            parts.append(f"{value[pos]}x{value[pos + 1 : pos + 7].hex()}")
        return label + "[" + " ".join(parts) + "]"
    return label + field.value.hex().upper()


def _masked_hex(data: bytes) -> str:
    return mask_digit_runs(data.hex().upper())


def _render_data(control: tuple[int, int], data: bytes) -> str:
    if control == (0x06, 0xD1) and data:
        return f"attr={data[0]:02X} text={_text(data[1:])}"
    prefix = _PREFIX.get(control)
    if prefix is None:
        return _masked_hex(data) if data else ""
    parts = []
    pos = 0
    for name, size in prefix:
        if pos >= len(data):
            break
        chunk = data[pos : pos + size]
        pos += size
        parts.append(f"{name}=" + ("*" * 6 if name == "pwd" else chunk.hex().upper()))
    rest = data[pos:]
    if control == (0x06, 0x1E) and rest[:1] not in (b"", b"\x06"):
        # An abort may carry a bare currency code before the TLV container.
        parts.append("cc=" + rest[:2].hex().upper())
        rest = rest[2:]
    parts.extend(_render_bmp(f) for f in parse_bmps(rest))
    return " ".join(parts)


def redact_apdu(apdu: bytes) -> str:
    """One line describing an APDU with nothing card-secret in it."""
    try:
        parsed = decode_apdu(apdu)
    except ZvtError:
        return f"<{len(apdu)} bytes, not an APDU> " + _masked_hex(apdu)
    head = f"{parsed.cls:02X} {parsed.instr:02X} len={len(parsed.data)}"
    try:
        body = _render_data(parsed.control, parsed.data)
    except ZvtError:
        body = "<unparsed> " + _masked_hex(parsed.data)
    return mask_digit_runs(f"{head} {body}".rstrip())


def _unstuff(frame: bytes) -> bytes | None:
    """Body of a frame that failed its checks, when its DLE structure still holds."""
    body = bytearray()
    i = 2
    while i < len(frame):
        if frame[i] != DLE:
            body.append(frame[i])
            i += 1
        elif frame[i + 1 : i + 2] == bytes([DLE]):
            body.append(DLE)
            i += 2
        elif frame[i + 1 : i + 2] == bytes([ETX]):
            return bytes(body)
        else:
            return None
    return None


def redact_frame(frame: bytes | bytearray) -> str:
    """Log-safe text for a serial frame (10 02 ...) or a bare APDU as TCP carries it."""
    frame = bytes(frame)
    if frame[:2] == bytes([DLE, STX]):
        events = SerialDecoder().feed(frame)
        apdus = [e.apdu for e in events if isinstance(e, FrameReceived)]
        if len(apdus) == 1:
            return "frame " + redact_apdu(apdus[0])
        body = _unstuff(frame)
        if body is not None:
            return f"<bad frame, {len(frame)} bytes> {redact_apdu(body)}"
        return f"<bad frame, {len(frame)} bytes> " + _masked_hex(frame)
    if len(frame) == 1:
        return {0x06: "ACK", 0x15: "NAK"}.get(frame[0], f"{frame[0]:02X}")
    return redact_apdu(frame)
