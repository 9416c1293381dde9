# Property tests: random bytes and key events never break the framer or the decoder.
from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scanner import (
    KEYMAPS,
    Dropped,
    FramerOutput,
    FramingConfig,
    GarbagePolicy,
    KeyDecoder,
    Line,
    LineFramer,
    StalePolicy,
    Suffix,
    get_keymap,
)
from drivers.scanner import keymaps as k

configs = st.builds(
    FramingConfig,
    suffix=st.sampled_from(Suffix),
    max_length=st.integers(1, 24),
    garbage=st.sampled_from(GarbagePolicy),
    timeout=st.one_of(st.none(), st.floats(0.01, 2.0)),
    stale=st.sampled_from(StalePolicy),
    encoding=st.sampled_from(["ascii", "utf-8", "latin-1"]),
)
chunks = st.lists(st.tuples(st.binary(max_size=40), st.floats(0.0, 1.0)), max_size=30)


def check_output(config: FramingConfig, out: list[FramerOutput]) -> None:
    for item in out:
        if isinstance(item, Line):
            assert item.code
            assert len(item.code) <= config.max_length
            assert config.suffix.value not in item.code
            assert all(
                (ch.isprintable() and ch != "\ufffd") or ch in config.allowed_controls
                for ch in item.code
            )
        else:
            assert isinstance(item, Dropped)
            assert len(item.data) <= config.max_length + 1


@settings(max_examples=300, deadline=None)
@given(config=configs, data=chunks)
def test_random_bytes_never_raise_and_scans_stay_within_bounds(
    config: FramingConfig, data: list[tuple[bytes, float]]
) -> None:
    framer = LineFramer(config)
    now = 0.0
    for chunk, gap in data:
        now += gap
        check_output(config, framer.feed(chunk, now))
        check_output(config, framer.poll(now))
    check_output(config, framer.reset())


@settings(max_examples=300, deadline=None)
@given(
    config=configs.filter(lambda c: c.timeout is None),
    data=st.binary(max_size=200),
    cuts=st.lists(st.integers(0, 200), max_size=10),
)
def test_how_the_stream_is_chunked_never_changes_the_scans(
    config: FramingConfig, data: bytes, cuts: list[int]
) -> None:
    whole = LineFramer(config).feed(data)
    pieces = LineFramer(config)
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    chunked = [out for a, b in itertools.pairwise(bounds) for out in pieces.feed(data[a:b])]
    assert chunked == whole


@settings(max_examples=300, deadline=None)
@given(
    layout=st.sampled_from(sorted(KEYMAPS)),
    events=st.lists(st.tuples(st.integers(-5, 800), st.integers(-3, 5)), max_size=200),
)
def test_random_key_events_never_raise(layout: str, events: list[tuple[int, int]]) -> None:
    decoder = KeyDecoder(layout)
    framer = LineFramer(FramingConfig(suffix=Suffix.CR))
    for code, value in events:
        typed = decoder.feed(code, value)
        assert len(typed) <= 1
        check_output(framer.config, framer.feed(typed))


BARCODE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-./+%$ "


def keystrokes(layout: str, text: str) -> list[tuple[int, int]]:
    """What a scanner set to `layout` sends for text followed by Enter."""
    keymap = get_keymap(layout)
    events: list[tuple[int, int]] = []
    for char in text:
        stroke = keymap.strokes_for(char)
        assert stroke is not None
        mods = [k.KEY_LEFTSHIFT] if stroke.shift else []
        mods += [k.KEY_RIGHTALT] if stroke.altgr else []
        events += [(mod, k.KEY_DOWN) for mod in mods]
        events += [(stroke.keycode, k.KEY_DOWN), (stroke.keycode, k.KEY_UP)]
        events += [(mod, k.KEY_UP) for mod in mods]
    return [*events, (k.KEY_ENTER, k.KEY_DOWN), (k.KEY_ENTER, k.KEY_UP)]


@settings(max_examples=200, deadline=None)
@given(
    layout=st.sampled_from(sorted(KEYMAPS)),
    code=st.text(BARCODE_CHARS, min_size=1, max_size=48).filter(lambda s: s.strip() != ""),
)
def test_a_scan_typed_on_any_layout_reads_back_with_that_layout(layout: str, code: str) -> None:
    typed = KeyDecoder(layout).feed_events(keystrokes(layout, code))
    assert LineFramer(FramingConfig(suffix=Suffix.CR)).feed(typed) == [Line(code)]
