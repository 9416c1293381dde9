# purpose: the [devices] section of terminal.toml: printer, drawer, scanners, checks.
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tillbox.settings import Strict

KickReason = Literal["sale", "refund", "no_sale", "cash_movement"]
ALL_KICKS: tuple[KickReason, ...] = ("sale", "refund", "no_sale", "cash_movement")


class PrinterSettings(Strict):
    """The receipt printer (docs/devices.md#printer)."""

    transport: Literal["none", "serial", "network", "usb", "file"] = "none"
    path: str = Field("", max_length=256)
    host: str = Field("", max_length=253)
    port: int = Field(9100, ge=1, le=65535)
    vendor_id: int | None = Field(None, ge=0, le=0xFFFF)
    product_id: int | None = Field(None, ge=0, le=0xFFFF)
    baudrate: int = Field(9600, ge=1200, le=921600)
    rtscts: bool = False
    bidirectional: bool = True
    paper_mm: Literal[58, 80] = 80
    columns: int | None = Field(None, ge=24, le=64)
    code_page: str = Field("", max_length=16)
    receipt_code: Literal["auto", "code128", "qr", "none"] = "auto"
    status_timeout_s: float = Field(0.5, ge=0.05, le=5)
    after_print_timeout_s: float = Field(3.0, ge=0.1, le=30)
    print_receipts: bool = True

    @model_validator(mode="after")
    def _addressed(self) -> PrinterSettings:
        need = {"serial": "path", "file": "path", "network": "host"}.get(self.transport)
        if need and not getattr(self, need):
            raise ValueError(f"devices.printer: transport {self.transport} needs {need}")
        if self.transport == "usb" and (self.vendor_id is None or self.product_id is None):
            raise ValueError(
                "devices.printer: transport usb needs vendor_id and product_id (lsusb shows them)"
            )
        return self


class DrawerSettings(Strict):
    """The cash drawer on the printer's kick connector."""

    enabled: bool = True
    pin: Literal[2, 5] = 2
    pulse_ms: int = Field(100, ge=10, le=500)
    sensor: bool = True
    open_high: bool = True
    verify_s: float = Field(0.5, ge=0, le=5)
    max_kick_age_s: float = Field(5.0, ge=0.5, le=60)
    kick_on: tuple[KickReason, ...] = ALL_KICKS


class ScannerSettings(Strict):
    """One barcode scanner: a serial port (CDC/ttyACM, RS-232) or an evdev keyboard wedge."""

    mode: Literal["serial", "evdev"] = "serial"
    path: str = Field(min_length=1, max_length=256)
    layout: Literal["us", "de", "fr"] = "us"
    suffix: Literal["CR", "LF", "CRLF", "TAB"] = "CR"
    baudrate: int = Field(9600, ge=1200, le=921600)
    max_length: int = Field(64, ge=1, le=8192)
    grab: bool = True

    @model_validator(mode="after")
    def _wedge_suffix(self) -> ScannerSettings:
        if self.mode == "evdev" and self.suffix not in ("CR", "TAB"):
            raise ValueError(
                "devices.scanners: a keyboard-wedge (evdev) scanner ends with CR or TAB"
            )
        return self


class DevicesConfig(Strict):
    """What is plugged into the box and how often it is checked (docs/devices.md)."""

    poll_interval_s: float = Field(1.0, ge=0.05, le=60)
    missing_after: int = Field(3, ge=1, le=100)
    hotplug: Literal["auto", "udev", "poll"] = "auto"
    discover: bool = True
    retry_interval_s: float = Field(1.0, ge=0.01, le=60)
    printer: PrinterSettings = PrinterSettings()
    drawer: DrawerSettings = DrawerSettings()
    scanners: list[ScannerSettings] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _distinct(self) -> DevicesConfig:
        paths = [s.path for s in self.scanners]
        if len(set(paths)) != len(paths):
            raise ValueError("devices.scanners: two scanners share a path")
        return self
