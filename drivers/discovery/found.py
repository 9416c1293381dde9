# purpose: what discovery found on a bus, and the stable id it gets (serial number or port path).
"""A device seen by discovery, and its stable id.

The id never counts devices of one vendor and product ("the second 04b8:0e15"): that
changes with plug order. It is the USB serial number where the device has a usable one,
else the physical port path (the socket it is plugged into), else the device node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Bus = Literal["usb", "serial", "input"]


@dataclass(frozen=True, slots=True)
class Found:
    """One device seen on one bus during one check."""

    bus: Bus
    node: str
    """Where the OS shows it now: /dev/ttyACM0, /dev/input/event3, usb:1-1.4."""
    vendor_id: int | None = None
    product_id: int | None = None
    serial: str | None = None
    port_path: str | None = None
    """The physical USB port chain, e.g. ``1-1.4`` (bus 1, hub port 1, port 4)."""
    name: str = ""
    kind: str | None = None
    """What it looks like: ``printer`` (USB printer class), ``keyboard``, ``serial``."""


def usable_serial(serial: str | None) -> bool:
    """Whether a serial number can tell devices apart (cheap devices send "" or "000000")."""
    if serial is None:
        return False
    text = serial.strip()
    return len(text) >= 2 and len(set(text)) > 1


def _usb_prefix(found: Found) -> str | None:
    if found.vendor_id is None or found.product_id is None:
        return None
    return f"usb:{found.vendor_id:04x}:{found.product_id:04x}"


def stable_id(found: Found, shared_serials: frozenset[str] = frozenset()) -> str:
    """The device's id: serial number, else port path, else node (never a plug-order count).

    ``shared_serials`` are serial numbers more than one present device claims; those
    devices are named by their port instead, as their serial cannot tell them apart.
    """
    prefix = _usb_prefix(found)
    serial = (found.serial or "").strip()
    if prefix is not None:
        if usable_serial(serial) and f"{prefix}:{serial}" not in shared_serials:
            return f"{prefix}:sn:{serial}"
        if found.port_path:
            return f"{prefix}:port:{found.port_path}"
    elif found.port_path:
        return f"{found.bus}:port:{found.port_path}"
    return f"{found.bus}:{found.node}"


def stable_ids(found: Iterable[Found]) -> dict[Found, str]:
    """Ids for everything seen in one check, settling serial numbers that collide."""
    items = list(found)
    # One device may show up on several buses (a scanner is a tty and a USB device), so a
    # serial number is shared only when it repeats on the same bus.
    per_bus = Counter(
        (f.bus, f"{prefix}:{(f.serial or '').strip()}")
        for f in items
        if (prefix := _usb_prefix(f)) is not None and usable_serial(f.serial)
    )
    shared = frozenset(key for (_bus, key), n in per_bus.items() if n > 1)
    return {f: stable_id(f, shared) for f in items}


def port_from_location(location: str | None) -> str | None:
    """pyserial's ``location`` (``1-1.4:1.0``) or evdev's ``phys`` (``usb-0000:00:14.0-1.4/input0``)
    → the port chain ``1-1.4`` or ``usb-0000:00:14.0-1.4``; None when there is none."""
    if not location:
        return None
    text = location.strip()
    if "/" in text:
        text = text.split("/", 1)[0]
    if ":" in text and not text.startswith("usb-"):
        text = text.split(":", 1)[0]
    return text or None
