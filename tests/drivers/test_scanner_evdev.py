# EvdevScanner: lazy evdev import, missing devices, and a real uinput keyboard where allowed.
from __future__ import annotations

import os
import queue
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.scanner import (
    EvdevScanner,
    FramingConfig,
    Scan,
    ScannerConfigError,
    ScannerError,
    ScannerNotFoundError,
    ScannerState,
    Suffix,
)
from drivers.scanner import keymaps as k

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_imports_and_says_what_to_install_without_evdev() -> None:
    script = (
        "import sys\n"
        "sys.modules['evdev'] = None\n"
        "import drivers.scanner as s\n"
        "scanner = s.EvdevScanner('/dev/input/event0', on_scan=print)\n"
        "try:\n"
        "    scanner.start()\n"
        "except s.ScannerDependencyError as err:\n"
        "    print('refused:', err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "refused:" in result.stdout
    assert "pip install evdev" in result.stdout


def test_crlf_is_refused_for_a_keyboard_wedge() -> None:
    with pytest.raises(ScannerConfigError, match="CR or TAB"):
        EvdevScanner("/dev/null", on_scan=print, framing=FramingConfig(suffix=Suffix.CRLF))


def test_an_absent_device_is_reported_not_raised(tmp_path: Path) -> None:
    pytest.importorskip("evdev")
    errors: queue.Queue[ScannerError] = queue.Queue()
    scanner = EvdevScanner(
        str(tmp_path / "by-id" / "usb-scanner-event-kbd"),
        on_scan=print,
        on_error=lambda _id, err: errors.put(err),
        retry_interval=0.05,
    )
    scanner.start()
    try:
        assert isinstance(errors.get(timeout=5), ScannerNotFoundError)
        assert scanner.state is ScannerState.DISCONNECTED
        assert scanner.device_id == f"evdev:{tmp_path}/by-id/usb-scanner-event-kbd"
    finally:
        scanner.close()


@pytest.mark.skipif(
    not os.access("/dev/uinput", os.W_OK), reason="needs a writable /dev/uinput (real machine)"
)
def test_an_azerty_scanner_on_uinput_is_grabbed_and_decoded() -> None:
    evdev = pytest.importorskip("evdev")
    keys = [k.KEY_LEFTSHIFT, k.KEY_ENTER, *range(k.KEY_1, k.KEY_0 + 1)]
    scans: queue.Queue[Scan] = queue.Queue()
    states: queue.Queue[ScannerState] = queue.Queue()
    with evdev.UInput({evdev.ecodes.EV_KEY: keys}, name="tillbox test scanner") as ui:
        scanner = EvdevScanner(
            ui.device.path,
            layout="fr",
            on_scan=scans.put,
            on_state=lambda _id, state: states.put(state),
        )
        scanner.start()
        try:
            while states.get(timeout=5) is not ScannerState.CONNECTED:
                pass
            for digit in "0013748911":
                key = k.KEY_0 if digit == "0" else k.KEY_1 + int(digit) - 1
                for code, value in [(k.KEY_LEFTSHIFT, 1), (key, 1), (key, 0), (k.KEY_LEFTSHIFT, 0)]:
                    ui.write(evdev.ecodes.EV_KEY, code, value)
                    ui.syn()
            for value in (1, 0):
                ui.write(evdev.ecodes.EV_KEY, k.KEY_ENTER, value)
                ui.syn()
            assert scans.get(timeout=5).code == "0013748911"
        finally:
            scanner.close()
