# purpose: wake the device checks when udev announces a plug or unplug (pyudev), where udev runs.
"""Hotplug through udev, when there is a udev daemon to listen to.

``HotplugWatcher.start()`` returns False where udev does not run (containers, CI, a box
without systemd-udevd); the caller then relies on polling alone. The watcher only says
"something changed on tty/usb/input"; the device checks find out what.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SUBSYSTEMS = ("tty", "usb", "input", "usbmisc")
UDEV_CONTROL = "/run/udev/control"


def udev_running() -> bool:
    """Whether a udev daemon runs here (its control socket exists)."""
    return os.path.exists(UDEV_CONTROL)


class HotplugWatcher:
    """Calls ``on_change(action, subsystem)`` from pyudev's thread for each add/remove."""

    def __init__(self, on_change: Callable[[str, str], None]) -> None:
        self._on_change = on_change
        self._observer: Any = None

    @property
    def active(self) -> bool:
        """Whether udev events are being received."""
        return self._observer is not None

    def start(self) -> bool:
        """Listen to udev; False (and polling stays the only source) where that is not possible."""
        if self._observer is not None:
            return True
        if not udev_running():
            return False
        try:
            pyudev: Any = importlib.import_module("pyudev")
            context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(context, source="udev")
            for subsystem in SUBSYSTEMS:
                monitor.filter_by(subsystem)
            observer = pyudev.MonitorObserver(monitor, callback=self._event, name="udev-hotplug")
            observer.daemon = True
            observer.start()
        except (ImportError, OSError, ValueError) as err:
            log.info("udev hotplug unavailable (%s); polling only", err)
            return False
        self._observer = observer
        return True

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            with contextlib.suppress(Exception):
                observer.send_stop()
                observer.join(timeout=2)

    def _event(self, device: Any) -> None:
        action = str(getattr(device, "action", "") or "")
        if action in ("add", "remove", "bind", "unbind", "change"):
            try:
                self._on_change(action, str(getattr(device, "subsystem", "") or ""))
            except Exception:
                log.exception("hotplug callback failed")
