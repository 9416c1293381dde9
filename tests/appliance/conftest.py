# purpose: appliance fixtures: a private D-Bus with a RAUC stand-in, a bundle web server.
from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def need(*tools: str) -> None:
    """Fail (not skip) when a tool scripts/setup installs is missing: CI must have it."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run ./scripts/setup")


@pytest.fixture
def dbus_bus() -> Iterator[str]:
    """A private message bus (Debian's dbus-daemon) on a Unix socket; its address."""
    need("dbus-daemon")
    folder = Path(tempfile.mkdtemp(prefix="tbus"))  # socket paths must stay short
    config = folder / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=folder / "bus"), encoding="utf-8")
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("unix:"), f"dbus-daemon said {address!r}"
        yield address
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


class RaucStandin:
    """The stand-in RAUC service process and the script it follows."""

    def __init__(self, address: str, folder: Path) -> None:
        self.address = address
        self.script = folder / "rauc-plan.json"
        self.calls_path = folder / "rauc-plan.json.calls"
        self.set(result=0, booted_version="1.0", step_s=0.02)
        self.proc: subprocess.Popen[str] | None = None

    def set(self, **plan: Any) -> None:
        self.script.write_text(json.dumps(plan), encoding="utf-8")

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_path.exists():
            return []
        lines = self.calls_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "rauc_standin.py"), self.address, str(self.script)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"the RAUC stand-in said {line!r}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def rauc(dbus_bus: str, tmp_path: Path) -> Iterator[RaucStandin]:
    standin = RaucStandin(dbus_bus, tmp_path)
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


class BundleServer:
    """Serves a folder over HTTP on a free 127.0.0.1 port (the update's download URL)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bundles(tmp_path: Path) -> Iterator[BundleServer]:
    folder = tmp_path / "www"
    folder.mkdir()
    server = BundleServer(folder)
    try:
        yield server
    finally:
        server.close()
