# LineFramer: suffixes, partial lines, overlong and garbage lines, timeouts, config bounds.
from __future__ import annotations

import pytest

from drivers.scanner import (
    Dropped,
    DropReason,
    FramingConfig,
    GarbagePolicy,
    Line,
    LineFramer,
    ScannerConfigError,
    StalePolicy,
    Suffix,
)


def framer(**kwargs: object) -> LineFramer:
    return LineFramer(FramingConfig(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("suffix", "wire"),
    [
        (Suffix.CR, b"4006381333931\r12\r"),
        (Suffix.LF, b"4006381333931\n12\n"),
        (Suffix.CRLF, b"4006381333931\r\n12\r\n"),
        (Suffix.TAB, b"4006381333931\t12\t"),
    ],
)
def test_each_suffix_ends_a_scan(suffix: Suffix, wire: bytes) -> None:
    assert framer(suffix=suffix).feed(wire) == [Line("4006381333931"), Line("12")]


def test_a_partial_line_waits_for_its_suffix() -> None:
    f = framer(suffix=Suffix.CRLF)
    assert f.feed(b"40063") == []
    assert f.feed(b"81333931\r") == []
    assert f.pending == "4006381333931"
    assert f.feed(b"\n") == [Line("4006381333931")]


def test_str_input_from_a_key_decoder_frames_the_same() -> None:
    assert framer().feed("ABC-12/3.4\r") == [Line("ABC-12/3.4")]


def test_the_other_line_end_is_skipped_with_a_one_character_suffix() -> None:
    assert framer(suffix=Suffix.CR).feed(b"1\r\n2\r\n") == [Line("1"), Line("2")]
    assert framer(suffix=Suffix.LF).feed(b"1\r\n2\r\n") == [Line("1"), Line("2")]


def test_a_lone_cr_inside_a_crlf_line_is_garbage() -> None:
    assert framer(suffix=Suffix.CRLF).feed(b"12\r34\r\n") == [Dropped(DropReason.GARBAGE, "12\r34")]


def test_empty_lines_are_ignored() -> None:
    assert framer().feed(b"\r\r7\r") == [Line("7")]


def test_an_overlong_line_is_dropped_once_and_the_next_line_is_fine() -> None:
    f = framer(max_length=8)
    out = f.feed(b"123456789012345\r42\r")
    assert out == [Dropped(DropReason.OVERLONG, "12345678"), Line("42")]


def test_a_line_of_exactly_max_length_is_kept() -> None:
    assert framer(max_length=4).feed(b"1234\r") == [Line("1234")]


def test_an_overlong_line_without_suffix_is_reported_before_the_suffix_comes() -> None:
    f = framer(max_length=4)
    assert f.feed(b"123456") == [Dropped(DropReason.OVERLONG, "1234")]
    assert f.feed(b"7890\r5\r") == [Line("5")]


def test_garbage_rejects_the_whole_line_by_default() -> None:
    out = framer().feed(b"12\x0034\r\xff\xfe\r5\r")
    assert out == [
        Dropped(DropReason.GARBAGE, "12\x0034"),
        Dropped(DropReason.GARBAGE, "\ufffd\ufffd"),
        Line("5"),
    ]


def test_garbage_can_be_stripped_instead() -> None:
    f = framer(garbage=GarbagePolicy.STRIP)
    assert f.feed(b"\x0012\x1b34\r\x07\r") == [Line("1234"), Dropped(DropReason.GARBAGE, "\x07")]


def test_the_gs1_separator_is_kept() -> None:
    assert framer().feed(b"]C10109501101020917\x1d10ABC\r") == [
        Line("]C10109501101020917\x1d10ABC")
    ]


def test_utf8_split_across_chunks_decodes() -> None:
    f = framer(encoding="utf-8")
    data = "Größe\r".encode()
    assert f.feed(data[:3]) == []
    assert f.feed(data[3:]) == [Line("Größe")]


def test_a_stale_partial_line_is_dropped_before_new_data() -> None:
    f = framer(timeout=0.5)
    assert f.feed(b"123", now=10.0) == []
    assert f.feed(b"456\r", now=10.4) == [Line("123456")]
    assert f.feed(b"789", now=11.0) == []
    assert f.feed(b"42\r", now=11.6) == [Dropped(DropReason.STALE, "789"), Line("42")]


def test_poll_expires_or_flushes_a_stale_line() -> None:
    dropping = framer(timeout=0.2)
    dropping.feed(b"123", now=1.0)
    assert dropping.poll(1.1) == []
    assert dropping.poll(1.3) == [Dropped(DropReason.STALE, "123")]
    assert dropping.poll(5.0) == []
    flushing = framer(timeout=0.2, stale=StalePolicy.FLUSH)
    flushing.feed(b"123", now=1.0)
    assert flushing.poll(1.3) == [Line("123")]


def test_a_timeout_needs_the_time() -> None:
    with pytest.raises(ValueError, match="now"):
        framer(timeout=1.0).feed(b"1")


def test_reset_reports_an_incomplete_line() -> None:
    f = framer()
    f.feed(b"123")
    assert f.reset() == [Dropped(DropReason.INCOMPLETE, "123")]
    assert f.feed(b"4\r") == [Line("4")]


def test_suffix_names_parse() -> None:
    assert Suffix.parse("crlf") is Suffix.CRLF
    with pytest.raises(ScannerConfigError, match="CR, LF, CRLF, TAB"):
        Suffix.parse("ETX")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_length": 0},
        {"max_length": 100_000},
        {"timeout": 0.0},
        {"timeout": float("nan")},
        {"timeout": 3600.0},
        {"encoding": "klingon"},
        {"allowed_controls": frozenset({"\r"})},
    ],
)
def test_out_of_range_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ScannerConfigError):
        FramingConfig(**kwargs)  # type: ignore[arg-type]
