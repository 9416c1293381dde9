# ZVT property tests: random and mutated bytes never escape the codecs' declared error type.
from __future__ import annotations

import contextlib
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.zvt import (
    ControlReceived,
    FrameReceived,
    FrameRejected,
    Garbage,
    SerialDecoder,
    TcpDecoder,
    ZvtParseError,
    encode_apdu,
    encode_frame,
    parse_bmps,
    parse_message,
    parse_tlv,
    redact_frame,
)

# No example database: nothing generated here is written into the work tree.
FAST = settings(
    database=None,
    deadline=1000,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)

apdus = st.builds(
    encode_apdu,
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=600),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for point in [*points, len(data)]:
        out.append(data[last:point])
        last = point
    return out


@FAST
@given(st.binary(max_size=2000), st.lists(st.integers(0, 5000), max_size=8))
def test_serial_decoder_never_raises(data: bytes, cuts: list[int]) -> None:
    dec = SerialDecoder()
    events = []
    for chunk in chunked(data, cuts):
        events += dec.feed(chunk)
    events += dec.expire()
    assert not dec.in_frame
    kinds = (FrameReceived, FrameRejected, ControlReceived, Garbage)
    assert all(isinstance(e, kinds) for e in events)


@FAST
@given(st.lists(apdus, min_size=1, max_size=4), st.lists(st.integers(0, 5000), max_size=8))
def test_frames_survive_any_chunking(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b"\x06" + encode_frame(a) for a in items)
    dec = SerialDecoder()
    events = []
    for chunk in chunked(stream, cuts):
        events += dec.feed(chunk)
    assert [e.apdu for e in events if isinstance(e, FrameReceived)] == items
    assert sum(isinstance(e, ControlReceived) for e in events) == len(items)


@FAST
@given(apdus, st.data())
def test_any_single_body_byte_change_is_caught(apdu: bytes, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(apdu))
    body_end = len(wire) - 4
    # Positions inside the stuffed body that are not DLE (DLEs change the framing itself).
    positions = [i for i in range(2, body_end) if wire[i] != 0x10]
    if not positions:
        return
    pos = data.draw(st.sampled_from(positions))
    new = data.draw(st.integers(0, 255).filter(lambda b: b not in (0x10, wire[pos])))
    wire[pos] = new
    events = SerialDecoder().feed(bytes(wire))
    assert not any(isinstance(e, FrameReceived) for e in events)
    assert any(isinstance(e, FrameRejected) for e in events)


@FAST
@given(st.binary(max_size=3000), st.lists(st.integers(0, 5000), max_size=8))
def test_tcp_decoder_never_raises_and_keeps_bytes(data: bytes, cuts: list[int]) -> None:
    dec = TcpDecoder()
    out = []
    for chunk in chunked(data, cuts):
        out += dec.feed(chunk)
    assert b"".join(out) + data[len(data) - dec.pending :] == data


@FAST
@given(st.binary(max_size=400))
def test_bmp_and_tlv_parsers_raise_only_parse_errors(data: bytes) -> None:
    for parser in (parse_bmps, parse_tlv):
        with contextlib.suppress(ZvtParseError):
            parser(data)


STATUS = bytes.fromhex(
    "27 00 04 00 00 00 00 12 34 0B 00 01 23 0C 10 15 00 0D 11 27 19 60"
    " 22 F0 F8 67 99 99 EE EE EE 12 34 29 52 50 00 01 3B 31 32 33 34 35 36 00 00"
    " 87 00 42 8A 0A 8B F0 F5 56 69 73 61 00 06 08 1F 16 01 00 13 02 5A 33"
)


@FAST
@given(st.data())
def test_mutated_messages_raise_only_parse_errors(data: st.DataObject) -> None:
    body = bytearray(STATUS)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    control = data.draw(
        st.sampled_from(["04 0F", "04 FF", "06 D1", "06 D3", "06 0F", "06 1E", "80 00", "84 1E"])
    )
    for payload in (bytes(body), bytes(body[:cut])):
        raw = encode_apdu(*bytes.fromhex(control), payload)
        for enquiry in (False, True):
            with contextlib.suppress(ZvtParseError):
                parse_message(raw, status_enquiry=enquiry)


@FAST
@given(st.binary(max_size=300))
def test_random_apdus_parse_or_raise_parse_error(data: bytes) -> None:
    with contextlib.suppress(ZvtParseError):
        parse_message(data)


@FAST
@given(st.one_of(st.binary(max_size=300), apdus.map(encode_frame), apdus))
def test_redaction_never_raises_nor_leaks_long_digit_runs(data: bytes) -> None:
    text = redact_frame(data)
    assert isinstance(text, str)
    assert not re.search(r"\d(?:[ -]?\d){12,}", text.replace("*", "x"))
