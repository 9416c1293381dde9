# KeyDecoder: evdev key events (code, down/up/repeat) plus modifier state to typed characters.
from __future__ import annotations

from collections.abc import Iterable

from .keymaps import (
    ALT_KEYS,
    ALTGR_KEYS,
    CTRL_KEYS,
    KEY_CAPSLOCK,
    KEY_DOWN,
    KEY_REPEAT,
    KEY_UP,
    SHIFT_KEYS,
    Keymap,
    get_keymap,
)

_MODIFIERS = SHIFT_KEYS | CTRL_KEYS | ALTGR_KEYS | ALT_KEYS


class KeyDecoder:
    """Turns one device's key events into characters using a configured layout.

    Pure state machine: no I/O. Feed it EV_KEY events in order; it tracks which modifiers
    are held and returns the character each key press types ("" when it types none).
    """

    def __init__(self, keymap: Keymap | str, *, emit_repeats: bool = False) -> None:
        # Scanners never hold a key; a kernel autorepeat only appears when a key-up is late,
        # and typing it again would corrupt the code, so repeats are ignored by default.
        self.keymap = get_keymap(keymap) if isinstance(keymap, str) else keymap
        self.emit_repeats = emit_repeats
        self._held: set[int] = set()
        self._caps_lock = False
        self.unknown_keys = 0

    def reset(self) -> None:
        """Forget held modifiers and caps lock, e.g. after the device was re-opened."""
        self._held.clear()
        self._caps_lock = False

    def feed(self, keycode: int, value: int) -> str:
        """Consume one key event; return the character it types, or "" if none."""
        if keycode in _MODIFIERS:
            if value == KEY_DOWN:
                self._held.add(keycode)
            elif value == KEY_UP:
                self._held.discard(keycode)
            return ""
        if keycode == KEY_CAPSLOCK:
            if value == KEY_DOWN:
                self._caps_lock = not self._caps_lock
            return ""
        if value == KEY_UP or value not in (KEY_DOWN, KEY_REPEAT):
            return ""
        if value == KEY_REPEAT and not self.emit_repeats:
            return ""
        if self._held & ALT_KEYS:
            return ""
        shift = bool(self._held & SHIFT_KEYS)
        if self._caps_lock and self.keymap.is_alphabetic(keycode):
            shift = not shift
        typed = self.keymap.char(keycode, shift=shift, altgr=bool(self._held & ALTGR_KEYS))
        if typed is None:
            self.unknown_keys += 1
            return ""
        if self._held & CTRL_KEYS:
            return _control_char(typed)
        return typed

    def feed_events(self, events: Iterable[tuple[int, int]]) -> str:
        """Consume many (keycode, value) events; return everything they typed."""
        return "".join(self.feed(code, value) for code, value in events)


def _control_char(typed: str) -> str:
    # Ctrl+] is how a keyboard-wedge scanner sends GS, the GS1 field separator.
    upper = typed.upper()
    if len(upper) == 1 and "@" <= upper <= "_":
        return chr(ord(upper) & 0x1F)
    return ""
