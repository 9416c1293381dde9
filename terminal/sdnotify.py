# purpose: sd_notify(3) over $NOTIFY_SOCKET (READY, WATCHDOG, STOPPING, STATUS) without libsystemd.
"""The systemd notification protocol is one datagram per message on a Unix socket.

`$NOTIFY_SOCKET` names the socket: a path, or `@name` for the abstract namespace. Each
message is newline-separated `KEY=value` lines. Outside systemd (tests, the demo) the
variable is unset and every call does nothing. `WATCHDOG_USEC` (and `WATCHDOG_PID`, which
must be ours when set) say how often systemd expects a `WATCHDOG=1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("tillbox.sdnotify")


def _address(environ: Mapping[str, str]) -> str | None:
    path = environ.get("NOTIFY_SOCKET", "")
    if not path or not (path.startswith("/") or path.startswith("@")):
        return None  # unset, or a vsock address we do not speak
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification; False when there is no socket or the send failed."""
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8", "replace"))
    except OSError as err:
        log.warning("sd_notify %r to %s failed: %s", message.split("\n", 1)[0], address, err)
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> bool:
    return notify("STOPPING=1")


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings: half of `WATCHDOG_USEC`, or None when no watchdog is armed."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2 / 1_000_000


async def watchdog(interval: float) -> None:
    """Ping from the event loop itself: a loop that stalls stops the pings, and systemd acts."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def start_watchdog() -> asyncio.Task[None] | None:
    """A task pinging every half `WATCHDOG_USEC`; None when the service has no watchdog."""
    interval = watchdog_interval()
    if interval is None or _address(os.environ) is None:
        return None
    log.info("watchdog armed: pinging systemd every %.1f s", interval)
    return asyncio.create_task(watchdog(interval), name="sd-watchdog")


async def stop_watchdog(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
