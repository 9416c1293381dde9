# Keyboard layouts for HID keyboard-wedge scanners: Linux evdev key codes to characters.
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .errors import ScannerConfigError

# Key codes from linux/include/uapi/linux/input-event-codes.h, so decoding needs no evdev.
KEY_ESC = 1
KEY_1 = 2
KEY_2 = 3
KEY_3 = 4
KEY_4 = 5
KEY_5 = 6
KEY_6 = 7
KEY_7 = 8
KEY_8 = 9
KEY_9 = 10
KEY_0 = 11
KEY_MINUS = 12
KEY_EQUAL = 13
KEY_BACKSPACE = 14
KEY_TAB = 15
KEY_Q = 16
KEY_W = 17
KEY_E = 18
KEY_R = 19
KEY_T = 20
KEY_Y = 21
KEY_U = 22
KEY_I = 23
KEY_O = 24
KEY_P = 25
KEY_LEFTBRACE = 26
KEY_RIGHTBRACE = 27
KEY_ENTER = 28
KEY_LEFTCTRL = 29
KEY_A = 30
KEY_S = 31
KEY_D = 32
KEY_F = 33
KEY_G = 34
KEY_H = 35
KEY_J = 36
KEY_K = 37
KEY_L = 38
KEY_SEMICOLON = 39
KEY_APOSTROPHE = 40
KEY_GRAVE = 41
KEY_LEFTSHIFT = 42
KEY_BACKSLASH = 43
KEY_Z = 44
KEY_X = 45
KEY_C = 46
KEY_V = 47
KEY_B = 48
KEY_N = 49
KEY_M = 50
KEY_COMMA = 51
KEY_DOT = 52
KEY_SLASH = 53
KEY_RIGHTSHIFT = 54
KEY_KPASTERISK = 55
KEY_LEFTALT = 56
KEY_SPACE = 57
KEY_CAPSLOCK = 58
KEY_NUMLOCK = 69
KEY_KP7 = 71
KEY_KP8 = 72
KEY_KP9 = 73
KEY_KPMINUS = 74
KEY_KP4 = 75
KEY_KP5 = 76
KEY_KP6 = 77
KEY_KPPLUS = 78
KEY_KP1 = 79
KEY_KP2 = 80
KEY_KP3 = 81
KEY_KP0 = 82
KEY_KPDOT = 83
KEY_102ND = 86
KEY_KPENTER = 96
KEY_RIGHTCTRL = 97
KEY_KPSLASH = 98
KEY_RIGHTALT = 100

# evdev EV_KEY values.
KEY_UP = 0
KEY_DOWN = 1
KEY_REPEAT = 2

SHIFT_KEYS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})
CTRL_KEYS = frozenset({KEY_LEFTCTRL, KEY_RIGHTCTRL})
ALTGR_KEYS = frozenset({KEY_RIGHTALT})
ALT_KEYS = frozenset({KEY_LEFTALT})

# Enter ends a scan in keyboard-wedge mode; it decodes to CR so the same framer suffix works.
_CONTROL: dict[int, str] = {KEY_ENTER: "\r", KEY_KPENTER: "\r", KEY_TAB: "\t", KEY_SPACE: " "}

# Scanners set to "keypad emulation" send these to dodge the layout; numlock is assumed on.
_KEYPAD: dict[int, str] = {
    KEY_KP0: "0",
    KEY_KP1: "1",
    KEY_KP2: "2",
    KEY_KP3: "3",
    KEY_KP4: "4",
    KEY_KP5: "5",
    KEY_KP6: "6",
    KEY_KP7: "7",
    KEY_KP8: "8",
    KEY_KP9: "9",
    KEY_KPDOT: ".",
    KEY_KPSLASH: "/",
    KEY_KPASTERISK: "*",
    KEY_KPMINUS: "-",
    KEY_KPPLUS: "+",
}

_DIGIT_ROW = (KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9, KEY_0)
_QWERTY_LETTERS: dict[int, str] = dict(
    zip(
        (
            *(KEY_Q, KEY_W, KEY_E, KEY_R, KEY_T, KEY_Y, KEY_U, KEY_I, KEY_O, KEY_P),
            *(KEY_A, KEY_S, KEY_D, KEY_F, KEY_G, KEY_H, KEY_J, KEY_K, KEY_L),
            *(KEY_Z, KEY_X, KEY_C, KEY_V, KEY_B, KEY_N, KEY_M),
        ),
        "qwertyuiopasdfghjklzxcvbnm",
        strict=True,
    )
)


@dataclass(frozen=True, slots=True)
class KeyStroke:
    """One key with the modifiers that must be held to type a character."""

    keycode: int
    shift: bool = False
    altgr: bool = False


@dataclass(frozen=True, slots=True)
class Keymap:
    """One keyboard layout: what each key types plain, with shift and with AltGr."""

    name: str
    plain: Mapping[int, str]
    shifted: Mapping[int, str]
    altgr: Mapping[int, str] = field(default_factory=dict)

    def char(self, keycode: int, *, shift: bool = False, altgr: bool = False) -> str | None:
        """The character a key types with the given modifiers, or None if it types none."""
        if altgr:
            # Shift+AltGr (level 4) is never needed for barcode symbols.
            return None if shift else self.altgr.get(keycode)
        table = self.shifted if shift else self.plain
        return table.get(keycode)

    def is_alphabetic(self, keycode: int) -> bool:
        """Whether caps lock flips this key (a letter whose shifted form is its capital)."""
        plain = self.plain.get(keycode)
        return (
            plain is not None
            and plain.isalpha()
            and plain.upper() != plain
            and self.shifted.get(keycode) == plain.upper()
        )

    def strokes_for(self, char: str) -> KeyStroke | None:
        """The key stroke that types char on this layout (plain before shift before AltGr)."""
        for table, shift, altgr in (
            (self.plain, False, False),
            (self.shifted, True, False),
            (self.altgr, False, True),
        ):
            for keycode, typed in table.items():
                if typed == char and keycode not in _KEYPAD:
                    return KeyStroke(keycode, shift=shift, altgr=altgr)
        return None


def _layout(
    name: str,
    plain: dict[int, str],
    shifted: dict[int, str],
    altgr: dict[int, str],
    letters: dict[int, str],
) -> Keymap:
    plain_all = {**_CONTROL, **_KEYPAD, **letters, **plain}
    shifted_all = {
        **_CONTROL,
        **_KEYPAD,
        **{code: ch.upper() for code, ch in letters.items()},
        **shifted,
    }
    return Keymap(
        name=name,
        plain=MappingProxyType(plain_all),
        shifted=MappingProxyType(shifted_all),
        altgr=MappingProxyType(dict(altgr)),
    )


US = _layout(
    "us",
    plain={
        **dict(zip(_DIGIT_ROW, "1234567890", strict=True)),
        KEY_MINUS: "-",
        KEY_EQUAL: "=",
        KEY_LEFTBRACE: "[",
        KEY_RIGHTBRACE: "]",
        KEY_SEMICOLON: ";",
        KEY_APOSTROPHE: "'",
        KEY_GRAVE: "`",
        KEY_BACKSLASH: "\\",
        KEY_COMMA: ",",
        KEY_DOT: ".",
        KEY_SLASH: "/",
        KEY_102ND: "<",
    },
    shifted={
        **dict(zip(_DIGIT_ROW, "!@#$%^&*()", strict=True)),
        KEY_MINUS: "_",
        KEY_EQUAL: "+",
        KEY_LEFTBRACE: "{",
        KEY_RIGHTBRACE: "}",
        KEY_SEMICOLON: ":",
        KEY_APOSTROPHE: '"',
        KEY_GRAVE: "~",
        KEY_BACKSLASH: "|",
        KEY_COMMA: "<",
        KEY_DOT: ">",
        KEY_SLASH: "?",
        KEY_102ND: ">",
    },
    altgr={},
    letters=_QWERTY_LETTERS,
)

# German QWERTZ (xkb "de"): Y and Z swap; dead keys (^, ´, `) type nothing on their own.
DE = _layout(
    "de",
    plain={
        **dict(zip(_DIGIT_ROW, "1234567890", strict=True)),
        KEY_MINUS: "ß",
        KEY_LEFTBRACE: "ü",
        KEY_RIGHTBRACE: "+",
        KEY_SEMICOLON: "ö",
        KEY_APOSTROPHE: "ä",
        KEY_BACKSLASH: "#",
        KEY_COMMA: ",",
        KEY_DOT: ".",
        KEY_SLASH: "-",
        KEY_102ND: "<",
    },
    shifted={
        **dict(zip(_DIGIT_ROW, '!"§$%&/()=', strict=True)),
        KEY_MINUS: "?",
        KEY_GRAVE: "°",
        KEY_LEFTBRACE: "Ü",
        KEY_RIGHTBRACE: "*",
        KEY_SEMICOLON: "Ö",
        KEY_APOSTROPHE: "Ä",
        KEY_BACKSLASH: "'",
        KEY_COMMA: ";",
        KEY_DOT: ":",
        KEY_SLASH: "_",
        KEY_102ND: ">",
    },
    altgr={
        KEY_2: "²",
        KEY_3: "³",
        KEY_7: "{",
        KEY_8: "[",
        KEY_9: "]",
        KEY_0: "}",
        KEY_MINUS: "\\",
        KEY_Q: "@",
        KEY_E: "€",
        KEY_RIGHTBRACE: "~",
        KEY_102ND: "|",
        KEY_M: "µ",
    },
    letters={**_QWERTY_LETTERS, KEY_Y: "z", KEY_Z: "y"},
)

# French AZERTY (xkb "fr"): the digit row types digits only with shift; dead ^ and ¨ are skipped.
FR = _layout(
    "fr",
    plain={
        **dict(zip(_DIGIT_ROW, "&é\"'(-è_çà", strict=True)),
        KEY_GRAVE: "²",
        KEY_MINUS: ")",
        KEY_EQUAL: "=",
        KEY_RIGHTBRACE: "$",
        KEY_APOSTROPHE: "ù",
        KEY_BACKSLASH: "*",
        KEY_M: ",",
        KEY_COMMA: ";",
        KEY_DOT: ":",
        KEY_SLASH: "!",
        KEY_102ND: "<",
    },
    shifted={
        **dict(zip(_DIGIT_ROW, "1234567890", strict=True)),
        KEY_MINUS: "°",
        KEY_EQUAL: "+",
        KEY_RIGHTBRACE: "£",
        KEY_APOSTROPHE: "%",
        KEY_BACKSLASH: "µ",
        KEY_M: "?",
        KEY_COMMA: ".",
        KEY_DOT: "/",
        KEY_SLASH: "§",
        KEY_102ND: ">",
    },
    altgr={
        KEY_2: "~",
        KEY_3: "#",
        KEY_4: "{",
        KEY_5: "[",
        KEY_6: "|",
        KEY_8: "\\",
        KEY_9: "^",
        KEY_0: "@",
        KEY_MINUS: "]",
        KEY_EQUAL: "}",
        KEY_E: "€",
        KEY_RIGHTBRACE: "¤",
    },
    letters={
        **{code: ch for code, ch in _QWERTY_LETTERS.items() if code != KEY_M},
        KEY_Q: "a",
        KEY_W: "z",
        KEY_A: "q",
        KEY_Z: "w",
        KEY_SEMICOLON: "m",
    },
)

KEYMAPS: Mapping[str, Keymap] = MappingProxyType({km.name: km for km in (US, DE, FR)})


def get_keymap(name: str) -> Keymap:
    """The keymap for a layout name (`us`, `de`, `fr`), or ScannerConfigError naming the choices."""
    try:
        return KEYMAPS[name.strip().lower()]
    except KeyError:
        choices = ", ".join(sorted(KEYMAPS))
        raise ScannerConfigError(
            f"unknown keyboard layout {name!r}; choose one of {choices} "
            "and set the scanner itself to the same layout"
        ) from None
