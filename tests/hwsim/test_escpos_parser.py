# purpose: unit and property tests of the simulator's ESC/POS stream parser (hwsim.escpos).
from __future__ import annotations

from hwsim.escpos import (
    BarcodePrinted,
    Cut,
    EscPosParser,
    Event,
    ImagePrinted,
    Initialized,
    Kick,
    QrPrinted,
    StatusRequest,
    TextLine,
    decode_code128,
)
from hypothesis import given, settings
from hypothesis import strategies as st

ESC = b"\x1b"
GS = b"\x1d"
DLE = b"\x10"


def parse(data: bytes) -> list[Event]:
    parser = EscPosParser()
    return parser.feed(data)


def lines(events: list[Event]) -> list[TextLine]:
    return [e for e in events if isinstance(e, TextLine)]


def test_plain_text_lines_default_cp437() -> None:
    events = parse(b"hello\nw\x94rld\n")
    assert [line.text for line in lines(events)] == ["hello", "wörld"]
    assert lines(events)[0].code_page == 0


def test_code_page_switch_decodes_euro_and_accents() -> None:
    events = parse(ESC + b"t\x13" + "Café 12,99 €\n".encode("cp858"))
    assert lines(events)[0].text == "Café 12,99 €"
    events = parse(ESC + b"t\x10" + "Größe €\n".encode("cp1252"))
    assert lines(events)[0].text == "Größe €"


def test_styles_apply_to_the_line_they_start() -> None:
    data = (
        ESC + b"a\x01" + ESC + b"!\x10" + ESC + b"E\x01" + b"Title\n"
        + ESC + b"@" + b"plain\n"
        + GS + b"!\x11" + b"big\n"
        + ESC + b"a2" + b"right\n"
    )  # fmt: skip
    title, plain, big, right = lines(parse(data))
    assert (title.align, title.bold, title.height, title.width) == ("center", True, 2, 1)
    assert (plain.align, plain.bold, plain.height) == ("left", False, 1)
    assert (big.width, big.height) == (2, 2)
    assert right.align == "right"


def test_esc_bang_sets_bold_width_height_underline() -> None:
    (line,) = lines(parse(ESC + b"!\xb8" + b"x\n"))
    assert (line.bold, line.width, line.height, line.underline) == (True, 2, 2, True)


def test_feed_and_cut() -> None:
    events = parse(b"last" + ESC + b"d\x03" + GS + b"V\x01" + b"next" + GS + b"VA\x10")
    assert lines(events)[0].text == "last"
    assert len(lines(events)) == 4  # "last" + two more feeds + "next" flushed by the cut
    cuts = [e for e in events if isinstance(e, Cut)]
    assert cuts == [Cut(partial=True), Cut(partial=False)]


def test_barcode_function_b_code128_with_code_sets() -> None:
    payload = b"{Bs1-t1-{{42{C\x0c\x22"
    events = parse(GS + b"h\x40" + GS + b"w\x02" + GS + b"kI" + bytes([len(payload)]) + payload)
    assert events == [BarcodePrinted("CODE128", "s1-t1-{421234")]
    assert decode_code128(b"{A") == ""


def test_barcode_function_a_is_nul_terminated() -> None:
    events = parse(GS + b"k\x02" + b"4006381333931\x00" + b"after\n")
    assert events[0] == BarcodePrinted("EAN13", "4006381333931")
    assert lines(events)[0].text == "after"


def test_qr_store_then_print() -> None:
    data = b"s1-t1-000042"
    store = GS + b"(k" + bytes([len(data) + 3, 0]) + b"1P0" + data
    events = parse(
        GS + b"(k\x04\x001A2\x00" + GS + b"(k\x03\x001C\x05" + store + GS + b"(k\x03\x001Q0"
    )
    assert events == [QrPrinted("s1-t1-000042")]


def test_raster_image_gs_v_0() -> None:
    rows = bytes([0b1000_0001, 0xFF]) * 3
    (event,) = parse(GS + b"v0\x00\x02\x00\x03\x00" + rows)
    assert isinstance(event, ImagePrinted)
    img = event.image
    assert (img.width, img.height, img.data) == (16, 3, rows)
    pil = img.to_image()
    assert pil.getpixel((0, 0)) == 0 and pil.getpixel((1, 0)) == 255  # 1 bits are black


def test_graphics_gs_paren_l_store_and_print() -> None:
    raster = b"\xf0" * 4  # 8 dots wide, 4 rows
    body = b"0p" + b"0\x01\x011" + b"\x08\x00\x04\x00" + raster
    data = GS + b"(L" + bytes([len(body), 0]) + body + GS + b"(L\x02\x0002"
    (event,) = parse(data)
    assert isinstance(event, ImagePrinted) and event.image.data == raster


def test_kicks_and_status_requests() -> None:
    events = parse(ESC + b"p\x00\x32\x32" + ESC + b"p1\x19\x19" + DLE + b"\x14\x01\x00\x02")
    assert events == [Kick(2, 100, 100), Kick(5, 50, 50), Kick(2, 200, 200)]
    events = parse(DLE + b"\x04\x01" + DLE + b"\x04\x04" + DLE + b"\x04\x09")
    assert events == [StatusRequest(1), StatusRequest(4)]


def test_init_resets_modes() -> None:
    parser = EscPosParser()
    events = parser.feed(ESC + b"t\x13" + ESC + b"E\x01" + ESC + b"@")
    assert events == [Initialized()]
    assert (parser.code_page, parser.bold) == (0, False)


def test_unknown_commands_are_skipped() -> None:
    events = parse(ESC + b"\x01" + GS + b"\xfe" + b"\x1c\x99" + b"ok\n")
    assert [line.text for line in lines(events)] == ["ok"]
    # A stray DLE is a lone control byte: the byte after it prints.
    assert [line.text for line in lines(parse(DLE + b"ok\n"))] == ["ok"]


def test_esc_bang_replaces_all_modes() -> None:
    (line,) = lines(parse(ESC + b"E\x01" + ESC + b"!\x10" + b"x\n"))
    assert (line.bold, line.height) == (False, 2)


def test_incomplete_command_waits_for_more_bytes() -> None:
    parser = EscPosParser()
    assert parser.feed(GS + b"kI\x05ab") == []
    assert parser.feed(b"cde") == [BarcodePrinted("CODE128", "abcde")]
    assert parser.feed(DLE) == []
    assert parser.feed(b"\x04") == []
    assert parser.feed(b"\x02") == [StatusRequest(2)]


def test_absurd_image_header_does_not_swallow_the_stream() -> None:
    events = parse(GS + b"v0\x00\xff\xff\xff\xff" + b"still here\n")
    assert [line.text for line in lines(events)] == ["still here"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_escape(data: bytes) -> None:
    parser = EscPosParser()
    events = parser.feed(data)
    assert all(isinstance(e, Event) for e in events)
    parser.feed(b"\n")
    parser.flush_line()


command_bytes = st.sampled_from([b"\x1b", b"\x1d", b"\x10", b"\x1c", b"\x00", b"\n", b"!", b"k"])
streams = st.lists(st.one_of(command_bytes, st.binary(max_size=6)), max_size=80).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(streams, st.lists(st.integers(min_value=1, max_value=16), max_size=40))
def test_chunking_does_not_change_what_is_printed(data: bytes, cuts: list[int]) -> None:
    whole = EscPosParser().feed(data)
    parser = EscPosParser()
    chunked: list[Event] = []
    pos = 0
    for size in cuts:
        chunked += parser.feed(data[pos : pos + size])
        pos += size
    chunked += parser.feed(data[pos:])
    assert chunked == whole
