# purpose: the real printer drivers against the simulated printer over a real pty and real TCP.
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hwsim.escpos import EscPosPrinterSim, PrintedReceipt
from PIL import Image, ImageDraw

from drivers.printer import (
    CoverOpenError,
    DummyPrinter,
    FilePrinter,
    NetworkPrinter,
    PaperOutError,
    PrinterError,
    PrinterFaultError,
    PrinterHealth,
    PrinterOfflineError,
    PrinterTransportError,
    ReceiptPrinter,
    RenderOptions,
    SerialPrinter,
    UsbPrinter,
)
from drivers.printer.sample import sample_receipt

FAST: dict[str, Any] = {"status_timeout_s": 0.2, "after_print_timeout_s": 1.0}


def make_printer(kind: str, sim: EscPosPrinterSim, options: RenderOptions) -> ReceiptPrinter:
    if kind == "serial":
        return SerialPrinter(sim.start_pty(), baudrate=38400, rtscts=True, options=options, **FAST)
    if kind == "network":
        return NetworkPrinter("127.0.0.1", sim.start_tcp(), options=options, **FAST)
    return FilePrinter(sim.start_pty(), bidirectional=True, options=options, **FAST)


@pytest.fixture(params=["serial", "network", "file"])
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[EscPosPrinterSim, ReceiptPrinter]]:
    with EscPosPrinterSim() as sim:
        printer = make_printer(request.param, sim, RenderOptions(paper_mm=80))
        try:
            yield sim, printer
        finally:
            printer.close()


def check_matches_model(receipt: PrintedReceipt) -> None:
    model = sample_receipt()
    head = receipt.lines[0]
    assert head.text == model["store"]["name"] == "Café Müller"
    assert (head.bold, head.align, head.height) == (True, "center", 2)
    text = receipt.text
    for line in model["lines"]:
        assert line["name"] in text
    assert re.search(r"0\.452 kg × 2,99 +1,35 B", text)
    assert re.search(r"Zwischensumme +2,25 €", text)
    (total,) = [line for line in receipt.lines if line.text.startswith("SUMME")]
    assert total.text.endswith("2,25 €") and total.width == 2 and total.bold
    assert re.search(r"B 7% +2,10 +0,15 +2,25", text)
    assert re.search(r"Rückgeld +2,75 €", text)
    assert "************1234" in text
    assert "Danke für Ihren Einkauf!" in text
    assert receipt.cut == "partial"


def test_receipt_prints_and_reads_back_as_the_model(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    outcome = printer.print_receipt(sample_receipt())
    assert outcome.before.can_print and outcome.after.can_print and not outcome.paper_low
    (receipt,) = sim.wait_for_receipts(1)
    check_matches_model(receipt)
    assert [(b.symbology, b.data) for b in receipt.barcodes] == [("CODE128", "s1-t1-000042")]


def test_58mm_receipt_carries_a_qr_of_the_receipt_number() -> None:
    with EscPosPrinterSim() as sim:
        printer = make_printer("network", sim, RenderOptions(paper_mm=58))
        with printer:
            printer.print_receipt(sample_receipt())
        (receipt,) = sim.wait_for_receipts(1)
    assert receipt.qr_codes == ["s1-t1-000042"]
    assert max(len(line.text) * line.width for line in receipt.lines) <= 32


def test_logo_arrives_as_a_raster_image(tmp_path: Path) -> None:
    logo = Image.new("L", (200, 40), 255)
    ImageDraw.Draw(logo).rectangle((0, 0, 99, 39), fill=0)
    with EscPosPrinterSim(image_dir=tmp_path) as sim:
        printer = make_printer("serial", sim, RenderOptions(paper_mm=58, logo=logo))
        with printer:
            printer.print_receipt(sample_receipt())
        (receipt,) = sim.wait_for_receipts(1)
    (image,) = receipt.images
    assert (image.width, image.height) == (384, 40)
    pixels = image.to_image().convert("L")
    assert pixels.getpixel((92 + 10, 20)) == 0  # left half of the centered logo is black
    assert pixels.getpixel((92 + 150, 20)) == 255
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_paper_near_end_prints_and_warns(rig: tuple[EscPosPrinterSim, ReceiptPrinter]) -> None:
    sim, printer = rig
    sim.set_paper_near_end()
    outcome = printer.print_receipt(sample_receipt())
    assert outcome.paper_low
    assert len(sim.wait_for_receipts(1)) == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("paper_out", PaperOutError),
        ("cover_open", CoverOpenError),
        ("offline", PrinterOfflineError),
        ("cutter_error", PrinterFaultError),
    ],
)
def test_fault_gives_its_error_and_the_same_printer_recovers(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter], fault: str, error: type[PrinterError]
) -> None:
    sim, printer = rig
    printer.print_receipt(sample_receipt())
    sim.set_fault(fault)  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        printer.print_receipt(sample_receipt())
    assert caught.value.message and not caught.value.during_print
    assert "then print again" in caught.value.message
    assert not printer.status().can_print
    sim.set_fault(fault, False)  # type: ignore[arg-type]
    printer.print_receipt(sample_receipt())
    receipts = sim.wait_for_receipts(2)
    assert len(receipts) == 2, "nothing printed while the fault was on"
    check_matches_model(receipts[1])


def test_status_of_a_silent_printer_does_not_raise(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    sim.set_offline()
    health = printer.status()
    assert not health.responding and health.problems() == ("offline",)
    sim.set_offline(False)
    assert printer.status().can_print


def test_drawer_state_reads_back_through_status(
    rig: tuple[EscPosPrinterSim, ReceiptPrinter],
) -> None:
    sim, printer = rig
    assert printer.status().drawer_open is False
    assert printer.kick_drawer() is True
    assert printer.status().drawer_open is True and sim.drawer_open
    sim.close_drawer()
    assert printer.status().drawer_open is False


def test_unreachable_network_printer_is_offline() -> None:
    with EscPosPrinterSim() as sim:
        port = sim.start_tcp()
    printer = NetworkPrinter("127.0.0.1", port, connect_timeout_s=0.5, **FAST)
    with pytest.raises(PrinterOfflineError) as caught:
        printer.print_receipt(sample_receipt())
    assert isinstance(caught.value.__cause__, Exception)
    assert printer.status() == PrinterHealth.silent()


def test_missing_serial_port_is_offline(tmp_path: Path) -> None:
    printer = SerialPrinter(str(tmp_path / "ttyUSB9"), **FAST)
    with pytest.raises(PrinterOfflineError):
        printer.print_receipt(sample_receipt())


def test_write_only_file_printer_ships_the_rendered_bytes(tmp_path: Path) -> None:
    out = tmp_path / "lp0"
    printer = FilePrinter(str(out))
    outcome = printer.print_receipt(sample_receipt())
    printer.close()
    assert not outcome.before.reported
    assert out.read_bytes() == printer.render(sample_receipt())


def test_usb_printer_without_a_device_says_what_to_do() -> None:
    printer = UsbPrinter(0x04B8, 0x0E15, **FAST)
    with pytest.raises((PrinterOfflineError, PrinterTransportError)) as caught:
        printer.print_receipt(sample_receipt())
    assert caught.value.message.endswith(".")
    printer.close()


def test_dummy_printer_keeps_bytes_and_obeys_its_health() -> None:
    printer = DummyPrinter()
    printer.print_receipt(sample_receipt())
    assert printer.output == printer.render(sample_receipt())
    printer.health = PrinterHealth(online=False, paper_out=True)
    with pytest.raises(PaperOutError):
        printer.print_receipt(sample_receipt())
    printer.health = PrinterHealth.silent()
    with pytest.raises(PrinterOfflineError):
        printer.kick_drawer()
    assert len(printer.jobs) == 1


def test_printer_that_stops_during_the_print_reports_it() -> None:
    class StopsMidway(DummyPrinter):
        def _write(self, data: bytes) -> None:
            super()._write(data)
            self.health = PrinterHealth(online=False, cover_open=True)

    printer = StopsMidway()
    with pytest.raises(CoverOpenError) as caught:
        printer.print_receipt(sample_receipt())
    assert caught.value.during_print and "reprint" in caught.value.message


def test_port_without_permission_says_so() -> None:
    class Locked(DummyPrinter):
        def _open(self) -> None:
            raise PermissionError(13, "Permission denied", "/dev/usb/lp0")

    with pytest.raises(PrinterTransportError) as caught:
        Locked().print_receipt(sample_receipt())
    assert "udev" in caught.value.message and "/dev/usb/lp0" in caught.value.detail
