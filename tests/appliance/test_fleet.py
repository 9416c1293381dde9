# purpose: a fleet update end to end: operator CLI, TLS broker, the real daemon, RAUC stand-in.
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.appliance.conftest import BundleServer, RaucStandin
from tests.conftest import Daemon
from tests.relay.conftest import Probe
from tests.terminal.mqtt_helpers import STORE, TERMINAL, login, make_ca, uplink_config, wait_for
from tillbox import certs
from tillbox.devbroker import DevBroker


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    folder = make_ca(tmp_path / "ca")
    certs.issue_operator(folder)
    return folder


@pytest.fixture
def broker(tmp_path: Path, ca: Path) -> Iterator[DevBroker]:
    b = DevBroker(tmp_path / "broker", ca)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def operator(broker: DevBroker, ca: Path) -> Iterator[Probe]:
    """The fleet's view: every status and cmd-result."""
    probe = Probe(broker.settings(certs.operator_files(ca)), "test-operator")
    assert probe.connect() is not None
    probe.subscribe(f"tillbox/v1/{STORE}/+/cmd-result")
    yield probe
    probe.disconnect()


@pytest.fixture
def box(tmp_path: Path, ca: Path, broker: DevBroker, rauc: RaucStandin) -> Iterator[Daemon]:
    """`tillbox terminal` with the uplink on and update.toml pointing at the stand-in."""
    config = uplink_config(tmp_path / "state", ca, broker.port)
    marker = tmp_path / "rebooted"
    reboot = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    (config.parent / "update.toml").write_text(
        f"bus = {json.dumps(rauc.address)}\nreboot_command = {json.dumps(reboot)}\n"
        "idle_poll_s = 0.1\nresolve_timeout_s = 10\n"
    )
    d = Daemon(config)
    d.start()
    yield d
    d.stop()


def fleet(broker: DevBroker, ca: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "tillbox.cli", "fleet", *args,
        "--broker", f"127.0.0.1:{broker.port}", "--pki", str(ca),
    ]  # fmt: skip


def results(operator: Probe, cmd_id: str, until: str) -> list[dict[str, Any]]:
    """cmd-results of `cmd_id` up to and including the first in state `until`."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["state"] != until:
        doc = json.loads(operator.next_message(timeout=30).payload)
        if doc.get("id") == cmd_id:
            seen.append(doc)
    return seen


def test_an_update_waits_for_the_sale_then_installs_and_comes_back_new(
    tmp_path: Path,
    ca: Path,
    broker: DevBroker,
    rauc: RaucStandin,
    bundles: BundleServer,
    operator: Probe,
    box: Daemon,
) -> None:
    data = os.urandom(200_000)
    (bundles.folder / "b.raucb").write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}

    # The box is known to the fleet by its retained status.
    def listed() -> bool:
        shown = subprocess.run(fleet(broker, ca, "status"), capture_output=True, text=True, env=env)
        return f"{STORE}/{TERMINAL}  online" in shown.stdout

    wait_for("the box in `tillbox fleet status`", listed)

    # A cashier is in the middle of a sale.
    api = httpx.Client(base_url=box.url, timeout=10)
    auth = login(api)
    r = api.post("/api/v1/shifts", json={"opening_float": 10000}, headers=auth)
    assert r.status_code == 201, r.text
    sale = api.post("/api/v1/sales", headers=auth).json()["sale_id"]

    cli = subprocess.Popen(
        fleet(broker, ca, "update", "--store", STORE, "--all", "--url", f"{bundles.url}/b.raucb",
              "--version", "2.0.0", "--sha256", sha, "--id", "fleet-1", "--wait", "90"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        waiting = results(operator, "fleet-1", "waiting")
        assert waiting[0]["state"] == "queued" and waiting[-1]["message"] == "1 sale(s) open"
        assert operator.silent(0.5) and rauc.calls() == []

        # The sale ends: the update goes on by itself.
        r = api.post(f"/api/v1/sales/{sale}/lines", json={"barcode": "43742844"}, headers=auth)
        assert r.status_code == 201, r.text
        r = api.post(
            f"/api/v1/sales/{sale}/payments",
            json={"method": "cash", "tendered": 1000},
            headers=auth,
        )
        assert r.json()["status"] == "completed"
        steps = results(operator, "fleet-1", "rebooting")
        assert [s for s in ("downloading", "installing") if any(x["state"] == s for x in steps)]
        assert rauc.calls()[0]["sha256"] == sha
        wait_for("the reboot command", (tmp_path / "rebooted").exists)

        # "Reboot": the daemon comes back, RAUC says the booted slot holds 2.0.0.
        box.stop()
        rauc.set(booted_version="2.0.0")
        box.start()
        [final] = results(operator, "fleet-1", "installed")
        assert final["ok"] and final["final"]
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, out + err
    assert f"sent update fleet-1 (2.0.0) to {STORE}/{TERMINAL}" in out
    assert f"{STORE}/{TERMINAL}: waiting 2.0.0 (1 sale(s) open)" in out
    assert f"{STORE}/{TERMINAL}: installed 2.0.0" in out

    def shows_installed() -> bool:
        shown = subprocess.run(fleet(broker, ca, "status"), capture_output=True, text=True, env=env)
        return "installed 2.0.0" in shown.stdout

    wait_for("the retained status with the result", shows_installed)


def test_the_cli_needs_a_target_and_the_operator_identity(
    tmp_path: Path, ca: Path, broker: DevBroker
) -> None:
    base = ["--url", "https://x/b.raucb", "--version", "2"]
    done = subprocess.run(fleet(broker, ca, "update", *base), capture_output=True, text=True)
    assert done.returncode == 2 and "--terminal" in done.stderr
    # A terminal's certificate is not the operator's: the broker refuses the publish.
    terminal = certs.terminal_files(ca, STORE, TERMINAL)
    cmd = [
        sys.executable, "-m", "tillbox.cli", "fleet", "update", *base,
        "--store", STORE, "--terminal", "t2", "--broker", f"127.0.0.1:{broker.port}",
        "--ca", str(certs.ca_files(ca).cert), "--cert", str(terminal.cert),
        "--key", str(terminal.key),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "refused" in done.stderr, done.stderr
