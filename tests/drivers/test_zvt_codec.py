# ZVT codec tests: builders, BMP/TLV parsing, message parsers, result codes and redaction.
from __future__ import annotations

import re

import pytest

from drivers.zvt import (
    Ack,
    Completion,
    IntermediateStatus,
    OtherMessage,
    Outcome,
    PrintLine,
    PtAbort,
    SerialTransport,
    StatusInformation,
    TcpTransport,
    TextBlock,
    TlvObject,
    ZvtClient,
    ZvtParseError,
    ZvtTimeouts,
    bcd_decode,
    bcd_encode,
    build_abort,
    build_end_of_day,
    build_negative_ack,
    build_refund,
    build_registration,
    build_repeat_receipt,
    build_reversal,
    build_status_enquiry,
    build_turnover_totals,
    classify,
    encode_frame,
    encode_tlv,
    mask_card_numbers,
    mask_pan,
    parse_bmps,
    parse_message,
    parse_tlv,
    redact_apdu,
    redact_frame,
    result_message,
)
from drivers.zvt.codes import RESULT_MESSAGES
from drivers.zvt.redact import luhn_valid


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def luhn_complete(prefix: str) -> str:
    """Append the check digit; card-like numbers exist only at run time, never in files."""
    for d in "0123456789":
        if luhn_valid(prefix + d):
            return prefix + d
    raise AssertionError("unreachable")


# --- builders, checked against bytes read off the spec tables ----------------------


def test_command_builders() -> None:
    assert build_reversal(42) == h("06 30 09 00 00 00 87 00 42 49 09 78")
    assert build_reversal(42, amount=1999, currency=None) == h(
        "06 30 0D 00 00 00 87 00 42 04 00 00 00 00 19 99"
    )
    assert build_refund(250, password="123456") == h(
        "06 31 0D 12 34 56 04 00 00 00 00 02 50 49 09 78"
    )
    assert build_end_of_day() == h("06 50 03 00 00 00")
    assert build_turnover_totals("000001") == h("06 10 03 00 00 01")
    assert build_repeat_receipt() == h("06 20 05 00 00 00 03 01")
    assert build_repeat_receipt(print_receipt=False) == h("06 20 05 00 00 00 03 03")
    assert build_status_enquiry() == h("05 01 00")
    assert build_abort() == h("06 B0 00")
    assert build_negative_ack(0x9A) == h("84 9A 00")


def test_registration_with_permitted_commands_tlv() -> None:
    apdu = build_registration(permitted_commands=((0x06, 0xD1), (0x04, 0x0F)), service_byte=0x01)
    # pwd, config BE, CC, 03 service, 06 len [26 len [0A 02 06 D1, 0A 02 04 0F]]
    assert apdu == h("06 00 14 00 00 00 BE 09 78 03 01 06 0A 26 08 0A 02 06 D1 0A 02 04 0F")


def test_builders_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError):
        build_reversal(10000)
    with pytest.raises(ValueError):
        build_refund(0)
    with pytest.raises(ValueError):
        build_end_of_day("12345")
    with pytest.raises(ValueError):
        build_registration(currency=None)  # the TLV needs a currency
    with pytest.raises(ValueError):
        bcd_encode(10**12, 6)
    link = TcpTransport("127.0.0.1", 20007)
    for bad in ({"password": "abc"}, {"currency": 1000}, {"config_byte": 256}):
        with pytest.raises(ValueError):
            ZvtClient(link, **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ZvtTimeouts(t4=0)
    with pytest.raises(ValueError):
        SerialTransport("/dev/null", baudrate=1200)


def test_no_builder_requests_card_data() -> None:
    for apdu in (
        build_registration(),
        build_reversal(1, amount=5),
        build_refund(5),
        build_repeat_receipt(),
    ):
        bmps = {f.bmp for f in parse_bmps(apdu[6:] if apdu[1] != 0x00 else apdu[9:])}
        assert not bmps & {0x22, 0x23, 0x24, 0x2D, 0x3A, 0x0E}


# --- fields --------------------------------------------------------------------------


def test_bcd() -> None:
    assert bcd_encode(1000, 6) == h("00 00 00 00 10 00")
    assert bcd_decode(h("00 00 00 01 23 45")) == 12345
    with pytest.raises(ZvtParseError):
        bcd_decode(h("0A"))
    with pytest.raises(ZvtParseError):
        bcd_decode(b"")


def test_llvar_lllvar_and_fixed_fields() -> None:
    fields = parse_bmps(
        h("27 00 04 00 00 00 00 12 34 8B F0 F4 56 69 73 61 3C F0 F0 F2 41 42 87 00 07")
    )
    assert [(f.bmp, f.value) for f in fields] == [
        (0x27, h("00")),
        (0x04, h("00 00 00 00 12 34")),
        (0x8B, b"Visa"),
        (0x3C, b"AB"),
        (0x87, h("00 07")),
    ]


@pytest.mark.parametrize(
    "data",
    [
        "04 00 00",  # truncated fixed field
        "8B F1 F2 00",  # LLVAR longer than the data
        "8B 31 32",  # length digits without the F nibble
        "8B FA F0",  # length digit above 9
        "FF 00",  # unknown BMP
        "06 83 00 00 00",  # invalid TLV length form
    ],
)
def test_bmp_errors_are_parse_errors(data: str) -> None:
    with pytest.raises(ZvtParseError):
        parse_bmps(h(data))


def test_tlv_lengths_tags_and_nesting() -> None:
    long_value = bytes(200)
    longer_value = bytes(300)
    data = (
        h("1F 07 01 02")  # two-byte tag
        + h("07 81 C8")
        + long_value  # 81 nn
        + h("07 82 01 2C")
        + longer_value  # 82 hi lo (high first)
        + h("25 07 09 01 00 07 02 48 69")  # constructed: attribute + text line
    )
    objs = parse_tlv(data)
    assert [o.tag for o in objs] == [0x1F07, 0x07, 0x07, 0x25]
    assert objs[1].value == long_value and objs[2].value == longer_value
    assert objs[3].children == (TlvObject(0x09, h("00")), TlvObject(0x07, b"Hi"))
    assert encode_tlv(list(objs)) == data


@pytest.mark.parametrize("data", ["1F", "1F 87 87 87 01 00", "07 05 00", "07 80", "07 81"])
def test_tlv_errors_are_parse_errors(data: str) -> None:
    with pytest.raises(ZvtParseError):
        parse_tlv(h(data))


# --- terminal messages ------------------------------------------------------------------

STATUS_APPROVED = (
    "27 00"
    " 04 00 00 00 00 12 34"  # 12.34
    " 0B 00 01 23"  # trace 123
    " 0C 10 15 00 0D 11 27"  # 10:15:00, 27 Nov
    " 19 40"  # offline
    " 22 F0 F8 67 99 99 EE EE EE 12 34"  # masked PAN, 16 digits
    " 29 52 50 00 01"  # terminal id
    " 3B 31 32 33 34 35 36 00 00"  # auth code 123456
    " 87 00 42"  # receipt 42
    " 8A 0A 8B F0 F5 56 69 73 61 00"  # card type 10, name "Visa"
    " 49 09 78"
    " 06 08 1F 16 01 00 13 02 5A 33"  # TLV: extended error, extra result code
)


def test_status_information_approved() -> None:
    data = h(STATUS_APPROVED)
    msg = parse_message(h("04 0F") + bytes([len(data)]) + data)
    assert isinstance(msg, StatusInformation)
    assert msg.result_code == 0
    assert msg.amount == 1234
    assert msg.trace_number == 123
    assert (msg.txn_time, msg.txn_date) == ("101500", "1127")
    assert msg.offline
    assert msg.masked_pan == "679999******1234"
    assert msg.terminal_id == "52500001"
    assert msg.auth_code == "123456"
    assert msg.receipt_number == 42
    assert msg.card_type == 10 and msg.brand == "Visa"
    assert msg.currency == 978
    assert msg.tlv[0].tag == 0x1F16


def test_status_information_masks_a_full_pan_anyway() -> None:
    digits = "6799" + "1" * 11 + "7"  # 16 digits failing Luhn: never a real card
    field = h("22 F0 F8") + bytes.fromhex(digits)
    msg = parse_message(h("04 0F") + bytes([len(field)]) + field)
    assert isinstance(msg, StatusInformation)
    assert msg.masked_pan == "679911******1117"
    assert msg.brand is None


def test_end_of_day_totals() -> None:
    single = h("00 01 00 07")  # receipts 1..7
    single += h("02 00 00 00 00 15 00")  # girocard: 2, 15.00
    single += h("00 00 00 00 00 00 00")  # JCB
    single += h("01 00 00 00 00 09 99")  # Eurocard: 1, 9.99
    single += h("00 00 00 00 00 00 00") * 3
    single += h("03 00 00 00 01 00 00")  # other: 3, 100.00
    data = h("27 00 04 00 00 00 01 24 99 60 F0 F5 F3") + single
    msg = parse_message(h("04 0F") + bytes([len(data)]) + data)
    assert isinstance(msg, StatusInformation) and msg.totals is not None
    totals = msg.totals
    assert (totals.receipt_from, totals.receipt_to) == (1, 7)
    assert [(b.name, b.count, b.total) for b in totals.brands if b.count] == [
        ("girocard", 2, 1500),
        ("Eurocard/Mastercard", 1, 999),
        ("Other cards", 3, 10000),
    ]
    assert totals.count == 6 and totals.total == msg.amount == 12499


def test_other_terminal_messages() -> None:
    assert parse_message(h("80 00 00")) == Ack(0)
    assert parse_message(h("84 00 00")).ok  # type: ignore[union-attr]
    assert parse_message(h("84 1E 03 6F 09 78")) == Ack(0x1E, h("6F 09 78"))
    status = parse_message(h("04 FF 02 0A 01"))
    assert status == IntermediateStatus(0x0A, "Insert card", 1, ())
    assert parse_message(h("04 FF 01 4C")) == IntermediateStatus(
        0x4C, "Card not readable; please remove card"
    )
    with_text = parse_message(h("04 FF 0B 17 00 06 07 24 05 07 03 48 65 79"))
    assert isinstance(with_text, IntermediateStatus) and with_text.display_lines == ("Hey",)
    line = parse_message(h("06 D1 04 81 41 42 43"))
    assert line == PrintLine(0x81, "ABC") and line.is_last  # type: ignore[union-attr]
    feed = parse_message(h("06 D1 02 FF 03"))
    assert isinstance(feed, PrintLine) and feed.lines() == ("", "", "") and not feed.is_last
    block = parse_message(h("06 D3 14 06 12 25 0C 09 01 00 07 02 48 69 07 00 09 01 81 1F 07 01 02"))
    assert block == TextBlock(("Hi", ""), True, 2)
    assert parse_message(h("06 0F 00")) == Completion()
    done = parse_message(h("06 0F 0A 19 00 29 52 50 00 01 49 09 78"))
    assert isinstance(done, Completion) and done.terminal_id == "52500001"
    enquiry = parse_message(h("06 0F 07 F0 F0 F3 53 57 31 00"), status_enquiry=True)
    assert enquiry == Completion(sw_version="SW1", terminal_status=0)
    assert parse_message(h("06 1E 01 6C")) == PtAbort(0x6C)
    assert parse_message(h("06 1E 03 6F 09 78")) == PtAbort(0x6F)
    assert parse_message(h("04 01 00")) == OtherMessage(0x04, 0x01, b"")


def test_print_text_masks_luhn_valid_card_numbers_only() -> None:
    card = luhn_complete("4" + "0" * 14)
    reference = card[:-1] + str((int(card[-1]) + 1) % 10)  # same length, fails Luhn
    text = mask_card_numbers(f"PAN {card} REF {reference}")
    assert text == f"PAN {card[:6]}{'*' * (len(card) - 10)}{card[-4:]} REF {reference}"


# --- result codes ----------------------------------------------------------------------


def test_result_messages_tell_the_cashier_what_to_do() -> None:
    assert result_message(0x05) == "Card declined. Ask for another card or payment method."
    assert "end-of-day" in result_message(0x6A)
    assert result_message(0x42).startswith("Card declined (issuer code 66)")
    assert "call support" in result_message(0xEE)
    for code, message in RESULT_MESSAGES.items():
        assert message.endswith("."), code
        assert len(message) < 120, code


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0x00, Outcome.APPROVED),
        (0x05, Outcome.DECLINED),
        (0x78, Outcome.DECLINED),
        (0x6C, Outcome.ABORTED),
        (0x9C, Outcome.ERROR),
        (0xFF, Outcome.ERROR),
    ],
)
def test_classify(code: int, outcome: Outcome) -> None:
    assert classify(code) is outcome


# --- redaction ------------------------------------------------------------------------------


def test_mask_pan() -> None:
    assert mask_pan("6799111111111117") == "679911******1117"
    assert mask_pan("6799 1111 1111 1117") == "6799 11** **** 1117"
    assert mask_pan("1234567890") == "******7890"
    assert mask_pan("123") == "***"


def test_redact_status_information_hides_card_secrets() -> None:
    digits = "6799" + "1" * 11 + "7"
    data = (
        h("27 00 22 F0 F8")
        + bytes.fromhex(digits)
        + h("23 F0 F3 67 99 11")  # track 2
        + h("0E 29 12")  # expiry
        + h("06 05 1F 09 02 12 34")  # TLV track 2 copy
    )
    apdu = h("04 0F") + bytes([len(data)]) + data
    text = redact_frame(encode_frame(apdu))
    assert text.startswith("frame 04 0F")
    assert digits not in text
    assert "679911******1117" in text
    assert "<track 2 redacted>" in text and "<expiry redacted>" in text
    assert "<1F09><redacted 2 bytes>" in text
    assert redact_frame(apdu) == text.removeprefix("frame ")


def test_redact_print_lines_passwords_and_garbage() -> None:
    digits = "6799" + "1" * 11 + "7"
    line = redact_apdu(h("06 D1") + bytes([1 + len(digits)]) + b"\x00" + digits.encode())
    assert digits not in line and "679911******1117" in line
    assert "12 34 56" not in redact_apdu(build_end_of_day("123456")).lower()
    assert "pwd=******" in redact_apdu(build_end_of_day("123456"))
    junk = bytes.fromhex(digits + "00")
    assert digits not in redact_frame(junk)
    assert redact_frame(b"\x06") == "ACK"
    assert "bad frame" in redact_frame(encode_frame(h("80 00 00"))[:-1] + b"\x00")


def test_redaction_output_never_holds_long_digit_runs() -> None:
    digits = "6799" + "1" * 11 + "7"
    samples = [
        h("06 D3 0B 06 09 25 07 07 05") + digits[:5].encode(),
        h("04 0F 0A 22 F0 F8") + bytes.fromhex(digits)[:7],
        bytes.fromhex(digits),
    ]
    for sample in samples:
        assert not re.search(r"\d{13,}", redact_frame(sample))
