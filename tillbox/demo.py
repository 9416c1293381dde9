# `tillbox demo`: the whole box on one machine: a private broker, the relay, the terminal daemon.
from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from hwsim.lab import Lab

from tillbox import certs
from tillbox.devbroker import DevBroker, die_with_parent

STORE = "demo"
TERMINAL = "t1"


def _tillbox(*args: str) -> list[str]:
    return [sys.executable, "-m", "tillbox.cli", *args]


def prepare_pki(folder: Path) -> Path:
    """A development CA with this demo's terminal and relay identities (kept across runs)."""
    pki = folder / "pki"
    if not certs.ca_files(pki).cert.exists():
        certs.init_ca(pki)
    if not certs.terminal_files(pki, STORE, TERMINAL).cert.exists():
        certs.issue_terminal(pki, STORE, TERMINAL)
    if not certs.relay_files(pki).cert.exists():
        certs.issue_relay(pki)
    return pki


def write_relay_config(folder: Path, broker: DevBroker, pki: Path) -> Path:
    relay = certs.relay_files(pki)
    path = folder / "relay.toml"
    path.write_text(
        "# Written by `tillbox demo`; see docs/relay.md.\n"
        "version = 1\n\n"
        "[broker]\n"
        f'host = "{broker.host}"\n'
        f"port = {broker.port}\n"
        'client_id = "relay-demo"\n'
        f'ca_file = "{broker.ca_file}"\n'
        f'cert_file = "{relay.cert}"\n'
        f'key_file = "{relay.key}"\n\n'
        "[database]\n"
        f'url = "sqlite:///{(folder / "relay.sqlite").resolve()}"\n',
        encoding="utf-8",
    )
    return path


def add_uplink(terminal_config: Path, broker: DevBroker, pki: Path) -> None:
    me = certs.terminal_files(pki, STORE, TERMINAL)
    with terminal_config.open("a", encoding="utf-8") as f:
        f.write(
            "\n[uplink]\n"
            "enabled = true\n"
            f'host = "{broker.host}"\n'
            f"port = {broker.port}\n"
            f'ca = "{broker.ca_file}"\n'
            f'cert = "{me.cert}"\n'
            f'key = "{me.key}"\n'
        )


@contextlib.contextmanager
def central_side(folder: Path) -> Iterator[tuple[DevBroker, Path, Path]]:
    """Broker and relay running for the demo; both are stopped on the way out."""
    pki = prepare_pki(folder)
    broker = DevBroker(folder / "broker", pki)
    broker.start()
    relay_proc: subprocess.Popen[bytes] | None = None
    try:
        relay_config = write_relay_config(folder, broker, pki)
        with open(folder / "relay.log", "ab") as log:
            relay_proc = subprocess.Popen(
                _tillbox("relay", "run", "--config", str(relay_config)),
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
            )
        loaded = subprocess.run(
            _tillbox(
                "relay",
                "catalog",
                "load",
                "--config",
                str(relay_config),
                "--store",
                STORE,
                str(demo_catalog()),
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if loaded.returncode != 0:
            print(
                f"tillbox demo: loading the demo catalog failed: {loaded.stderr}", file=sys.stderr
            )
        yield broker, pki, relay_config
    finally:
        if relay_proc is not None:
            relay_proc.terminate()
            try:
                relay_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay_proc.kill()
        broker.stop()


@contextlib.contextmanager
def simulated_devices(folder: Path, terminal_config: Path) -> Iterator[tuple[Lab, Path]]:
    """Printer + drawer, scanner and ZVT card terminal from hw-sim, wired into the config.

    Receipts the simulated printer "prints" are appended to receipts.txt beside them.
    """
    receipts = folder / "receipts.txt"

    def printed(receipt: object) -> None:
        with receipts.open("a", encoding="utf-8") as f:
            f.write(getattr(receipt, "text", str(receipt)) + "\n" + "=" * 48 + "\n")

    lab = Lab(folder, drawer_auto_close_s=3.0, on_receipt=printed)
    where = lab.start()
    try:
        with terminal_config.open("a", encoding="utf-8") as f:
            f.write("\n" + lab.config_snippet())
            if where.zvt_port:
                f.write(
                    "\n[payment]\nenabled = true\n"
                    f'transport = "tcp"\nhost = "127.0.0.1"\nport = {where.zvt_port}\n'
                )
        yield lab, receipts
    finally:
        lab.stop()


def scan_from_stdin(lab: Lab) -> None:
    """Each line typed into the demo's terminal is scanned by the simulated scanner."""
    for line in sys.stdin:
        code = line.strip()
        if code and lab.scanner is not None:
            lab.scanner.scan(code)


def demo_catalog() -> Path:
    from terminal.catalog_source import DEMO_CATALOG

    return DEMO_CATALOG


def run_demo(folder: Path, port: int = 0) -> int:
    import uvicorn

    from terminal.api import create_app
    from terminal.config import load
    from terminal.demo.run import free_port, write_config

    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    with central_side(folder) as (broker, pki, relay_config):
        terminal_config = write_config(folder / "terminal", port)
        add_uplink(terminal_config, broker, pki)
        with simulated_devices(folder / "devices", terminal_config) as (lab, receipts):
            config = load(terminal_config, environ={})
            app = create_app(config)
            url = f"http://127.0.0.1:{port}"
            for line in (
                f"Tillbox demo: store {config.store_id}, terminal {config.terminal_id}",
                f"  open {url}/  (PINs: cashier 1111, manager 9999)",
                f"  API docs {url}/docs",
                f"  broker mqtts://{broker.host}:{broker.port} (logs in {broker.folder})",
                f"  relay on SQLite: tillbox relay status --config {relay_config}",
                f"  simulated printer, drawer, scanner and card terminal in {folder / 'devices'}",
                f"  printed receipts appear in {receipts}",
                "  type a barcode (e.g. 43742844) and Enter here to scan it",
                f"  state: {folder}",
                "  Ctrl-C stops the demo.",
            ):
                print(line, flush=True)
            threading.Thread(target=scan_from_stdin, args=(lab,), daemon=True).start()
            uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0
