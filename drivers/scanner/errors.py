# Scanner errors: one hierarchy, translated from OSError and pyserial errors at the port.
from __future__ import annotations

import errno

DOCS_HINT = "see docs/scanners.md"


class ScannerError(Exception):
    """Base of every error the scanner driver raises or reports."""


class ScannerConfigError(ScannerError):
    """A setting (layout, suffix, baud, limits) is unknown or out of range."""


class ScannerDependencyError(ScannerError):
    """An optional library the transport needs (python-evdev) is not installed."""


class ScannerNotFoundError(ScannerError):
    """The configured device path does not exist (unplugged, or udev rule missing)."""


class ScannerPermissionError(ScannerError):
    """The process may not open the device node."""


class ScannerBusyError(ScannerError):
    """Another process holds the device (serial lock or evdev grab)."""


class ScannerDisconnectedError(ScannerError):
    """The device went away while open, or an I/O error broke the connection."""


def translate_os_error(err: OSError, path: str, action: str) -> ScannerError:
    """Turn an OSError (pyserial's SerialException is one) into a ScannerError with advice."""
    code = err.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return ScannerNotFoundError(
            f"scanner {path}: not present while trying to {action} ({err}); "
            f"plug it in or check the udev symlink ({DOCS_HINT})"
        )
    if code in (errno.EACCES, errno.EPERM):
        return ScannerPermissionError(
            f"scanner {path}: permission denied while trying to {action}; "
            f"install the udev rule or add the service user to the device's group ({DOCS_HINT})"
        )
    if code in (errno.EBUSY, errno.EAGAIN):
        return ScannerBusyError(
            f"scanner {path}: busy while trying to {action} ({err}); "
            "stop the other program that holds it"
        )
    return ScannerDisconnectedError(
        f"scanner {path}: I/O error while trying to {action} ({err}); "
        "check the cable, the scanner reconnects by itself"
    )
