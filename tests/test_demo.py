# The main job: `tillbox demo` runs broker, relay and terminal; a sale reaches the relay.
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from terminal.demo.run import free_port


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def processes_under(folder: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(folder)], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def test_demo_runs_the_whole_box_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "demo"
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILLBOX_")}
    with open(log, "wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tillbox.cli",
                "demo",
                "--dir",
                str(folder),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return bool(httpx.get(f"{url}/healthz").json()["uplink"]["connected"])
            except (httpx.HTTPError, KeyError, ValueError):
                return False

        wait_for(healthy, 60, "the demo's terminal to connect to its broker")
        assert f"open {url}/" in log.read_text()

        api = httpx.Client(base_url=f"{url}/api/v1", timeout=10)
        token = api.post("/sessions", json={"pin": "1111"}).json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        api.post("/shifts", json={"opening_float": 0})
        sale = api.post("/sales").json()["sale_id"]
        api.post(f"/sales/{sale}/lines", json={"barcode": "43742844"})
        done = api.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 100})
        assert done.json()["status"] == "completed"
        seq = httpx.get(f"{url}/healthz").json()["journal"]["seq"]

        def relay_has_it() -> bool:
            status = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tillbox.cli",
                    "relay",
                    "status",
                    "--config",
                    str(folder / "relay.toml"),
                ],
                capture_output=True,
                text=True,
            )
            # After the sale the till also journals its drawer opening: ack at least `seq`.
            return any(
                int(line.split()[1]) >= seq
                for line in status.stdout.splitlines()
                if line.startswith("demo/t1 ")
            )

        wait_for(relay_has_it, 30, "the relay to ack the sale")
        wait_for(
            lambda: httpx.get(f"{url}/healthz").json()["outbox"]["depth"] == 0,
            15,
            "the outbox to empty",
        )
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)
    wait_for(lambda: not processes_under(folder), 15, "broker and relay to stop")
