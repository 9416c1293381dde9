# SerialScanner against the simulated scanner on a real pty: order, drops, unplug and replug.
from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.scanner import (
    DroppedScan,
    DropReason,
    FramingConfig,
    Scan,
    ScannerBusyError,
    ScannerConfigError,
    ScannerDisconnectedError,
    ScannerError,
    ScannerNotFoundError,
    ScannerState,
    SerialScanner,
    Suffix,
)

try:
    from hwsim.scanner import SimulatedSerialScanner
except ModuleNotFoundError:  # hw-sim/ is not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hw-sim"))
    from hwsim.scanner import SimulatedSerialScanner

WAIT = 5.0


class Events:
    """Collects what a scanner reports, from its reader thread."""

    def __init__(self) -> None:
        self.scans: queue.Queue[Scan] = queue.Queue()
        self.drops: queue.Queue[DroppedScan] = queue.Queue()
        self.errors: queue.Queue[ScannerError] = queue.Queue()
        self.states: queue.Queue[ScannerState] = queue.Queue()

    def scanner(self, port: str, **kwargs: Any) -> SerialScanner:
        kwargs = {"retry_interval": 0.05, "read_timeout": 0.05, **kwargs}
        return SerialScanner(
            port,
            on_scan=self.scans.put,
            on_drop=self.drops.put,
            on_error=lambda _id, err: self.errors.put(err),
            on_state=lambda _id, state: self.states.put(state),
            **kwargs,
        )

    def wait_state(self, wanted: ScannerState) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            state = self.states.get(timeout=max(deadline - time.monotonic(), 0.01))
            if state is wanted:
                return

    def codes(self, count: int) -> list[str]:
        return [self.scans.get(timeout=WAIT).code for _ in range(count)]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedSerialScanner]:
    with SimulatedSerialScanner(tmp_path / "dev" / "scanner") as device:
        yield device


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def scanner(sim: SimulatedSerialScanner, events: Events) -> Iterator[SerialScanner]:
    reader = events.scanner(sim.port)
    reader.start()
    events.wait_state(ScannerState.CONNECTED)
    yield reader
    reader.close()


def test_scans_arrive_in_order_with_the_device_id(
    sim: SimulatedSerialScanner, events: Events, scanner: SerialScanner
) -> None:
    codes = [f"{n:013d}" for n in range(25)]
    for code in codes:
        sim.scan(code)
    scans = [events.scans.get(timeout=WAIT) for _ in codes]
    assert [s.code for s in scans] == codes
    assert {s.device_id for s in scans} == {f"serial:{sim.port}"}
    assert scanner.device_id == f"serial:{sim.port}"


def test_garbage_overlong_and_partial_lines(
    sim: SimulatedSerialScanner, events: Events, scanner: SerialScanner
) -> None:
    sim.scan("111")
    sim.send_garbage()
    sim.send_overlong(65)
    sim.send_partial("22")
    sim.scan("2")
    sim.scan("333")
    assert events.codes(3) == ["111", "222", "333"]
    drops = [events.drops.get(timeout=WAIT) for _ in range(2)]
    assert [d.reason for d in drops] == [DropReason.GARBAGE, DropReason.OVERLONG]
    assert drops[1].data == "9" * 64
    assert events.drops.empty()


def test_unplug_is_reported_once_and_replug_resumes_the_same_scanner(
    sim: SimulatedSerialScanner, events: Events, scanner: SerialScanner
) -> None:
    sim.scan("before")
    assert events.codes(1) == ["before"]
    sim.unplug()
    events.wait_state(ScannerState.DISCONNECTED)
    assert isinstance(events.errors.get(timeout=WAIT), ScannerDisconnectedError)
    time.sleep(0.3)  # several retries meet the missing symlink
    assert events.errors.empty(), "an outage must be reported once, not on every retry"
    assert scanner.state is ScannerState.DISCONNECTED

    sim.replug()
    events.wait_state(ScannerState.CONNECTED)
    sim.scan("after")
    assert events.codes(1) == ["after"]
    assert events.errors.empty()


def test_a_partial_line_cut_off_by_the_unplug_is_not_glued_to_the_next_scan(
    sim: SimulatedSerialScanner, events: Events, scanner: SerialScanner
) -> None:
    sim.send_partial("123")
    time.sleep(0.2)
    sim.unplug()
    assert events.drops.get(timeout=WAIT).reason is DropReason.INCOMPLETE
    sim.replug()
    events.wait_state(ScannerState.CONNECTED)
    sim.scan("456")
    assert events.codes(1) == ["456"]


def test_a_scanner_absent_at_start_is_picked_up_when_plugged(
    tmp_path: Path, events: Events
) -> None:
    link = tmp_path / "later" / "scanner"
    reader = events.scanner(str(link))
    reader.start()
    try:
        events.wait_state(ScannerState.DISCONNECTED)
        assert isinstance(events.errors.get(timeout=WAIT), ScannerNotFoundError)
        with SimulatedSerialScanner(link) as device:
            events.wait_state(ScannerState.CONNECTED)
            device.scan("hello")
            assert events.codes(1) == ["hello"]
    finally:
        reader.close()


def test_a_second_reader_of_the_same_port_is_refused_as_busy(
    sim: SimulatedSerialScanner, scanner: SerialScanner
) -> None:
    other = Events()
    second = other.scanner(sim.port, device_id="second")
    second.start()
    try:
        err = other.errors.get(timeout=WAIT)
        assert isinstance(err, ScannerBusyError)
        assert "stop the other program" in str(err)
    finally:
        second.close()


def test_stale_partial_line_is_dropped_after_the_timeout(
    sim: SimulatedSerialScanner, events: Events
) -> None:
    reader = events.scanner(sim.port, framing=FramingConfig(suffix=Suffix.CRLF, timeout=0.15))
    sim.suffix = b"\r\n"
    reader.start()
    try:
        events.wait_state(ScannerState.CONNECTED)
        sim.send_partial("123")
        drop = events.drops.get(timeout=WAIT)
        assert (drop.reason, drop.data) == (DropReason.STALE, "123")
        sim.scan("456")
        assert events.codes(1) == ["456"]
    finally:
        reader.close()


def test_stop_then_start_reads_again(
    sim: SimulatedSerialScanner, events: Events, scanner: SerialScanner
) -> None:
    scanner.stop()
    events.wait_state(ScannerState.STOPPED)
    scanner.start()
    events.wait_state(ScannerState.CONNECTED)
    sim.scan("again")
    assert events.codes(1) == ["again"]


def test_run_blocks_in_a_thread_the_caller_owns(
    sim: SimulatedSerialScanner, events: Events
) -> None:
    reader = events.scanner(sim.port)
    thread = threading.Thread(target=reader.run)
    thread.start()
    try:
        events.wait_state(ScannerState.CONNECTED)
        sim.scan("owned")
        assert events.codes(1) == ["owned"]
    finally:
        reader.close()
        thread.join(WAIT)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    "kwargs",
    [{"baudrate": 12345}, {"parity": "M"}, {"bytesize": 5}, {"retry_interval": 0.0}],
)
def test_bad_port_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ScannerConfigError):
        Events().scanner("/dev/ttyACM0", **kwargs)


def test_scans_made_while_nobody_listened_are_not_rung_up_later(
    sim: SimulatedSerialScanner, events: Events
) -> None:
    sim.scan("made-while-till-was-down")
    reader = events.scanner(sim.port)
    reader.start()
    try:
        events.wait_state(ScannerState.CONNECTED)
        sim.scan("fresh")
        assert events.codes(1) == ["fresh"]
    finally:
        reader.close()
