# purpose: device discovery: what is plugged in, its stable id, and udev hotplug where it runs.
"""Discovery for the device manager: ``list_usb``, ``list_serial``, ``list_input`` and
``path_present`` look at the buses; ``stable_ids`` names what they found; ``HotplugWatcher``
wakes the checks on a udev event. Nothing here knows what a sale is."""

from __future__ import annotations

from .found import Found, port_from_location, stable_id, stable_ids, usable_serial
from .hotplug import HotplugWatcher, udev_running
from .sources import list_input, list_serial, list_usb, path_present, problems

__all__ = [
    "Found",
    "HotplugWatcher",
    "list_input",
    "list_serial",
    "list_usb",
    "path_present",
    "port_from_location",
    "problems",
    "stable_id",
    "stable_ids",
    "udev_running",
    "usable_serial",
]
