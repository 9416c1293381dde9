# Simulated serial barcode scanner on a pseudo-terminal, with unplug/replug at a stable symlink.
from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import time
import tty
from pathlib import Path
from types import TracebackType
from typing import Self

SUFFIXES: dict[str, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "TAB": b"\t"}
DEFAULT_GARBAGE = b"\x00\xff\x1b[2J\x07"


class SimulatedSerialScanner:
    """The device side of a serial scanner: each scan is the code's bytes plus the suffix.

    The host opens `port`: the symlink when one is given (as udev's /dev/tillbox/scanner),
    else the pty slave itself. unplug() makes the pty and the symlink vanish; replug()
    brings a new pty up behind the same symlink, as a USB re-plug gives a new ttyACM.
    """

    def __init__(
        self,
        link: str | os.PathLike[str] | None = None,
        *,
        suffix: bytes = b"\r",
        encoding: str = "ascii",
        write_timeout: float = 2.0,
    ) -> None:
        self.link = Path(link) if link is not None else None
        self.suffix = suffix
        self.encoding = encoding
        self.write_timeout = write_timeout
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self.replug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def slave_path(self) -> str:
        """The pty device the host reads (/dev/pts/N); changes on every replug."""
        if self._slave_path is None:
            raise RuntimeError("the simulated scanner is unplugged")
        return self._slave_path

    @property
    def port(self) -> str:
        """The path a host should configure: the stable symlink if there is one."""
        return str(self.link) if self.link is not None else self.slave_path

    def scan(self, code: str) -> None:
        """Scan a code: send it and the suffix."""
        self.send_raw(code.encode(self.encoding) + self.suffix)

    def send_partial(self, code: str) -> None:
        """Send a code without its suffix, as a scanner cut off mid-transmission."""
        self.send_raw(code.encode(self.encoding))

    def send_overlong(self, length: int, fill: str = "9") -> None:
        """Send one line of `length` characters and the suffix."""
        self.send_raw((fill * length).encode(self.encoding) + self.suffix)

    def send_garbage(self, data: bytes = DEFAULT_GARBAGE) -> None:
        """Send a line of line noise and the suffix."""
        self.send_raw(data + self.suffix)

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the wire as they are."""
        if self._master is None:
            raise RuntimeError("the simulated scanner is unplugged; replug() it first")
        view = memoryview(data)
        deadline = time.monotonic() + self.write_timeout
        while view:
            left = deadline - time.monotonic()
            _, writable, _ = select.select([], [self._master], [], max(left, 0))
            if not writable:
                raise TimeoutError(f"the host has not read {self.port} for {self.write_timeout}s")
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                continue
            view = view[written:]

    def unplug(self) -> None:
        """Vanish: close the pty (the host's reads fail) and remove the symlink."""
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = self._slave_path = None

    def replug(self) -> None:
        """Appear on a fresh pty; the symlink, if any, now points at it."""
        if self.plugged:
            self.unplug()
        master, slave = os.openpty()
        # Raw from the start: a canonical-mode pty would turn CR into LF and echo our bytes.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_path = os.ttyname(slave)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            staging = self.link.with_name(f".{self.link.name}.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
            staging.symlink_to(self._slave_path)
            staging.replace(self.link)

    def close(self) -> None:
        self.unplug()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _command(scanner: SimulatedSerialScanner, line: str) -> bool:
    """Act on one stdin line; False to quit."""
    if not line.startswith(":"):
        scanner.scan(line)
        return True
    verb, _, arg = line[1:].partition(" ")
    if verb == "quit":
        return False
    if verb == "unplug":
        scanner.unplug()
    elif verb == "replug":
        scanner.replug()
        print(f"listening on {scanner.slave_path}", flush=True)
    elif verb == "raw":
        scanner.send_raw(bytes.fromhex(arg))
    elif verb == "garbage":
        scanner.send_garbage()
    else:
        print(f"unknown command {line!r}: use :unplug :replug :raw HEX :garbage :quit", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hwsim.scanner",
        description="Simulated serial barcode scanner: each stdin line is scanned. "
        "Lines starting with ':' are commands: :unplug :replug :raw HEX :garbage :quit",
    )
    parser.add_argument("--link", help="stable symlink to the pty, e.g. /tmp/x/scanner")
    parser.add_argument("--suffix", choices=sorted(SUFFIXES), default="CR")
    parser.add_argument("--encoding", default="ascii")
    args = parser.parse_args(argv)
    with SimulatedSerialScanner(
        args.link, suffix=SUFFIXES[args.suffix], encoding=args.encoding
    ) as scanner:
        where = f" (link {scanner.link})" if scanner.link is not None else ""
        print(f"listening on {scanner.slave_path}{where}", flush=True)
        try:
            for raw in sys.stdin:
                try:
                    if not _command(scanner, raw.rstrip("\r\n")):
                        break
                except (RuntimeError, TimeoutError, ValueError) as err:
                    print(f"error: {err}", flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
