# EvdevScanner: a USB HID keyboard-wedge scanner read from /dev/input with python-evdev.
from __future__ import annotations

import contextlib
import importlib
import select
from collections.abc import Iterable
from types import ModuleType
from typing import Protocol, cast

from .base import DropCallback, ErrorCallback, ReconnectingScanner, ScanCallback, StateCallback
from .decoder import KeyDecoder
from .errors import ScannerConfigError, ScannerDependencyError, translate_os_error
from .framing import FramingConfig, Suffix
from .keymaps import Keymap, get_keymap

EV_KEY = 1  # linux/input-event-codes.h


class _InputEvent(Protocol):
    type: int
    code: int
    value: int


class _InputDevice(Protocol):
    fd: int

    def read(self) -> Iterable[_InputEvent]: ...
    def grab(self) -> None: ...
    def ungrab(self) -> None: ...
    def close(self) -> None: ...


def _load_evdev() -> ModuleType:
    # Imported on use so the driver package (and its tests) work where evdev is absent.
    try:
        return importlib.import_module("evdev")
    except ImportError as err:
        raise ScannerDependencyError(
            "python-evdev is not installed; `pip install evdev` to read HID scanners, "
            "or set the scanner to serial mode"
        ) from err


class EvdevScanner(ReconnectingScanner):
    """Reads a keyboard-wedge scanner's key events and decodes them with its layout.

    With grab (the default) the device is taken exclusively, so its keystrokes never reach
    the kiosk as typing. Configure a stable path such as /dev/input/by-id/...-event-kbd.
    """

    def __init__(
        self,
        path: str,
        *,
        on_scan: ScanCallback,
        layout: Keymap | str = "us",
        framing: FramingConfig | None = None,
        grab: bool = True,
        emit_repeats: bool = False,
        device_id: str | None = None,
        retry_interval: float = 1.0,
        read_timeout: float = 0.1,
        on_drop: DropCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_state: StateCallback | None = None,
    ) -> None:
        if not path:
            raise ScannerConfigError("scanner path must name an input device")
        framing = framing or FramingConfig(suffix=Suffix.CR)
        if framing.suffix is Suffix.CRLF:
            raise ScannerConfigError(
                "a keyboard-wedge scanner ends a scan with Enter (CR) or Tab; "
                "set suffix to CR or TAB"
            )
        super().__init__(
            device_id or f"evdev:{path}",
            on_scan=on_scan,
            framing=framing,
            retry_interval=retry_interval,
            read_timeout=read_timeout,
            on_drop=on_drop,
            on_error=on_error,
            on_state=on_state,
        )
        self.path = path
        self.grab = grab
        keymap = get_keymap(layout) if isinstance(layout, str) else layout
        self._decoder = KeyDecoder(keymap, emit_repeats=emit_repeats)
        self._evdev: ModuleType | None = None
        self._device: _InputDevice | None = None

    @property
    def layout(self) -> str:
        return self._decoder.keymap.name

    def _prepare(self) -> None:
        self._evdev = _load_evdev()

    def _open(self) -> None:
        evdev = self._evdev or _load_evdev()
        try:
            device = cast(_InputDevice, evdev.InputDevice(self.path))
        except OSError as err:
            raise translate_os_error(err, self.path, "open") from err
        if self.grab:
            try:
                device.grab()
            except OSError as err:
                device.close()
                raise translate_os_error(err, self.path, "grab") from err
        self._decoder.reset()
        self._device = device

    def _read(self) -> str:
        device = self._device
        if device is None:
            return ""
        try:
            ready, _, _ = select.select([device.fd], [], [], self.read_timeout)
            if not ready:
                return ""
            events = list(device.read())
        except BlockingIOError:
            return ""
        except OSError as err:
            raise translate_os_error(err, self.path, "read") from err
        return "".join(
            self._decoder.feed(event.code, event.value) for event in events if event.type == EV_KEY
        )

    def _close_port(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        if self.grab:
            with contextlib.suppress(OSError):
                device.ungrab()
        with contextlib.suppress(OSError):
            device.close()
