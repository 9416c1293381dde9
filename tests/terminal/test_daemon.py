# The real daemon process: kill -9 at random moments, a full disk, a read-only disk, the stream.
from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from terminal.config import load
from terminal.demo.run import free_port, write_config
from terminal.journal import Reader, verify
from terminal.sale import Till
from tests.conftest import Daemon, demo_barcodes

API = "/api/v1"


def sell_until_killed(
    daemon: Daemon, confirmed: list[tuple[str, str]], rng: random.Random, barcodes: list[str]
) -> None:
    """Ring up cash sales until the daemon dies; remember every sale it answered completed."""
    try:
        client = daemon.client()
        while True:
            sale = client.post("/sales").json()["sale_id"]
            for _ in range(rng.randint(1, 3)):
                client.post(f"/sales/{sale}/lines", json={"barcode": rng.choice(barcodes)})
            r = client.post(f"/sales/{sale}/payments", json={"method": "cash", "tendered": 100_000})
            body = r.json()
            if r.status_code == 201 and body.get("status") == "completed":
                confirmed.append((sale, body["receipt_no"]))
    except (httpx.TransportError, KeyError, ValueError):
        return


def kill_loop(config_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    barcodes = demo_barcodes()
    daemon = Daemon(config_path)
    daemon.start()
    daemon.client().post("/shifts", json={"opening_float": 10000})
    confirmed: list[tuple[str, str]] = []
    try:
        for _ in range(kills):
            seller = threading.Thread(
                target=sell_until_killed, args=(daemon, confirmed, rng, barcodes)
            )
            seller.start()
            time.sleep(rng.uniform(0.02, 0.5))
            daemon.kill()
            seller.join(timeout=30)
            daemon.start()
        # After the last restart every confirmed sale is there, completed, once.
        client = daemon.client()
        for sale, receipt in confirmed:
            view = client.get(f"/sales/{sale}").json()
            assert (view["status"], view["receipt_no"]) == ("completed", receipt)
    finally:
        daemon.stop()

    journal = load(config_path, environ={}).journal_path
    verdict = verify(journal)
    assert verdict.ok, verdict
    envs = list(Reader(journal).events_from(1))
    assert [e["seq"] for e in envs] == list(range(1, len(envs) + 1))
    completed = [e["data"] for e in envs if e["type"] == "sale.completed"]
    numbers = [int(d["receipt_no"].rsplit("-", 1)[1]) for d in completed]
    assert numbers == list(range(1, len(completed) + 1)), "receipt numbers have a gap"
    assert {s for s, _ in confirmed} <= {d["sale_id"] for d in completed}
    # No sale is half-written: the whole journal folds cleanly and each sale balances.
    till = Till(load(config_path, environ={}).policy())
    for e in envs:
        till.apply(e["type"], e["data"], e["seq"], e["at"])
    for d in completed:
        assert d["paid"] == d["total"] + d["rounding"]
        assert sum(p["amount"] for p in d["payments"]) == d["paid"]
    assert len(confirmed) >= kills // 2, "the loop barely sold anything"


def test_kill_minus_nine_loses_no_completed_sale(tmp_path: Path) -> None:
    kill_loop(write_config(tmp_path / "state", free_port()), kills=50, seed=7)


@pytest.mark.soak
def test_kill_soak(tmp_path: Path) -> None:
    kill_loop(write_config(tmp_path / "state", free_port()), kills=500, seed=11)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB filesystem for the state folder, so 'full' and 'read-only' are real."""
    mount = tmp_path / "state"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def cash_sale(client: httpx.Client, barcode: str) -> httpx.Response:
    sale = client.post("/sales")
    if sale.status_code != 201:
        return sale
    sid = sale.json()["sale_id"]
    client.post(f"/sales/{sid}/lines", json={"barcode": barcode})
    return client.post(f"/sales/{sid}/payments", json={"method": "cash", "tendered": 100_000})


def test_full_disk_refuses_sales_and_recovers(small_disk: Path) -> None:
    barcode = demo_barcodes()[0]
    daemon = Daemon(write_config(small_disk, free_port()), env={"TILLBOX_MIN_FREE_MB": "4"})
    daemon.start()
    try:
        client = daemon.client()
        client.post("/shifts", json={"opening_float": 0})
        assert cash_sale(client, barcode).json()["status"] == "completed"
        open_sale = client.post("/sales").json()["sale_id"]
        client.post(f"/sales/{open_sale}/lines", json={"barcode": barcode})

        # Below min_free_mb: no new sale starts, the open one can still finish.
        filler = small_disk / "filler"
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=13"],
            check=True,
            capture_output=True,
        )
        r = client.post("/sales")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "disk_full"
        health = httpx.get(f"{daemon.url}/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"

        # Completely full: the write fails, the answer says so, nothing is half-kept.
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={small_disk / 'rest'}", "bs=64k"], capture_output=True
        )
        failures = [
            client.post(f"/sales/{open_sale}/lines", json={"barcode": barcode}) for _ in range(20)
        ]
        refused = [r for r in failures if r.status_code == 503]
        assert refused, "a full disk never refused a write"
        assert refused[0].json()["error"]["code"] == "journal_unavailable"
        assert "full" in refused[0].json()["error"]["message"]
        assert httpx.get(f"{daemon.url}/healthz").json()["journal"]["writable"] is False

        (small_disk / "rest").unlink()
        filler.unlink()
        r = client.post(
            f"/sales/{open_sale}/payments", json={"method": "cash", "tendered": 100_000}
        )
        assert r.json()["status"] == "completed"
        assert httpx.get(f"{daemon.url}/healthz").json()["status"] == "ok"
        accepted = sum(1 for r in failures if r.status_code == 201)
        assert len(r.json()["lines"]) == 1 + accepted
    finally:
        daemon.stop()
    assert verify(daemon.config.journal_path).ok


def test_read_only_disk_is_reported(small_disk: Path) -> None:
    """Storage remounted read-only (as ext4 does after errors): the box says so, sells nothing."""
    barcode = demo_barcodes()[0]
    daemon = Daemon(write_config(small_disk, free_port()), env={"TILLBOX_MIN_FREE_MB": "4"})
    daemon.start()
    client = daemon.client()
    client.post("/shifts", json={"opening_float": 0})
    done = cash_sale(client, barcode).json()
    assert done.get("status") == "completed", done
    daemon.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    daemon.start()
    try:
        client = daemon.client()
        health = httpx.get(f"{daemon.url}/healthz")
        assert health.status_code == 503
        assert health.json()["journal"]["writable"] is False
        assert "read-only" in health.json()["journal"]["error"]
        r = client.post("/sales")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "journal_unavailable"
        assert client.get(f"/sales/{done['sale_id']}").json()["status"] == "completed"
    finally:
        daemon.stop()


def test_event_stream_pushes_cart_changes(daemon: Daemon) -> None:
    client = daemon.client()
    client.post("/shifts", json={"opening_float": 0})
    sale = client.post("/sales").json()["sale_id"]
    token = client.headers["Authorization"].removeprefix("Bearer ")
    seen: list[dict] = []

    def listen() -> None:
        with httpx.stream(
            "GET", f"{daemon.url}{API}/events", params={"token": token}, timeout=10
        ) as stream:
            for line in stream.iter_lines():
                # Device health and uplink news share the stream; wait for the sale's event.
                if line.startswith("data: ") and json.loads(line[6:])["type"].startswith("sale."):
                    seen.append(json.loads(line[6:]))
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    time.sleep(0.5)
    client.post(f"/sales/{sale}/lines", json={"barcode": demo_barcodes()[0]})
    listener.join(timeout=10)
    assert seen and seen[0]["type"] == "sale.line_added"
    assert seen[0]["data"]["sale_id"] == sale
