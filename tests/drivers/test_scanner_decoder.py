# KeyDecoder: modifier state (shift, AltGr, ctrl, caps lock), repeats and unknown keys.
from __future__ import annotations

from drivers.scanner import KeyDecoder
from drivers.scanner import keymaps as k

DOWN, UP, REPEAT = k.KEY_DOWN, k.KEY_UP, k.KEY_REPEAT


def test_a_character_comes_on_key_down_only() -> None:
    decoder = KeyDecoder("us")
    assert decoder.feed(k.KEY_A, DOWN) == "a"
    assert decoder.feed(k.KEY_A, UP) == ""


def test_shift_applies_while_held_and_not_after_release() -> None:
    decoder = KeyDecoder("us")
    events = [
        (k.KEY_LEFTSHIFT, DOWN),
        (k.KEY_A, DOWN),
        (k.KEY_A, UP),
        (k.KEY_LEFTSHIFT, UP),
        (k.KEY_A, DOWN),
        (k.KEY_A, UP),
    ]
    assert decoder.feed_events(events) == "Aa"


def test_releasing_one_shift_keeps_the_other_held() -> None:
    decoder = KeyDecoder("us")
    events = [
        (k.KEY_LEFTSHIFT, DOWN),
        (k.KEY_RIGHTSHIFT, DOWN),
        (k.KEY_LEFTSHIFT, UP),
        (k.KEY_B, DOWN),
        (k.KEY_RIGHTSHIFT, UP),
        (k.KEY_B, DOWN),
    ]
    assert decoder.feed_events(events) == "Bb"


def test_altgr_selects_the_third_level() -> None:
    decoder = KeyDecoder("de")
    events = [(k.KEY_RIGHTALT, DOWN), (k.KEY_Q, DOWN), (k.KEY_Q, UP), (k.KEY_RIGHTALT, UP)]
    assert decoder.feed_events([*events, (k.KEY_Q, DOWN)]) == "@q"


def test_caps_lock_flips_letters_but_not_the_azerty_digit_row() -> None:
    decoder = KeyDecoder("fr")
    events = [(k.KEY_CAPSLOCK, DOWN), (k.KEY_CAPSLOCK, UP), (k.KEY_Q, DOWN), (k.KEY_1, DOWN)]
    assert decoder.feed_events(events) == "A&"
    events = [(k.KEY_LEFTSHIFT, DOWN), (k.KEY_Q, DOWN), (k.KEY_1, DOWN), (k.KEY_LEFTSHIFT, UP)]
    assert decoder.feed_events(events) == "a1"


def test_autorepeat_is_ignored_unless_asked_for() -> None:
    assert KeyDecoder("us").feed_events([(k.KEY_5, DOWN), (k.KEY_5, REPEAT)]) == "5"
    repeating = KeyDecoder("us", emit_repeats=True)
    assert repeating.feed_events([(k.KEY_5, DOWN), (k.KEY_5, REPEAT)]) == "55"


def test_ctrl_right_bracket_sends_the_gs1_separator() -> None:
    decoder = KeyDecoder("us")
    events = [(k.KEY_LEFTCTRL, DOWN), (k.KEY_RIGHTBRACE, DOWN), (k.KEY_LEFTCTRL, UP)]
    assert decoder.feed_events(events) == "\x1d"


def test_left_alt_chords_type_nothing() -> None:
    decoder = KeyDecoder("us")
    assert decoder.feed_events([(k.KEY_LEFTALT, DOWN), (k.KEY_1, DOWN)]) == ""


def test_enter_and_tab_become_cr_and_tab() -> None:
    decoder = KeyDecoder("fr")
    events = [(k.KEY_ENTER, DOWN), (k.KEY_KPENTER, DOWN), (k.KEY_TAB, DOWN)]
    assert decoder.feed_events(events) == "\r\r\t"


def test_unknown_keys_are_counted_not_typed() -> None:
    decoder = KeyDecoder("us")
    assert decoder.feed(k.KEY_ESC, DOWN) == ""
    assert decoder.feed(999, DOWN) == ""
    assert decoder.unknown_keys == 2


def test_reset_forgets_a_held_shift() -> None:
    decoder = KeyDecoder("us")
    decoder.feed(k.KEY_LEFTSHIFT, DOWN)
    decoder.reset()
    assert decoder.feed(k.KEY_A, DOWN) == "a"
