# purpose: the hardware lab: simulated printer+drawer, scanner and ZVT terminal started together.
"""``Lab`` stands up every simulated device of the box in one folder and tells where each
listens, with a ``[devices]`` snippet for ``terminal.toml``. ``tillbox sim`` and
``python -m hwsim`` run it until Ctrl-C; tests and the demo use the Python API:

    lab = Lab(folder)
    where = lab.start()      # paths and ports
    lab.scanner.scan("4006381333931")
    lab.printer.wait_for_receipts(1)
    lab.stop()

Like every simulator here it imports nothing from ``drivers`` or ``terminal``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .escpos import EscPosPrinterSim, PrintedReceipt
from .scanner import SimulatedSerialScanner


@dataclass(frozen=True, slots=True)
class LabWhere:
    """Where each simulated device listens."""

    folder: Path
    printer_host: str
    printer_port: int
    printer_pty: str
    printer_link: Path
    scanner_link: Path
    scanner_pty: str
    zvt: str | None
    zvt_port: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "printer_tcp": f"{self.printer_host}:{self.printer_port}",
            "printer_pty": self.printer_pty,
            "printer_link": str(self.printer_link),
            "scanner_link": str(self.scanner_link),
            "scanner_pty": self.scanner_pty,
            "zvt": self.zvt,
        }


class Lab:
    """The simulated devices of one box, in ``folder`` (symlinks live there)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        printer_port: int = 0,
        zvt: bool = True,
        zvt_port: int = 0,
        drawer_auto_close_s: float | None = None,
        image_dir: str | os.PathLike[str] | None = None,
        on_receipt: Any = None,
        scanner_suffix: bytes = b"\r",
    ) -> None:
        self.folder = Path(folder)
        self.host = host
        self.printer_port = printer_port
        self.want_zvt = zvt
        self.zvt_port = zvt_port
        self.printer = EscPosPrinterSim(
            drawer_auto_close_s=drawer_auto_close_s,
            image_dir=image_dir,
            on_receipt=on_receipt,
            keep_receipts=1000,
        )
        self.scanner: SimulatedSerialScanner | None = None
        self.scanner_suffix = scanner_suffix
        self.zvt: Any = None
        self.where: LabWhere | None = None

    def start(self) -> LabWhere:
        """Start every device; return where each listens."""
        self.folder.mkdir(parents=True, exist_ok=True)
        port = self.printer.start_tcp(self.printer_port, self.host)
        pty = self.printer.start_pty()
        printer_link = self.folder / "printer"
        _link(printer_link, pty)
        self.scanner = SimulatedSerialScanner(self.folder / "scanner", suffix=self.scanner_suffix)
        zvt_where: str | None = None
        zvt_port: int | None = None
        if self.want_zvt:
            try:
                from .zvt import ZvtSimulator
            except ImportError:  # the ZVT simulator is optional in a lab
                ZvtSimulator = None  # type: ignore[assignment,misc]
            if ZvtSimulator is not None:
                self.zvt = ZvtSimulator("tcp", host=self.host, port=self.zvt_port).start()
                zvt_where = str(self.zvt.where)
                zvt_port = int(self.zvt.port)
        self.where = LabWhere(
            folder=self.folder,
            printer_host=self.host,
            printer_port=port,
            printer_pty=pty,
            printer_link=printer_link,
            scanner_link=self.folder / "scanner",
            scanner_pty=self.scanner.slave_path,
            zvt=zvt_where,
            zvt_port=zvt_port,
        )
        return self.where

    def stop(self) -> None:
        """Stop every device and remove the symlinks."""
        if self.zvt is not None:
            self.zvt.stop()
            self.zvt = None
        if self.scanner is not None:
            self.scanner.close()
            self.scanner = None
        self.printer.stop()
        if self.where is not None:
            with contextlib.suppress(FileNotFoundError):
                self.where.printer_link.unlink()

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def config_snippet(self, *, printer: str = "network") -> str:
        """The ``[devices]`` part of ``terminal.toml`` that points the till at this lab."""
        where = self.where
        if where is None:
            raise RuntimeError("start() the lab first")
        lines = ["[devices]", "poll_interval_s = 0.5", "", "[devices.printer]"]
        if printer == "network":
            lines += [
                'transport = "network"',
                f'host = "{where.printer_host}"',
                f"port = {where.printer_port}",
            ]
        else:
            lines += ['transport = "serial"', f'path = "{where.printer_link}"', "baudrate = 38400"]
        lines += [
            "paper_mm = 80",
            "",
            "[devices.drawer]",
            "enabled = true",
            "",
            "[[devices.scanners]]",
            'mode = "serial"',
            f'path = "{where.scanner_link}"',
            'suffix = "CR"',
        ]
        if where.zvt:
            lines += ["", f"# ZVT card terminal: {where.zvt} (see docs/zvt.md)"]
        return "\n".join(lines) + "\n"


def _link(link: Path, target: str) -> None:
    staging = link.with_name(f".{link.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    staging.symlink_to(target)
    staging.replace(link)


def _echo(receipt: PrintedReceipt) -> None:
    print("=" * 48)
    print(receipt.text)
    for code in receipt.barcodes:
        print(f"[{code.symbology}: {code.data}]")
    for qr in receipt.qr_codes:
        print(f"[QR: {qr}]")
    print(f"[{receipt.cut or 'no'} cut]", flush=True)


def main(argv: list[str] | None = None, prog: str = "python -m hwsim") -> int:
    """Run the lab until Ctrl-C: scan each stdin line, echo each receipt."""
    ap = argparse.ArgumentParser(prog=prog, description="Simulated printer, drawer, scanner, ZVT.")
    ap.add_argument("--dir", default="./sim-devices", help="folder for the device symlinks")
    ap.add_argument("--printer-port", type=int, default=0, help="printer TCP port (0: any)")
    ap.add_argument("--no-zvt", action="store_true", help="do not start the ZVT terminal")
    ap.add_argument("--drawer-auto-close", type=float, metavar="S", help="close drawer after S s")
    ap.add_argument("--images", metavar="DIR", help="save printed raster images as PNG here")
    args = ap.parse_args(argv)
    lab = Lab(
        args.dir,
        printer_port=args.printer_port,
        zvt=not args.no_zvt,
        drawer_auto_close_s=args.drawer_auto_close,
        image_dir=args.images,
        on_receipt=_echo,
    )
    where = lab.start()
    stop = threading.Event()

    def terminate(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        print(f"printer + drawer: tcp {where.printer_host}:{where.printer_port}", flush=True)
        print(f"printer + drawer: pty {where.printer_pty} (link {where.printer_link})")
        print(f"scanner:          pty {where.scanner_pty} (link {where.scanner_link})")
        print(f"card terminal:    {where.zvt or 'not started'}")
        print("\nAdd to terminal.toml:\n")
        print(lab.config_snippet(), flush=True)
        print("Type a barcode and Enter to scan it; Ctrl-C stops.", flush=True)
        _read_scans(lab, stop)
    except KeyboardInterrupt:
        pass
    finally:
        lab.stop()
    return 0


def _read_scans(lab: Lab, stop: threading.Event) -> None:
    if sys.stdin is None or not sys.stdin.readable() or sys.stdin.closed:
        stop.wait()
        return
    for raw in sys.stdin:
        code = raw.strip()
        if code and lab.scanner is not None:
            try:
                lab.scanner.scan(code)
            except (RuntimeError, TimeoutError) as err:
                print(f"error: {err}", flush=True)
        if stop.is_set():
            return
    stop.wait()  # stdin closed (a service): run until stopped


if __name__ == "__main__":
    sys.exit(main())
