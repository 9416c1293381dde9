# purpose: receipt printer driver (ESC/POS): one base class, transports, status codec, renderer.
"""Receipt printers speaking ESC/POS.

``ReceiptPrinter`` is the contract; ``NetworkPrinter``, ``SerialPrinter``, ``UsbPrinter``,
``FilePrinter`` and ``DummyPrinter`` move the bytes. ``status`` and ``receipt`` are pure.
"""

from __future__ import annotations

from .base import PrintOutcome, ReceiptPrinter, raise_for_health
from .dummy import DummyPrinter
from .errors import (
    CoverOpenError,
    PaperOutError,
    PrinterError,
    PrinterFaultError,
    PrinterOfflineError,
    PrinterTransportError,
)
from .file import FilePrinter
from .network import NetworkPrinter
from .receipt import Receipt, RenderOptions, code_page_for, format_money, render_receipt
from .serial import SerialPrinter
from .status import PrinterHealth, parse_health, status_request
from .usb import UsbPrinter

__all__ = [
    "CoverOpenError",
    "DummyPrinter",
    "FilePrinter",
    "NetworkPrinter",
    "PaperOutError",
    "PrintOutcome",
    "PrinterError",
    "PrinterFaultError",
    "PrinterHealth",
    "PrinterOfflineError",
    "PrinterTransportError",
    "Receipt",
    "ReceiptPrinter",
    "RenderOptions",
    "SerialPrinter",
    "UsbPrinter",
    "code_page_for",
    "format_money",
    "parse_health",
    "raise_for_health",
    "render_receipt",
    "status_request",
]
