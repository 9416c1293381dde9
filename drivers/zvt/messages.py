# ZVT messages: builders for ECR commands and typed parsers for what the terminal sends back.
"""Builders return bare APDUs (frame them with ``encode_frame`` for serial).

None of the builders can request card data: no track data (BMP 23/24/2D), no CVV
(3A), no manual PAN (22), and no Read Card (06 C0) builder exists at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from .apdu import Apdu, decode_apdu, encode_apdu
from .bmp import (
    TlvObject,
    bcd_decode,
    bcd_encode,
    bmp_map,
    decode_nibbles,
    encode_bmp,
    encode_tlv_container,
    find_all_tlv,
    find_tlv,
    parse_bmps,
    parse_tlv,
    read_var_length,
)
from .codes import TOTALS_BRANDS, card_type_name, intermediate_text
from .errors import ZvtParseError
from .redact import mask_card_numbers, mask_pan

DEFAULT_PASSWORD = "000000"
EUR = 978
# BE: receipts for payments and admin come to us as print lines, we want intermediate
# statuses, and the terminal may start neither payments nor admin on its own.
CONFIG_ECR_PRINTS = 0xBE
PAYMENT_OFFLINE = 0x40

# Commands the terminal may send us (tag 26 of the registration); anything else,
# such as dial-up through the ECR, it must do without us.
DEFAULT_PERMITTED: tuple[tuple[int, int], ...] = (
    (0x04, 0x0F),
    (0x04, 0xFF),
    (0x06, 0x0F),
    (0x06, 0x1E),
    (0x06, 0xD1),
    (0x06, 0xD3),
)


# --- builders -----------------------------------------------------------------


def encode_password(password: str) -> bytes:
    if len(password) != 6 or not password.isdigit():
        raise ValueError("the ZVT password is exactly 6 digits")
    return bytes.fromhex(password)


def encode_currency(currency: int) -> bytes:
    """ISO 4217 numeric code as 2 BCD bytes: 978 -> 09 78."""
    if not 0 < currency <= 999:
        raise ValueError(f"bad ISO 4217 numeric currency code {currency}")
    return bcd_encode(currency, 2)


def encode_amount(amount: int) -> bytes:
    """Minor units as the 6-byte BCD of BMP 04."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError("amount must be a non-negative int of minor units")
    return bcd_encode(amount, 6)


def build_registration(
    password: str = DEFAULT_PASSWORD,
    config_byte: int = CONFIG_ECR_PRINTS,
    currency: int | None = EUR,
    service_byte: int | None = None,
    permitted_commands: tuple[tuple[int, int], ...] = DEFAULT_PERMITTED,
    line_width: int | None = None,
) -> bytes:
    """Registration 06 00: password, config byte, [CC [03 service] [06 TLV]]."""
    data = encode_password(password) + bytes([config_byte & 0xFF])
    tlv: list[TlvObject] = []
    if permitted_commands:
        cmds = tuple(TlvObject(0x0A, bytes(c)) for c in permitted_commands)
        tlv.append(TlvObject(0x26, b"", cmds))
    if line_width is not None:
        tlv.append(TlvObject(0x12, bcd_encode(line_width, 1)))
    if currency is None:
        if service_byte is not None or tlv:
            raise ValueError("the service byte and TLV container need a currency code")
        return encode_apdu(0x06, 0x00, data)
    data += encode_currency(currency)
    if service_byte is not None:
        data += encode_bmp(0x03, bytes([service_byte & 0xFF]))
    if tlv:
        data += encode_tlv_container(tlv)
    return encode_apdu(0x06, 0x00, data)


def build_authorisation(
    amount: int, currency: int | None = EUR, payment_type: int | None = None
) -> bytes:
    """Authorisation 06 01 (a sale): 04 amount [49 CC] [19 payment type]."""
    if amount <= 0:
        raise ValueError("a payment needs a positive amount")
    data = encode_bmp(0x04, encode_amount(amount))
    if currency is not None:
        data += encode_bmp(0x49, encode_currency(currency))
    if payment_type is not None:
        data += encode_bmp(0x19, bytes([payment_type & 0xFF]))
    return encode_apdu(0x06, 0x01, data)


def build_reversal(
    receipt_number: int,
    password: str = DEFAULT_PASSWORD,
    amount: int | None = None,
    currency: int | None = EUR,
) -> bytes:
    """Reversal 06 30: void the payment with this receipt number (BMP 87)."""
    if not 0 <= receipt_number <= 9999:
        raise ValueError("receipt numbers are 4 digits")
    data = encode_password(password) + encode_bmp(0x87, bcd_encode(receipt_number, 2))
    if amount is not None:
        data += encode_bmp(0x04, encode_amount(amount))
    if currency is not None:
        data += encode_bmp(0x49, encode_currency(currency))
    return encode_apdu(0x06, 0x30, data)


def build_refund(
    amount: int, password: str = DEFAULT_PASSWORD, currency: int | None = EUR
) -> bytes:
    """Refund 06 31: money back to the card presented now."""
    if amount <= 0:
        raise ValueError("a refund needs a positive amount")
    data = encode_password(password) + encode_bmp(0x04, encode_amount(amount))
    if currency is not None:
        data += encode_bmp(0x49, encode_currency(currency))
    return encode_apdu(0x06, 0x31, data)


def build_end_of_day(password: str = DEFAULT_PASSWORD) -> bytes:
    return encode_apdu(0x06, 0x50, encode_password(password))


def build_turnover_totals(password: str = DEFAULT_PASSWORD) -> bytes:
    return encode_apdu(0x06, 0x10, encode_password(password))


def build_repeat_receipt(
    password: str = DEFAULT_PASSWORD, status_information: bool = True, print_receipt: bool = True
) -> bytes:
    """Repeat Receipt 06 20; by default the status information comes too, for recovery."""
    service = (0x01 if status_information else 0) | (0 if print_receipt else 0x02)
    return encode_apdu(0x06, 0x20, encode_password(password) + encode_bmp(0x03, bytes([service])))


def build_status_enquiry(password: str | None = None, service_byte: int | None = None) -> bytes:
    data = b""
    if password is not None:
        data = encode_password(password)
        if service_byte is not None:
            data += encode_bmp(0x03, bytes([service_byte & 0xFF]))
    elif service_byte is not None:
        raise ValueError("the status-enquiry service byte needs the password")
    return encode_apdu(0x05, 0x01, data)


def build_abort() -> bytes:
    return encode_apdu(0x06, 0xB0)


def build_ack() -> bytes:
    return encode_apdu(0x80, 0x00)


def build_negative_ack(code: int) -> bytes:
    """84 xx 00: refuse a terminal message; after a status information the PT reverses."""
    return encode_apdu(0x84, code & 0xFF)


# --- parsed terminal messages --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """80 00 (code 0) or 84 xx; 84 00 also means success."""

    code: int
    data: bytes = b""

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True, slots=True)
class IntermediateStatus:
    code: int
    text: str
    timeout_minutes: int | None = None
    display_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BrandTotal:
    name: str
    count: int
    total: int


@dataclass(frozen=True, slots=True)
class TurnoverTotals:
    """BMP 60 of the end-of-day status: receipt range and per-brand count and total."""

    receipt_from: int
    receipt_to: int
    brands: tuple[BrandTotal, ...]

    @property
    def count(self) -> int:
        return sum(b.count for b in self.brands)

    @property
    def total(self) -> int:
        return sum(b.total for b in self.brands)


@dataclass(frozen=True, slots=True)
class StatusInformation:
    """04 0F: the result of a payment, reversal, refund, repeat receipt or end-of-day."""

    result_code: int | None = None
    amount: int | None = None
    currency: int | None = None
    trace_number: int | None = None
    original_trace_number: int | None = None
    receipt_number: int | None = None
    turnover_number: int | None = None
    txn_time: str | None = None
    txn_date: str | None = None
    masked_pan: str | None = None
    card_type: int | None = None
    card_name: str | None = None
    payment_type: int | None = None
    terminal_id: str | None = None
    auth_code: str | None = None
    vu_number: str | None = None
    additional_text: str | None = None
    totals: TurnoverTotals | None = None
    tlv: tuple[TlvObject, ...] = ()

    @property
    def offline(self) -> bool:
        return self.payment_type == PAYMENT_OFFLINE

    @property
    def brand(self) -> str | None:
        return self.card_name or card_type_name(self.card_type)


@dataclass(frozen=True, slots=True)
class PrintLine:
    attribute: int
    text: str
    feed_count: int = 0

    @property
    def is_last(self) -> bool:
        """1xxx xxxx other than 80 (and FF, the line feed) ends a receipt."""
        return bool(self.attribute & 0x80) and self.attribute not in (0x80, 0xFF)

    def lines(self) -> tuple[str, ...]:
        if self.attribute == 0xFF:
            return ("",) * self.feed_count
        return (self.text,)


@dataclass(frozen=True, slots=True)
class TextBlock:
    lines: tuple[str, ...]
    is_last: bool
    receipt_type: int | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    result_code: int | None = None
    status_byte: int | None = None
    terminal_id: str | None = None
    currency: int | None = None
    sw_version: str | None = None
    terminal_status: int | None = None
    tlv: tuple[TlvObject, ...] = ()


@dataclass(frozen=True, slots=True)
class PtAbort:
    """06 1E: the terminal gave up on the command, with the reason."""

    result_code: int | None
    tlv: tuple[TlvObject, ...] = ()


@dataclass(frozen=True, slots=True)
class OtherMessage:
    cls: int
    instr: int
    data: bytes


PtMessage = (
    Ack
    | IntermediateStatus
    | StatusInformation
    | PrintLine
    | TextBlock
    | Completion
    | PtAbort
    | OtherMessage
)


def _text(data: bytes) -> str:
    # The ZVT 8-bit character set is CP437; the 7-bit one is its ASCII half.
    return mask_card_numbers(data.decode("cp437", errors="replace"))


def _int_or_none(fields: dict[int, bytes], bmp: int) -> int | None:
    value = fields.get(bmp)
    return None if value is None else bcd_decode(value)


def _hex_or_none(fields: dict[int, bytes], bmp: int) -> str | None:
    value = fields.get(bmp)
    return None if value is None else value.hex().upper()


def _ascii_or_none(fields: dict[int, bytes], bmp: int) -> str | None:
    value = fields.get(bmp)
    if value is None:
        return None
    text = _text(value.split(b"\x00", 1)[0]).strip()
    return text or None


def parse_totals(value: bytes) -> TurnoverTotals:
    """BMP 60: receipt no. from/to (2 BCD each), then per brand 1-byte count + 6-byte BCD."""
    if len(value) < 4:
        raise ZvtParseError("BMP 60 shorter than its receipt-number range")
    brands = []
    pos = 4
    for name in TOTALS_BRANDS:
        if pos + 7 > len(value):
            break
        brands.append(BrandTotal(name, value[pos], bcd_decode(value[pos + 1 : pos + 7])))
        pos += 7
    return TurnoverTotals(bcd_decode(value[0:2]), bcd_decode(value[2:4]), tuple(brands))


def parse_status_information(data: bytes) -> StatusInformation:
    fields_list = parse_bmps(data)
    fields = bmp_map(fields_list)
    tlv = parse_tlv(fields[0x06]) if 0x06 in fields else ()
    result = fields.get(0x27)
    card_type = fields[0x8A][0] if 0x8A in fields else None
    tag41 = find_tlv(tlv, 0x41)
    if (card_type is None or card_type == 0xFF) and tag41 is not None and tag41.value:
        card_type = int.from_bytes(tag41.value, "big")
    pan = fields.get(0x22)
    payment_type = fields.get(0x19)
    return StatusInformation(
        result_code=result[0] if result is not None else None,
        amount=_int_or_none(fields, 0x04),
        currency=_int_or_none(fields, 0x49),
        trace_number=_int_or_none(fields, 0x0B),
        original_trace_number=_int_or_none(fields, 0x37),
        receipt_number=_int_or_none(fields, 0x87),
        turnover_number=_int_or_none(fields, 0x88),
        txn_time=_hex_or_none(fields, 0x0C),
        txn_date=_hex_or_none(fields, 0x0D),
        masked_pan=mask_pan(decode_nibbles(pan)) if pan is not None else None,
        card_type=card_type,
        card_name=_ascii_or_none(fields, 0x8B),
        payment_type=payment_type[0] if payment_type is not None else None,
        terminal_id=_hex_or_none(fields, 0x29),
        auth_code=_ascii_or_none(fields, 0x3B),
        vu_number=_ascii_or_none(fields, 0x2A),
        additional_text=_ascii_or_none(fields, 0x3C),
        totals=parse_totals(fields[0x60]) if 0x60 in fields else None,
        tlv=tlv,
    )


def _parse_intermediate(data: bytes) -> IntermediateStatus:
    if not data:
        raise ZvtParseError("intermediate status without a status byte")
    code = data[0]
    timeout = None
    tlv: tuple[TlvObject, ...] = ()
    if len(data) >= 2:
        timeout = bcd_decode(data[1:2])
        if len(data) > 2:
            tlv = parse_tlv(bmp_map(parse_bmps(data[2:])).get(0x06, b""))
    lines = tuple(_text(o.value) for t in find_all_tlv(tlv, 0x24) for o in t.children)
    return IntermediateStatus(code, intermediate_text(code), timeout, lines)


def _parse_text_block(data: bytes) -> TextBlock:
    tlv = parse_tlv(bmp_map(parse_bmps(data)).get(0x06, b""))
    lines: list[str] = []
    last = False
    for container in find_all_tlv(tlv, 0x25):
        for obj in container.children:
            if obj.tag == 0x07:
                lines.append(_text(obj.value))
            elif obj.tag == 0x09 and obj.value:
                attr = obj.value[0]
                last = bool(attr & 0x80) and attr not in (0x80, 0xFF)
    receipt_type = find_tlv(tlv, 0x1F07)
    kind = receipt_type.value[0] if receipt_type is not None and receipt_type.value else None
    return TextBlock(tuple(lines), last, kind)


def _parse_completion(data: bytes, status_enquiry: bool) -> Completion:
    if status_enquiry:
        sw_version = None
        pos = 0
        if data and data[0] >> 4 == 0xF:
            length, pos = read_var_length(data, 0, 3)
            sw_version = _text(data[pos : pos + length]).strip()
            pos += length
        if pos >= len(data):
            raise ZvtParseError("status-enquiry completion without a terminal status")
        status = data[pos]
        rest = bmp_map(parse_bmps(data[pos + 1 :]))
        tlv = parse_tlv(rest[0x06]) if 0x06 in rest else ()
        return Completion(sw_version=sw_version, terminal_status=status, tlv=tlv)
    fields = bmp_map(parse_bmps(data))
    result = fields.get(0x27)
    status_field = fields.get(0x19)
    return Completion(
        result_code=result[0] if result is not None else None,
        status_byte=status_field[0] if status_field is not None else None,
        terminal_id=_hex_or_none(fields, 0x29),
        currency=_int_or_none(fields, 0x49),
        tlv=parse_tlv(fields[0x06]) if 0x06 in fields else (),
    )


def _parse_abort(data: bytes) -> PtAbort:
    if not data:
        return PtAbort(None)
    rest = data[1:]
    if rest[:1] not in (b"", b"\x06"):
        rest = rest[2:]  # a bare currency code, sent only with result code 6F
    try:
        fields = bmp_map(parse_bmps(rest))
        tlv = parse_tlv(fields[0x06]) if 0x06 in fields else ()
    except ZvtParseError:
        tlv = ()  # the result code is what matters; extras must not hide it
    return PtAbort(data[0], tlv)


def parse_message(raw: bytes | Apdu, *, status_enquiry: bool = False) -> PtMessage:
    """Decode one APDU from the terminal; raises only ZvtParseError.

    ``status_enquiry`` selects the fixed layout that 06 0F has after 05 01.
    """
    apdu = raw if isinstance(raw, Apdu) else decode_apdu(raw)
    cls, instr, data = apdu.cls, apdu.instr, apdu.data
    if cls == 0x80 or cls == 0x84:
        return Ack(0 if cls == 0x80 else instr, data)
    control = (cls, instr)
    if control == (0x04, 0xFF):
        return _parse_intermediate(data)
    if control == (0x04, 0x0F):
        return parse_status_information(data)
    if control == (0x06, 0xD1):
        if not data:
            return PrintLine(0, "")
        if data[0] == 0xFF:
            return PrintLine(0xFF, "", data[1] if len(data) > 1 else 1)
        return PrintLine(data[0], _text(data[1:]))
    if control == (0x06, 0xD3):
        return _parse_text_block(data)
    if control == (0x06, 0x0F):
        return _parse_completion(data, status_enquiry)
    if control == (0x06, 0x1E):
        return _parse_abort(data)
    return OtherMessage(cls, instr, data)
