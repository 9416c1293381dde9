# ZVT framing tests: frames worked out by hand from PA00P016, then the decoders' edge cases.
from __future__ import annotations

import binascii

import pytest

from drivers.zvt import (
    ControlReceived,
    FrameReceived,
    FrameRejected,
    Garbage,
    SerialDecoder,
    TcpDecoder,
    ZvtParseError,
    build_ack,
    build_authorisation,
    build_registration,
    crc16_kermit,
    decode_apdu,
    encode_apdu,
    encode_frame,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def kermit_by_hand(data: bytes) -> int:
    """CRC-16/KERMIT spelled out bit by bit: reflected x^16+x^12+x^5+1, init 0, no final XOR."""
    crc = 0
    for byte in data:
        for bit in range(8):
            incoming = (byte >> bit) & 1
            feedback = (crc & 1) ^ incoming
            crc >>= 1
            if feedback:
                crc ^= 0x8408
    return crc


def kermit_via_stdlib(data: bytes) -> int:
    """The same CRC from binascii's XMODEM by mirroring every byte and the result."""

    def mirror(value: int, bits: int) -> int:
        return int(f"{value:0{bits}b}"[::-1], 2)

    return mirror(binascii.crc_hqx(bytes(mirror(b, 8) for b in data), 0), 16)


def test_crc_check_value_is_kermit_not_xmodem() -> None:
    assert crc16_kermit(b"123456789") == 0x2189
    assert kermit_by_hand(b"123456789") == 0x2189
    assert kermit_via_stdlib(b"123456789") == 0x2189
    # Plain XMODEM, which the spec's wording suggests, gives other bytes on the wire.
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3


# Each frame: DLE STX, APDU (DLE doubled), DLE ETX, CRC low, CRC high; the CRC covers
# the unstuffed APDU plus ETX.
HAND_FRAMES = [
    # Positive answer 80 00 00; the well-known "F5 1F" of every ZVT trace.
    (h("80 00 00"), h("10 02 80 00 00 10 03 F5 1F")),
    # Registration: password 000000, config BE, currency 09 78 (EUR).
    (h("06 00 06 00 00 00 BE 09 78"), h("10 02 06 00 06 00 00 00 BE 09 78 10 03 3C AA")),
    # Authorisation of 10.00 EUR: amount BCD 00 00 00 00 10 00 holds a DLE to double.
    (
        h("06 01 0A 04 00 00 00 00 10 00 49 09 78"),
        h("10 02 06 01 0A 04 00 00 00 00 10 10 00 49 09 78 10 03 27 60"),
    ),
]


@pytest.mark.parametrize(("apdu", "wire"), HAND_FRAMES)
def test_hand_computed_frames(apdu: bytes, wire: bytes) -> None:
    crc_lo, crc_hi = wire[-2], wire[-1]
    expected = kermit_by_hand(apdu + b"\x03")
    assert crc_lo == expected & 0xFF
    assert crc_hi == expected >> 8
    assert kermit_via_stdlib(apdu + b"\x03") == expected
    assert encode_frame(apdu) == wire
    events = SerialDecoder().feed(wire)
    assert events == [FrameReceived(apdu)]


def test_builders_match_the_hand_frames() -> None:
    assert build_ack() == HAND_FRAMES[0][0]
    assert build_registration(permitted_commands=()) == HAND_FRAMES[1][0]
    assert build_authorisation(1000) == HAND_FRAMES[2][0]


def test_crc_bytes_are_never_stuffed() -> None:
    # Find an APDU whose CRC contains a DLE byte; the frame must carry it single.
    for amount in range(1, 5000):
        apdu = build_authorisation(amount, currency=None)
        crc = kermit_by_hand(apdu + b"\x03")
        if 0x10 in (crc & 0xFF, crc >> 8) and 0x10 not in apdu:
            break
    else:
        pytest.fail("no APDU with a DLE in its CRC found")
    wire = encode_frame(apdu)
    assert wire == b"\x10\x02" + apdu + b"\x10\x03" + bytes([crc & 0xFF, crc >> 8])
    assert SerialDecoder().feed(wire) == [FrameReceived(apdu)]


def test_decoder_byte_by_byte_with_acks_and_garbage() -> None:
    dec = SerialDecoder()
    apdu = HAND_FRAMES[2][0]
    stream = b"\x06" + b"xy" + encode_frame(apdu) + b"\x15"
    events = []
    for i in range(len(stream)):
        events += dec.feed(stream[i : i + 1])
    # Garbage is reported per feed call, so byte-wise feeding splits it.
    assert events == [
        ControlReceived(0x06),
        Garbage(b"x"),
        Garbage(b"y"),
        FrameReceived(apdu),
        ControlReceived(0x15),
    ]
    assert not dec.in_frame


def test_bad_crc_is_rejected_and_decoder_recovers() -> None:
    good = encode_frame(HAND_FRAMES[1][0])
    bad = good[:-1] + bytes([good[-1] ^ 0x01])
    events = SerialDecoder().feed(bad + good)
    assert isinstance(events[0], FrameRejected)
    assert events[0].reason == "bad CRC"
    assert events[1] == FrameReceived(HAND_FRAMES[1][0])


def test_invalid_escape_and_restart() -> None:
    dec = SerialDecoder()
    events = dec.feed(h("10 02 06 01 10 44 00"))
    assert isinstance(events[0], FrameRejected)
    assert "escape" in events[0].reason
    # A new DLE STX inside a frame abandons the old one and starts over.
    events = dec.feed(h("10 02 06 01") + encode_frame(build_ack()))
    assert [type(e) for e in events] == [FrameRejected, FrameReceived]


def test_length_field_must_match_frame() -> None:
    apdu = h("80 00 02 01")  # says two data bytes, carries one
    events = SerialDecoder().feed(encode_frame(apdu))
    assert isinstance(events[0], FrameRejected)


def test_t1_expiry_turns_a_torn_frame_into_a_rejection() -> None:
    dec = SerialDecoder()
    assert dec.feed(encode_frame(build_ack())[:5]) == []
    assert dec.in_frame
    events = dec.expire()
    assert len(events) == 1 and isinstance(events[0], FrameRejected)
    assert not dec.in_frame
    assert dec.expire() == []


def test_extended_length_apdu_round_trip() -> None:
    data = bytes(range(256)) * 2  # 512 bytes, includes 0x10 twice per 256
    apdu = encode_apdu(0x06, 0xD3, data)
    assert apdu[:5] == h("06 D3 FF 00 02")  # FF, then 512 low byte first
    assert decode_apdu(apdu).data == data
    assert SerialDecoder().feed(encode_frame(apdu)) == [FrameReceived(apdu)]
    assert encode_apdu(0x06, 0xD3, bytes(254))[2] == 0xFE
    assert encode_apdu(0x06, 0xD3, bytes(255))[2:5] == h("FF FF 00")


def test_decode_apdu_rejects_wrong_lengths() -> None:
    with pytest.raises(ZvtParseError):
        decode_apdu(h("80 00"))
    with pytest.raises(ZvtParseError):
        decode_apdu(h("80 00 01"))
    with pytest.raises(ZvtParseError):
        decode_apdu(h("80 00 00 00"))


def test_tcp_decoder_splits_at_every_position() -> None:
    stream = build_ack() + build_authorisation(1234) + encode_apdu(0x06, 0xD3, bytes(300))
    for cut in range(len(stream) + 1):
        dec = TcpDecoder()
        got = dec.feed(stream[:cut]) + dec.feed(stream[cut:])
        assert got == [build_ack(), build_authorisation(1234), encode_apdu(0x06, 0xD3, bytes(300))]
        assert dec.pending == 0
