# DummyScanner: the shipped stand-in delivers through the same framer and reports like a port.
from __future__ import annotations

import logging

import pytest

from drivers.scanner import (
    DroppedScan,
    DropReason,
    DummyScanner,
    FramingConfig,
    Scan,
    ScannerDisconnectedError,
    ScannerError,
    ScannerState,
    Suffix,
)


class Record:
    def __init__(self) -> None:
        self.scans: list[Scan] = []
        self.drops: list[DroppedScan] = []
        self.errors: list[ScannerError] = []
        self.states: list[ScannerState] = []

    def scanner(self, **kwargs: object) -> DummyScanner:
        return DummyScanner(
            "dummy:counter",
            on_scan=self.scans.append,
            on_drop=self.drops.append,
            on_error=lambda _id, err: self.errors.append(err),
            on_state=lambda _id, state: self.states.append(state),
            **kwargs,  # type: ignore[arg-type]
        )


def test_pushed_codes_arrive_with_the_device_id() -> None:
    rec = Record()
    with rec.scanner() as scanner:
        scanner.push("4006381333931")
        scanner.push("0013748911")
    assert [(s.code, s.device_id) for s in rec.scans] == [
        ("4006381333931", "dummy:counter"),
        ("0013748911", "dummy:counter"),
    ]
    assert rec.states == [ScannerState.CONNECTED, ScannerState.STOPPED, ScannerState.CLOSED]


def test_raw_garbage_and_overlong_lines_are_reported_as_drops() -> None:
    rec = Record()
    with rec.scanner(framing=FramingConfig(suffix=Suffix.TAB, max_length=5)) as scanner:
        scanner.push_raw(b"\x00\x01\t123456789\t")
        scanner.push("12")
    assert [d.reason for d in rec.drops] == [DropReason.GARBAGE, DropReason.OVERLONG]
    assert [s.code for s in rec.scans] == ["12"]


def test_unplug_reports_once_and_refuses_scans_until_replugged() -> None:
    rec = Record()
    scanner = rec.scanner()
    scanner.start()
    scanner.push_raw("123")
    scanner.unplug()
    with pytest.raises(ScannerDisconnectedError):
        scanner.push("1")
    scanner.replug()
    scanner.push("2")
    assert [d.reason for d in rec.drops] == [DropReason.INCOMPLETE]
    assert len(rec.errors) == 1
    assert [s.code for s in rec.scans] == ["2"]
    assert rec.states == [
        ScannerState.CONNECTED,
        ScannerState.DISCONNECTED,
        ScannerState.CONNECTED,
    ]


def test_a_failing_callback_is_logged_and_does_not_stop_the_scanner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def flaky(scan: Scan) -> None:
        seen.append(scan.code)
        if scan.code == "1":
            raise RuntimeError("app bug")

    scanner = DummyScanner(on_scan=flaky)
    scanner.start()
    with caplog.at_level(logging.ERROR):
        scanner.push("1")
    scanner.push("2")
    assert seen == ["1", "2"]
    assert "callback" in caplog.text


def test_a_closed_scanner_cannot_start_again() -> None:
    scanner = DummyScanner(on_scan=lambda scan: None)
    scanner.close()
    with pytest.raises(ScannerError, match="closed"):
        scanner.start()


def test_tick_expires_a_stale_partial_line() -> None:
    rec = Record()
    scanner = rec.scanner(framing=FramingConfig(timeout=0.1))
    scanner.start()
    scanner.push_raw("12", now=1.0)
    scanner.tick(1.5)
    scanner.push("34", now=1.6)
    assert [d.reason for d in rec.drops] == [DropReason.STALE]
    assert [s.code for s in rec.scans] == ["34"]
