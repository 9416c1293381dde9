# purpose: look at the buses: USB printers (pyusb), serial ports (pyserial), input devices (evdev).
"""Each ``list_*`` function returns what is plugged in now, as ``Found`` records.

They never raise for a missing library, backend or permission: a bus that cannot be looked
at reports nothing, and ``problems()`` says why once, for the log.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from typing import Any

from .found import Found, port_from_location

log = logging.getLogger(__name__)

USB_CLASS_PRINTER = 7
_problems: dict[str, str] = {}


def _note(bus: str, problem: str) -> None:
    if _problems.get(bus) != problem:
        _problems[bus] = problem
        log.info("device discovery: %s: %s", bus, problem)


def problems() -> dict[str, str]:
    """Why a bus could not be looked at (the last reason per bus)."""
    return dict(_problems)


def path_present(path: str) -> str | None:
    """The node a configured path (often a udev symlink) leads to now, or None."""
    try:
        real = os.path.realpath(path)
    except OSError:
        return None
    return real if os.path.exists(real) else None


def _is_printer(dev: Any) -> bool:
    if getattr(dev, "bDeviceClass", 0) == USB_CLASS_PRINTER:
        return True
    with contextlib.suppress(Exception):
        for cfg in dev:
            for intf in cfg:
                if getattr(intf, "bInterfaceClass", 0) == USB_CLASS_PRINTER:
                    return True
    return False


def list_usb() -> list[Found]:
    """USB printers (interface class 7) with their serial numbers and port paths."""
    try:
        core: Any = importlib.import_module("usb.core")
    except ImportError:
        _note("usb", "pyusb is not installed")
        return []
    try:
        devices = list(core.find(find_all=True))
    except (ValueError, OSError) as err:  # NoBackendError is a ValueError: no libusb
        _note("usb", f"cannot list USB devices ({err}); install libusb-1.0-0")
        return []
    found: list[Found] = []
    for dev in devices:
        if not _is_printer(dev):
            continue
        serial: str | None = None
        with contextlib.suppress(Exception):
            # Reading the string needs access to the device node; without it, name by port.
            serial = dev.serial_number
        ports = getattr(dev, "port_numbers", None) or ()
        port = f"{dev.bus}-{'.'.join(str(p) for p in ports)}" if ports else None
        found.append(
            Found(
                bus="usb",
                node=f"usb:{dev.bus}:{dev.address}",
                vendor_id=int(dev.idVendor),
                product_id=int(dev.idProduct),
                serial=serial,
                port_path=port,
                kind="printer",
            )
        )
    return found


def list_serial() -> list[Found]:
    """Serial ports with a device behind them (USB CDC, USB-serial adapters, UARTs)."""
    try:
        list_ports: Any = importlib.import_module("serial.tools.list_ports")
        ports = list(list_ports.comports())
    except (ImportError, OSError) as err:
        _note("serial", f"cannot list serial ports ({err})")
        return []
    return [
        Found(
            bus="serial",
            node=str(p.device),
            vendor_id=p.vid,
            product_id=p.pid,
            serial=p.serial_number,
            port_path=port_from_location(p.location),
            name=str(p.description or ""),
            kind="serial",
        )
        for p in ports
    ]


def list_input() -> list[Found]:
    """Input devices that can type digits and Enter: keyboard-wedge scanners (and keyboards)."""
    if not os.path.isdir("/dev/input"):
        return []
    try:
        evdev: Any = importlib.import_module("evdev")
    except ImportError:
        _note("input", "python-evdev is not installed")
        return []
    found: list[Found] = []
    key_enter = 28
    for path in evdev.list_devices():
        try:
            dev = evdev.InputDevice(path)
        except OSError:
            continue  # no permission: the udev rule gives only the scanner to tillbox
        try:
            keys = dev.capabilities().get(1, [])  # EV_KEY
            if key_enter not in keys:
                continue
            found.append(
                Found(
                    bus="input",
                    node=str(path),
                    vendor_id=int(dev.info.vendor) or None,
                    product_id=int(dev.info.product) or None,
                    serial=dev.uniq or None,
                    port_path=port_from_location(dev.phys),
                    name=str(dev.name),
                    kind="keyboard",
                )
            )
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                dev.close()
    return found
