# Barcode scanner driver: keymaps, key decoding, line framing and the scanner transports.
from .base import (
    BarcodeScanner,
    DropCallback,
    DroppedScan,
    ErrorCallback,
    ReconnectingScanner,
    Scan,
    ScanCallback,
    ScannerState,
    StateCallback,
)
from .decoder import KeyDecoder
from .dummy import DummyScanner
from .errors import (
    ScannerBusyError,
    ScannerConfigError,
    ScannerDependencyError,
    ScannerDisconnectedError,
    ScannerError,
    ScannerNotFoundError,
    ScannerPermissionError,
)
from .evdev_scanner import EvdevScanner
from .framing import (
    Dropped,
    DropReason,
    FramerOutput,
    FramingConfig,
    GarbagePolicy,
    Line,
    LineFramer,
    StalePolicy,
    Suffix,
)
from .keymaps import KEYMAPS, Keymap, KeyStroke, get_keymap
from .serial_scanner import SerialScanner

__all__ = [
    "KEYMAPS",
    "BarcodeScanner",
    "DropCallback",
    "DropReason",
    "Dropped",
    "DroppedScan",
    "DummyScanner",
    "ErrorCallback",
    "EvdevScanner",
    "FramerOutput",
    "FramingConfig",
    "GarbagePolicy",
    "KeyDecoder",
    "KeyStroke",
    "Keymap",
    "Line",
    "LineFramer",
    "ReconnectingScanner",
    "Scan",
    "ScanCallback",
    "ScannerBusyError",
    "ScannerConfigError",
    "ScannerDependencyError",
    "ScannerDisconnectedError",
    "ScannerError",
    "ScannerNotFoundError",
    "ScannerPermissionError",
    "ScannerState",
    "SerialScanner",
    "StalePolicy",
    "StateCallback",
    "Suffix",
    "get_keymap",
]
