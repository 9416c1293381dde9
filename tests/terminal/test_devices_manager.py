# purpose: the device manager's debounce, transitions and stable ids, fed fake discovery results.
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.discovery import Found, port_from_location, stable_ids
from terminal.devices.manager import DeviceManager
from terminal.devices.settings import DevicesConfig
from terminal.devices.tracker import Tracker

EPSON = (0x04B8, 0x0E15)


def usb(serial: str | None, port: str | None, node: str = "usb:1:5", vp: Any = EPSON) -> Found:
    return Found("usb", node, vp[0], vp[1], serial, port, kind="printer")


def tty(node: str, serial: str | None, port: str | None) -> Found:
    return Found("serial", node, 0x0C2E, 0x0B61, serial, port, name="scanner", kind="serial")


# -- stable ids --------------------------------------------------------------------------


def test_id_is_the_serial_number_whatever_port_or_node() -> None:
    a = stable_ids([usb("TM88-X123", "1-1.4", "usb:1:5")])
    b = stable_ids([usb("TM88-X123", "1-2", "usb:1:9")])
    assert list(a.values()) == list(b.values()) == ["usb:04b8:0e15:sn:TM88-X123"]


def test_without_a_serial_the_id_is_the_port_path() -> None:
    (one,) = stable_ids([usb(None, "1-1.4")]).values()
    (two,) = stable_ids([usb(None, "1-1.4", node="usb:1:77")]).values()
    assert one == two == "usb:04b8:0e15:port:1-1.4"


@pytest.mark.parametrize("serial", ["", "0", "000000000", "    "])
def test_placeholder_serials_fall_back_to_the_port(serial: str) -> None:
    (only,) = stable_ids([usb(serial, "1-3")]).values()
    assert only == "usb:04b8:0e15:port:1-3"


def test_two_devices_sharing_a_serial_are_named_by_port_never_by_count() -> None:
    ids = stable_ids([usb("12345678", "1-1"), usb("12345678", "1-2", node="usb:1:6")])
    assert sorted(ids.values()) == ["usb:04b8:0e15:port:1-1", "usb:04b8:0e15:port:1-2"]
    assert not any(v.endswith(("#1", "#2", ":0", ":1")) for v in ids.values())


def test_one_device_on_two_buses_keeps_its_serial() -> None:
    scanner_tty = tty("/dev/ttyACM0", "SC-9", "1-1.2")
    scanner_usb = Found("usb", "usb:1:3", 0x0C2E, 0x0B61, "SC-9", "1-1.2")
    ids = stable_ids([scanner_tty, scanner_usb])
    assert set(ids.values()) == {"usb:0c2e:0b61:sn:SC-9"}


def test_non_usb_devices_are_named_by_node() -> None:
    (only,) = stable_ids([Found("serial", "/dev/ttyS0")]).values()
    assert only == "serial:/dev/ttyS0"


@pytest.mark.parametrize(
    ("location", "port"),
    [
        ("1-1.4:1.0", "1-1.4"),
        ("usb-0000:00:14.0-1.4/input0", "usb-0000:00:14.0-1.4"),
        ("", None),
        (None, None),
    ],
)
def test_port_from_location(location: str | None, port: str | None) -> None:
    assert port_from_location(location) == port


# -- debounce ----------------------------------------------------------------------------


def test_a_device_is_offline_only_after_n_missed_checks_in_a_row() -> None:
    t = Tracker(missing_after=3)
    t.add("p", "printer", "Printer", "tcp:x")
    first = t.observe("p", True)
    assert first is not None and first.names() == ["online"]
    assert t.observe("p", False) is None
    assert t.observe("p", False) is None
    assert t.observe("p", True) is None  # back before the third miss: nothing happened
    assert t.observe("p", False) is None
    assert t.observe("p", False) is None
    gone = t.observe("p", False)
    assert gone is not None and (gone.before, gone.after) == ("online", "offline")
    assert t.observe("p", False) is None  # said once
    back = t.observe("p", True)
    assert back is not None and back.names() == ["online"]


def test_conditions_change_once_each_way() -> None:
    t = Tracker(missing_after=2)
    t.add("p", "printer", "Printer", "tcp:x")
    t.observe("p", True)
    change = t.observe("p", True, {"paper_low"})
    assert change is not None and change.names() == ["paper_low"]
    assert t.observe("p", True, {"paper_low"}) is None
    change = t.observe("p", True, {"paper_out"})
    assert change is not None and change.names() == ["paper_out", "-paper_low"]


def test_discovered_devices_are_forgotten_after_n_missed_sweeps() -> None:
    t = Tracker(missing_after=2)
    t.add("u", "usb", "x", "usb:1:2", configured=False)
    assert [c.names() for c in t.sweep({"u": frozenset()}, "usb")] == [["online"]]
    assert t.sweep({}, "usb") == []
    (gone,) = t.sweep({}, "usb")
    assert gone.after == "gone" and "u" not in t.records


# -- the manager with fake discovery ---------------------------------------------------


class FakeBus:
    def __init__(self) -> None:
        self.now: list[Found] = []

    def __call__(self) -> list[Found]:
        return list(self.now)


def test_manager_debounces_a_replug_and_keeps_the_id(tmp_path: Path) -> None:
    bus = FakeBus()
    events: list[dict[str, Any]] = []
    manager = DeviceManager(
        DevicesConfig(missing_after=3),
        tmp_path,
        publish=events.append,
        listers=[("serial", bus)],
    )
    try:
        bus.now = [tty("/dev/ttyACM0", "SC-9", "1-1.2")]
        manager.check()
        (plugged,) = [e for e in events if e["event"] == "health"]
        device_id = plugged["device"]["id"]
        assert device_id == "usb:0c2e:0b61:sn:SC-9" and plugged["device"]["state"] == "online"
        assert plugged["device"]["hardware"]["node"] == "/dev/ttyACM0"
        events.clear()
        bus.now = []  # unplugged for two checks: a re-plug, not a loss
        manager.check()
        manager.check()
        bus.now = [tty("/dev/ttyACM1", "SC-9", "1-1.3")]  # back on another node and port
        manager.check()
        assert events == []
        (view,) = [v for v in manager.views() if v["id"] == device_id]
        assert view["hardware"]["node"] == "/dev/ttyACM1"
        bus.now = []
        for _ in range(3):
            manager.check()
        (gone,) = events
        assert gone["device"] == {"id": device_id, "state": "gone"} and gone["changes"] == ["gone"]
    finally:
        manager.stop()


def test_manager_without_devices_lists_nothing_and_reports_no_queue(tmp_path: Path) -> None:
    manager = DeviceManager(DevicesConfig(discover=False), tmp_path, listers=[])
    try:
        manager.check()
        assert manager.views() == []
        assert manager.health() == {"devices": [], "receipts_queued": 0}
        assert "tillbox_receipts_queued 0" in manager.metrics_text()
    finally:
        manager.stop()
