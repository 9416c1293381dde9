# purpose: the printer-kicked drawer against the simulated printer and drawer, stale kicks included.
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hwsim.escpos import EscPosPrinterSim, Kick

from drivers.drawer import (
    DrawerUnavailableError,
    DummyDrawer,
    KickOutcome,
    KickRequest,
    PrinterKickDrawer,
)
from drivers.printer import NetworkPrinter, ReceiptPrinter, SerialPrinter

FAST: dict[str, Any] = {"status_timeout_s": 0.2, "after_print_timeout_s": 1.0}


class FakeClock:
    """Seconds that only move when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["serial", "network"])
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[EscPosPrinterSim, ReceiptPrinter]]:
    with EscPosPrinterSim() as sim:
        printer: ReceiptPrinter
        if request.param == "serial":
            printer = SerialPrinter(sim.start_pty(), **FAST)
        else:
            printer = NetworkPrinter("127.0.0.1", sim.start_tcp(), **FAST)
        with printer:
            yield sim, printer


def test_kick_opens_the_drawer_and_the_sensor_reads_back(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    drawer = PrinterKickDrawer(printer)
    assert drawer.is_open() is False
    result = drawer.open()
    assert result.outcome is KickOutcome.FIRED and result.opened is True
    assert sim.drawer_open and sim.drawer_kicks == [Kick(2, 100, 100)]
    assert drawer.is_open() is True
    sim.close_drawer()
    assert drawer.is_open() is False


def test_pin_5_and_pulse_length_reach_the_printer(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    drawer = PrinterKickDrawer(printer, pin=5, on_ms=60, off_ms=200, verify_s=0.1)
    result = drawer.open()
    assert result.fired and result.opened is False  # the simulated drawer hangs on pin 2
    assert sim.drawer_kicks == [Kick(5, 60, 200)]


def test_jammed_drawer_is_reported(rig: tuple[EscPosPrinterSim, ReceiptPrinter]) -> None:
    sim, printer = rig
    sim.set_drawer_jammed()
    result = PrinterKickDrawer(printer, verify_s=0.2).open()
    assert result.fired and result.opened is False and not sim.drawer_open


def test_drawer_without_sensor_does_not_guess(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    drawer = PrinterKickDrawer(printer, has_sensor=False)
    assert drawer.open().opened is None and drawer.is_open() is None
    printer.status()  # a round trip: the printer has handled the pulse
    assert sim.drawer_open


def test_stale_kick_is_dropped_and_never_sent(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    clock = FakeClock()
    drawer = PrinterKickDrawer(printer, max_kick_age_s=3, clock=clock)
    kick = drawer.request("sale s1-t1-000042")
    clock.now += 3.5
    result = drawer.open(kick)
    assert result.outcome is KickOutcome.STALE and result.age_s == pytest.approx(3.5)
    assert not result.fired
    printer.status()  # the printer has seen everything we sent
    assert sim.drawer_kicks == [] and not sim.drawer_open


def test_kick_exactly_at_the_limit_still_fires(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    clock = FakeClock()
    drawer = PrinterKickDrawer(printer, max_kick_age_s=3, clock=clock)
    kick = drawer.request()
    clock.now += 3
    assert drawer.open(kick).fired and sim.drawer_open


def test_kick_going_stale_while_waiting_for_the_printer_is_not_sent(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    times = iter([1000.0, 1001.0, 1009.0, 1009.0, 1009.0])
    drawer = PrinterKickDrawer(printer, max_kick_age_s=5, clock=lambda: next(times))
    kick = drawer.request()  # 1000: made
    result = drawer.open(kick)  # 1001: fresh at the door; 1009: stale once the printer is ready
    assert result.outcome is KickOutcome.STALE
    printer.status()
    assert sim.drawer_kicks == []


def test_printer_away_keeps_the_kick_pending_then_fires_while_fresh(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    clock = FakeClock()
    drawer = PrinterKickDrawer(printer, max_kick_age_s=5, clock=clock)
    sim.set_offline()
    with pytest.raises(DrawerUnavailableError) as caught:
        drawer.open(drawer.request("cash sale"))
    assert "drawer key" in caught.value.message
    assert drawer.pending is not None
    sim.set_offline(False)
    clock.now += 2
    result = drawer.retry_pending()
    assert result is not None and result.fired and sim.drawer_open
    assert drawer.pending is None and drawer.retry_pending() is None


def test_printer_back_too_late_drops_the_pending_kick(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    clock = FakeClock()
    drawer = PrinterKickDrawer(printer, max_kick_age_s=5, clock=clock)
    sim.set_offline()
    with pytest.raises(DrawerUnavailableError):
        drawer.open()
    sim.set_offline(False)
    clock.now += 30
    result = drawer.retry_pending()
    assert result is not None and result.outcome is KickOutcome.STALE
    assert drawer.pending is None
    printer.status()
    assert sim.drawer_kicks == [] and not sim.drawer_open


def test_kick_is_refused_while_the_cover_is_open_and_never_fires_late(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    drawer = PrinterKickDrawer(printer)
    sim.set_cover_open()
    with pytest.raises(DrawerUnavailableError) as caught:
        drawer.open()
    assert "cover" in caught.value.message
    sim.set_cover_open(False)  # a printer holding an ESC p would fire it now
    printer.status()
    assert sim.drawer_kicks == [] and not sim.drawer_open


def test_dummy_drawer() -> None:
    clock = FakeClock()
    drawer = DummyDrawer(max_kick_age_s=2, clock=clock)
    assert drawer.open().opened is True and drawer.is_open()
    drawer.close()
    drawer.jammed = True
    assert drawer.open().opened is False
    drawer.available = False
    kick = drawer.request()
    with pytest.raises(DrawerUnavailableError):
        drawer.open(kick)
    assert drawer.pending == kick
    drawer.available = True
    clock.now += 2.5
    stale = drawer.retry_pending()
    assert stale is not None and stale.outcome is KickOutcome.STALE
    assert drawer.pulses == 2


def test_kick_request_is_a_plain_value() -> None:
    assert KickRequest(12.5, "x") == KickRequest(12.5, "x")
    with pytest.raises(ValueError):
        DummyDrawer(max_kick_age_s=0)
