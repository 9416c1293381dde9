# Keymap tables for us/de/fr: the keys each layout needs for barcode characters.
from __future__ import annotations

import pytest

from drivers.scanner import KEYMAPS, KeyDecoder, ScannerConfigError, get_keymap
from drivers.scanner import keymaps as k

SHIFT = k.KEY_LEFTSHIFT
ALTGR = k.KEY_RIGHTALT


def press(keycode: int) -> list[tuple[int, int]]:
    return [(keycode, k.KEY_DOWN), (keycode, k.KEY_UP)]


def with_mod(mod: int, keycode: int) -> list[tuple[int, int]]:
    return [(mod, k.KEY_DOWN), *press(keycode), (mod, k.KEY_UP)]


# What an AZERTY-configured scanner sends for "0013748911": shift + the digit-row keys.
AZERTY_0013748911 = [
    ev
    for key in (k.KEY_0, k.KEY_0, k.KEY_1, k.KEY_3, k.KEY_7, k.KEY_4, k.KEY_8, k.KEY_9, k.KEY_1)
    for ev in with_mod(SHIFT, key)
] + with_mod(k.KEY_RIGHTSHIFT, k.KEY_1)


def test_azerty_digits_need_shift_and_decode_back_to_the_barcode() -> None:
    assert KeyDecoder("fr").feed_events(AZERTY_0013748911) == "0013748911"


def test_azerty_stream_read_with_the_wrong_layout_is_not_the_barcode() -> None:
    assert KeyDecoder("us").feed_events(AZERTY_0013748911) == "))!#&$*(!!"


def test_azerty_digit_row_without_shift_types_the_accented_letters() -> None:
    unshifted = [ev for key in (k.KEY_0, k.KEY_0, k.KEY_1, k.KEY_2) for ev in press(key)]
    assert KeyDecoder("fr").feed_events(unshifted) == "àà&é"


@pytest.mark.parametrize(
    ("layout", "keycode", "shift", "altgr", "char"),
    [
        # us
        ("us", k.KEY_1, False, False, "1"),
        ("us", k.KEY_MINUS, False, False, "-"),
        ("us", k.KEY_DOT, False, False, "."),
        ("us", k.KEY_SLASH, False, False, "/"),
        ("us", k.KEY_EQUAL, True, False, "+"),
        ("us", k.KEY_5, True, False, "%"),
        ("us", k.KEY_4, True, False, "$"),
        ("us", k.KEY_Z, False, False, "z"),
        ("us", k.KEY_Y, True, False, "Y"),
        ("us", k.KEY_SPACE, False, False, " "),
        # de (QWERTZ)
        ("de", k.KEY_Y, False, False, "z"),
        ("de", k.KEY_Z, False, False, "y"),
        ("de", k.KEY_Z, True, False, "Y"),
        ("de", k.KEY_0, False, False, "0"),
        ("de", k.KEY_SLASH, False, False, "-"),
        ("de", k.KEY_DOT, False, False, "."),
        ("de", k.KEY_7, True, False, "/"),
        ("de", k.KEY_RIGHTBRACE, False, False, "+"),
        ("de", k.KEY_5, True, False, "%"),
        ("de", k.KEY_4, True, False, "$"),
        ("de", k.KEY_Q, False, True, "@"),
        ("de", k.KEY_9, False, True, "]"),
        ("de", k.KEY_MINUS, False, False, "ß"),
        # fr (AZERTY)
        ("fr", k.KEY_Q, False, False, "a"),
        ("fr", k.KEY_A, False, False, "q"),
        ("fr", k.KEY_W, False, False, "z"),
        ("fr", k.KEY_Z, False, False, "w"),
        ("fr", k.KEY_SEMICOLON, True, False, "M"),
        ("fr", k.KEY_0, True, False, "0"),
        ("fr", k.KEY_0, False, False, "à"),
        ("fr", k.KEY_6, False, False, "-"),
        ("fr", k.KEY_COMMA, True, False, "."),
        ("fr", k.KEY_DOT, True, False, "/"),
        ("fr", k.KEY_EQUAL, True, False, "+"),
        ("fr", k.KEY_APOSTROPHE, True, False, "%"),
        ("fr", k.KEY_RIGHTBRACE, False, False, "$"),
        ("fr", k.KEY_0, False, True, "@"),
        ("fr", k.KEY_MINUS, False, True, "]"),
    ],
)
def test_layout_tables(layout: str, keycode: int, shift: bool, altgr: bool, char: str) -> None:
    assert get_keymap(layout).char(keycode, shift=shift, altgr=altgr) == char


@pytest.mark.parametrize("layout", sorted(KEYMAPS))
def test_every_barcode_character_can_be_typed_and_read_back(layout: str) -> None:
    keymap = get_keymap(layout)
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-./+%$ "
    for char in alphabet:
        stroke = keymap.strokes_for(char)
        assert stroke is not None, f"{layout} cannot type {char!r}"
        typed = keymap.char(stroke.keycode, shift=stroke.shift, altgr=stroke.altgr)
        assert typed == char


@pytest.mark.parametrize("layout", sorted(KEYMAPS))
def test_keypad_digits_ignore_the_layout(layout: str) -> None:
    keypad = [k.KEY_KP0, k.KEY_KP1, k.KEY_KP9, k.KEY_KPMINUS, k.KEY_KPDOT]
    events = [ev for key in keypad for ev in press(key)]
    assert KeyDecoder(layout).feed_events(events) == "019-."


def test_dead_keys_type_nothing() -> None:
    assert get_keymap("de").char(k.KEY_EQUAL) is None
    assert get_keymap("fr").char(k.KEY_LEFTBRACE) is None


def test_layout_names_are_case_insensitive_and_unknown_ones_name_the_choices() -> None:
    assert get_keymap(" FR ").name == "fr"
    with pytest.raises(ScannerConfigError, match="de, fr, us"):
        get_keymap("dvorak")
