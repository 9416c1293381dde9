# purpose: the update handler against a RAUC stand-in on a real D-Bus: success, failure, waiting.
from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from terminal.update import Updater, UpdateSettings
from tests.appliance.conftest import BundleServer, RaucStandin
from tests.terminal.mqtt_helpers import wait_for


class Box:
    """An Updater as the daemon wires it, with its reports collected."""

    def __init__(
        self, tmp_path: Path, rauc: RaucStandin, busy: list[Callable[[], str | None]] | None = None
    ) -> None:
        self.state = tmp_path / "state"
        self.state.mkdir(exist_ok=True)
        self.marker = tmp_path / "rebooted"
        self.settings = UpdateSettings(
            bus=rauc.address,
            reboot_command=[sys.executable, "-c", f"open({str(self.marker)!r}, 'a').write('x')"],
            idle_poll_s=0.05,
            resolve_timeout_s=5,
        )
        self.results: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.updater = Updater(
            self.settings, self.state, self.results.append, self.statuses.append, busy
        )

    def send(self, **cmd: Any) -> None:
        self.updater.submit(json.dumps(cmd).encode())

    def final(self, cmd_id: str, timeout: float = 15) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            mine = [r for r in self.results if r["id"] == cmd_id and r["final"]]
            return mine[-1] if mine else None

        found: dict[str, Any] = wait_for(f"a final result for {cmd_id}", done, timeout)
        return found

    def states(self, cmd_id: str) -> list[str]:
        return [r["state"] for r in self.results if r["id"] == cmd_id]


@pytest.fixture
def boxes() -> Iterator[list[Box]]:
    made: list[Box] = []
    yield made
    for box in made:
        box.updater.stop()


@pytest.fixture
def bundle(bundles: BundleServer) -> tuple[str, str]:
    data = os.urandom(300_000)
    (bundles.folder / "tillbox-2.0.0.raucb").write_bytes(data)
    return f"{bundles.url}/tillbox-2.0.0.raucb", hashlib.sha256(data).hexdigest()


def new_box(boxes: list[Box], *args: Any, **kw: Any) -> Box:
    box = Box(*args, **kw)
    boxes.append(box)
    box.updater.start()
    return box


def test_an_update_downloads_installs_and_reboots(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    url, sha = bundle
    box = new_box(boxes, tmp_path, rauc)
    box.send(id="u1", url=url, version="2.0.0", sha256=sha)
    wait_for("the reboot", box.marker.exists)
    states = box.states("u1")
    assert states[0] == "queued" and states[-1] == "rebooting"
    assert {"downloading", "installing"} <= set(states)
    progress = [r["progress"] for r in box.results if r["state"] == "installing"]
    assert progress[0] == 0 and progress[-1] == 100 and progress == sorted(progress)
    assert all(r["ok"] and not r["final"] for r in box.results)
    [call] = rauc.calls()
    assert call["sha256"] == sha  # RAUC got exactly the bytes that were served
    assert not Path(call["bundle"]).exists()  # and the download is gone again
    assert box.statuses[-1]["state"] == "rebooting"
    assert json.loads((box.state / "update.json").read_text())["state"] == "rebooting"

    # The next boot: the daemon asks RAUC which version the booted slot holds.
    box.updater.stop()
    rauc.set(booted_version="2.0.0")
    after = new_box(boxes, tmp_path, rauc)
    final = after.final("u1")
    assert final["ok"] and final["state"] == "installed" and final["version"] == "2.0.0"
    # A repeated command (QoS 1 redelivery) gets the same answer and does nothing else.
    after.send(id="u1", url=url, version="2.0.0", sha256=sha)
    wait_for("the repeated answer", lambda: len(after.results) == 2)
    assert after.results[1] == final and len(rauc.calls()) == 1


def test_a_box_that_comes_back_on_the_old_version_reports_the_rollback(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    box = new_box(boxes, tmp_path, rauc)
    box.send(id="u2", url=bundle[0], version="2.0.0")
    wait_for("the reboot", box.marker.exists)
    box.updater.stop()
    rauc.set(booted_version="1.0")  # the mark-good check failed; the firmware went back
    final = new_box(boxes, tmp_path, rauc).final("u2")
    assert not final["ok"] and final["state"] == "rolled_back"
    assert "1.0" in final["error"]


def test_rauc_refusing_the_bundle_is_reported_and_nothing_reboots(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    rauc.set(result=1, error="signature verification failed: unable to get local issuer")
    box = new_box(boxes, tmp_path, rauc)
    box.send(id="u3", url=bundle[0], version="2.0.0")
    final = box.final("u3")
    assert not final["ok"] and final["state"] == "failed"
    assert "unable to get local issuer" in final["error"]
    assert not box.marker.exists()
    assert box.statuses[-1]["state"] == "failed"
    assert list((box.state / "updates").iterdir()) == []


def test_an_open_sale_makes_the_update_wait(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    open_sales = ["s-1"]
    payment = {"open": True}
    box = new_box(
        boxes,
        tmp_path,
        rauc,
        busy=[lambda: f"{len(open_sales)} sale(s) open" if open_sales else None],
    )
    box.updater.add_busy_check(lambda: "a card payment is open" if payment["open"] else None)
    box.send(id="u4", url=bundle[0], version="2.0.0")
    wait_for("waiting", lambda: "waiting" in box.states("u4"))
    assert box.results[-1]["message"] == "1 sale(s) open"
    open_sales.clear()
    wait_for(
        "the payment reason", lambda: box.results[-1].get("message") == "a card payment is open"
    )
    assert rauc.calls() == [] and not box.marker.exists()
    payment["open"] = False
    wait_for("the reboot", box.marker.exists)
    assert len(rauc.calls()) == 1


def test_a_wrong_checksum_stops_before_rauc(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    box = new_box(boxes, tmp_path, rauc)
    box.send(id="u5", url=bundle[0], version="2.0.0", sha256="0" * 64)
    final = box.final("u5")
    assert final["state"] == "failed" and "SHA-256" in final["error"]
    assert rauc.calls() == []


def test_bad_commands_and_a_second_update_are_refused(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    hold = ["sale"]
    box = new_box(boxes, tmp_path, rauc, busy=[lambda: "1 sale(s) open" if hold else None])
    box.send(id="bad1", url="ftp://example/x.raucb", version="2")
    box.send(id="bad2", url=bundle[0], version="2.0.0", extra=1)
    box.updater.submit(b"not json")
    box.send(id="u6", url=bundle[0], version="2.0.0")
    wait_for("waiting", lambda: "waiting" in box.states("u6"))
    box.send(id="u7", url=bundle[0], version="3.0.0")
    refused = {r["id"]: r for r in box.results if r["state"] == "refused"}
    assert set(refused) == {"bad1", "bad2", "u7"}
    assert "url" in refused["bad1"]["error"] and "extra" in refused["bad2"]["error"]
    assert "u6" in refused["u7"]["error"]
    assert all(r["final"] and not r["ok"] for r in refused.values())
    hold.clear()
    wait_for("the reboot", box.marker.exists)


def test_rauc_missing_from_the_bus_fails_cleanly(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    rauc.stop()
    box = new_box(boxes, tmp_path, rauc)
    box.send(id="u8", url=bundle[0], version="2.0.0")
    final = box.final("u8")
    assert final["state"] == "failed" and "RAUC" in final["error"]


def test_an_update_cut_off_by_a_restart_starts_over(
    tmp_path: Path, rauc: RaucStandin, bundle: tuple[str, str], boxes: list[Box]
) -> None:
    url, sha = bundle
    hold = ["sale"]
    box = new_box(boxes, tmp_path, rauc, busy=[lambda: "1 sale(s) open" if hold else None])
    box.send(id="u9", url=url, version="2.0.0", sha256=sha)
    wait_for("waiting", lambda: "waiting" in box.states("u9"))
    box.updater.stop()  # a power cut while waiting
    again = new_box(boxes, tmp_path, rauc)
    wait_for("the reboot", again.marker.exists)
    assert again.results[0]["message"] == "resumed"
    assert rauc.calls()[0]["sha256"] == sha  # the checksum survived the restart
