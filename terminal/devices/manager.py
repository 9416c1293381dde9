# purpose: DeviceManager: one device thread finds, checks, prints on and kicks the devices.
"""The devices inside the box, owned by one thread.

Every ``poll_interval_s`` (or at once on a udev event or a scanner's state change) the
device thread checks each configured device and, with ``discover`` on, lists what is
plugged in. A ``Tracker`` turns those checks into transitions, which are logged once and
published as ``{"type": "device", "event": "health", ...}``. Printing and drawer kicks run
on the same thread as jobs, so a slow printer never holds the journal writer or the event
loop, and status polls never interleave with a receipt's bytes.

Hardware is reached only through ``drivers/``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from drivers import discovery

if TYPE_CHECKING:  # the drivers load only when a device is configured (memory, start-up)
    from drivers.drawer import CashDrawer, KickRequest, KickResult
    from drivers.printer import PrinterError, PrinterHealth, ReceiptPrinter
    from drivers.scanner import BarcodeScanner, DroppedScan, Scan, ScannerError

from .reprints import Queued, ReprintQueue
from .settings import DevicesConfig, PrinterSettings, ScannerSettings
from .tracker import Change, Record, Tracker

log = logging.getLogger("tillbox.devices")

Publish = Callable[[dict[str, Any]], None]
JournalKick = Callable[[str, bool | None, dict[str, Any]], None]
ScanHandler = Callable[["Scan"], None]
Lister = Callable[[], list[discovery.Found]]
DEFAULT_LISTERS: tuple[tuple[str, Lister], ...] = (
    ("usb", discovery.list_usb),
    ("serial", discovery.list_serial),
    ("input", discovery.list_input),
)

# Conditions that stop a printer; the queue is drained when the last of them clears.
STOPPING = frozenset({"paper_out", "cover_open", "error"})
DRAIN_RETRY_S = 30.0
MESSAGES = {
    ("printer", "paper_low"): "The receipt roll is nearly empty. Have a new roll ready.",
    ("drawer", "offline"): "The cash drawer cannot be opened while its printer is away. "
    "Use the drawer key if needed.",
    ("drawer", "drawer_open"): "The cash drawer is open. Close it after the sale.",
    ("drawer", "jammed"): "The cash drawer did not open when kicked. Check that nothing blocks "
    "it, then open it with the key.",
    ("scanner", "offline"): "The barcode scanner is not connected. Check its cable; it "
    "reconnects by itself. Until then, key items in.",
}


def _printer_messages() -> None:
    """The printer's own advice, once its driver is loaded."""
    from drivers.printer import (
        CoverOpenError,
        PaperOutError,
        PrinterFaultError,
        PrinterOfflineError,
    )

    MESSAGES[("printer", "offline")] = PrinterOfflineError.default_message
    MESSAGES[("printer", "paper_out")] = PaperOutError.default_message
    MESSAGES[("printer", "cover_open")] = CoverOpenError.default_message
    MESSAGES[("printer", "error")] = PrinterFaultError.default_message


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def print_reason(err: PrinterError) -> str:
    """A stable word for why a print failed: offline, paper_out, cover_open, fault, transport."""
    from drivers.printer import (
        CoverOpenError,
        PaperOutError,
        PrinterFaultError,
        PrinterOfflineError,
        PrinterTransportError,
    )

    reasons: tuple[tuple[type[PrinterError], str], ...] = (
        (PaperOutError, "paper_out"),
        (CoverOpenError, "cover_open"),
        (PrinterFaultError, "fault"),
        (PrinterTransportError, "transport"),
        (PrinterOfflineError, "offline"),
    )
    for cls, word in reasons:
        if isinstance(err, cls):
            return word
    return "error"


def printer_conditions(health: PrinterHealth) -> frozenset[str]:
    """Conditions worth showing for a printer that answered."""
    found = set()
    if health.paper_out:
        found.add("paper_out")
    elif health.paper_low:
        found.add("paper_low")
    if health.cover_open:
        found.add("cover_open")
    if health.error or health.cutter_error or health.unrecoverable_error:
        found.add("error")
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class PrintResult:
    """What became of one receipt."""

    receipt_no: str
    printed: bool
    queued: bool
    reason: str | None = None
    message: str | None = None
    paper_low: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "receipt_no": self.receipt_no,
            "printed": self.printed,
            "queued": self.queued,
            "reason": self.reason,
            "message": self.message,
            "paper_low": self.paper_low,
        }


@dataclass(slots=True)
class _PendingKick:
    reason: str
    journal: Callable[[bool | None], None] | None


def printer_address(s: PrinterSettings) -> str:
    """The configured address, which is also what the printer's id is made of."""
    if s.transport == "network":
        return f"tcp:{s.host}:{s.port}"
    if s.transport == "usb":
        return f"usb:{s.vendor_id or 0:04x}:{s.product_id or 0:04x}"
    return f"{s.transport}:{s.path}"


def build_printer(s: PrinterSettings, language: str, open_high: bool) -> ReceiptPrinter | None:
    """The printer driver for the settings (not opened yet), or None for transport none."""
    if s.transport == "none":
        return None
    from drivers.printer import (
        FilePrinter,
        NetworkPrinter,
        RenderOptions,
        SerialPrinter,
        UsbPrinter,
    )

    _printer_messages()
    options = RenderOptions(
        paper_mm=s.paper_mm,
        language=language,
        code_page=s.code_page or None,
        columns=s.columns,
        receipt_code=s.receipt_code,
    )
    common: dict[str, Any] = {
        "options": options,
        "status_timeout_s": s.status_timeout_s,
        "after_print_timeout_s": s.after_print_timeout_s,
        "drawer_open_high": open_high,
        "name": "receipt printer",
    }
    if s.transport == "serial":
        return SerialPrinter(s.path, baudrate=s.baudrate, rtscts=s.rtscts, **common)
    if s.transport == "network":
        return NetworkPrinter(s.host, s.port, connect_timeout_s=2.0, **common)
    if s.transport == "usb":
        assert s.vendor_id is not None and s.product_id is not None
        return UsbPrinter(s.vendor_id, s.product_id, **common)
    if s.transport == "file":
        return FilePrinter(s.path, bidirectional=s.bidirectional, **common)
    return None


class DeviceManager:
    """Finds, checks and drives the devices; every driver call runs on its one thread."""

    def __init__(
        self,
        config: DevicesConfig,
        state_dir: Path,
        *,
        language: str = "de",
        publish: Publish | None = None,
        on_scan: ScanHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
        listers: Sequence[tuple[str, Lister]] | None = None,
    ) -> None:
        self.config = config
        self.listers = list(DEFAULT_LISTERS if listers is None else listers)
        self.publish_cb = publish or (lambda _msg: None)
        self.on_scan = on_scan or (lambda _scan: None)
        self.clock = clock
        self.tracker = Tracker(config.missing_after)
        self.counters: Counter[str] = Counter()
        self.reprints = ReprintQueue(state_dir / "printq.sqlite")
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._stopping = False
        self._next_drain = 0.0
        self._pending_kick: _PendingKick | None = None
        self._drawer_jammed = False
        self._scanner_errors: dict[str, str] = {}
        self.hotplug = discovery.HotplugWatcher(lambda _action, _sub: self.wake())

        s = config.printer
        self.printer = build_printer(s, language, config.drawer.open_high)
        self.printer_id: str | None = None
        self.drawer: CashDrawer | None = None
        self.drawer_id: str | None = None
        if self.printer is not None:
            self.printer_id = f"printer:{printer_address(s)}"
            self.tracker.add(self.printer_id, "printer", "Receipt printer", printer_address(s))
            if config.drawer.enabled:
                from drivers.drawer import PrinterKickDrawer

                d = config.drawer
                self.drawer = PrinterKickDrawer(
                    self.printer,
                    pin=d.pin,
                    on_ms=d.pulse_ms,
                    off_ms=d.pulse_ms,
                    has_sensor=d.sensor,
                    verify_s=d.verify_s,
                    max_kick_age_s=d.max_kick_age_s,
                    clock=clock,
                )
                self.drawer_id = f"drawer:{printer_address(s)}:pin{d.pin}"
                self.tracker.add(
                    self.drawer_id, "drawer", "Cash drawer", f"{printer_address(s)} pin {d.pin}"
                )
        self.scanners: dict[str, BarcodeScanner] = {}
        for sc in config.scanners:
            scanner_id = f"scanner:{sc.mode}:{sc.path}"
            self.scanners[scanner_id] = self._build_scanner(scanner_id, sc)
            self.tracker.add(scanner_id, "scanner", f"Barcode scanner ({sc.mode})", sc.path)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the device thread, the scanners and, where udev runs, hotplug events."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="devices", daemon=True)
        self._thread.start()
        for scanner in self.scanners.values():
            try:
                scanner.start()
            except Exception as err:  # a ScannerError: a missing dependency or bad setting
                log.error("%s: %s", scanner.device_id, err)
        mode = self.config.hotplug
        if mode != "poll" and not self.hotplug.start() and mode == "udev":
            log.warning("devices: hotplug = udev, but udev is not running here; polling only")

    def stop(self) -> None:
        """Stop scanners, the device thread and hotplug; close the printer."""
        self.hotplug.stop()
        for scanner in self.scanners.values():
            scanner.close()
        self._stopping = True
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self.printer is not None:
            self.printer.close()
        self.reprints.close()

    def wake(self) -> None:
        """Check the devices now rather than at the next poll."""
        self._wake.set()
        self._jobs.put(lambda: None)

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the device thread, after the jobs before it."""
        self._jobs.put(job)

    # ------------------------------------------------------------------- the thread

    def _run(self) -> None:
        next_check = 0.0
        while True:
            now = self.clock()
            wait = max(0.0, next_check - now)
            if self._pending_kick is not None:
                wait = min(wait, 0.2)
            try:
                job = self._jobs.get(timeout=wait)
            except queue.Empty:
                job = None
            if self._stopping:
                return
            if job is not None:
                try:
                    job()
                except Exception:
                    log.exception("devices: a job failed")
            if self._wake.is_set() or self.clock() >= next_check:
                self._wake.clear()
                try:
                    self.check()
                except Exception:
                    log.exception("devices: check failed")
                next_check = self.clock() + self.config.poll_interval_s
            elif self._pending_kick is not None:
                self._retry_kick()

    def check(self) -> None:
        """One round of checks; call on the device thread (or in tests, with no thread)."""
        self._check_printer()
        self._retry_kick()
        for scanner_id, scanner in self.scanners.items():
            seen = scanner.state.value == "connected"
            self._observe(scanner_id, seen)
        if self.config.discover:
            self._discover()

    def _observe(
        self, device_id: str, seen: bool, conditions: frozenset[str] = frozenset()
    ) -> None:
        with self._lock:
            change = self.tracker.observe(device_id, seen, conditions, now=self._wall())
        self._apply(change)

    @staticmethod
    def _wall() -> float:
        return round(time.time(), 3)

    def _check_printer(self, health: PrinterHealth | None = None) -> None:
        if self.printer is None or self.printer_id is None:
            return
        from drivers.printer import PrinterError, PrinterHealth

        if health is None:
            try:
                health = self.printer.status()
            except PrinterError:
                health = PrinterHealth.silent()
        seen = health.responding if health.reported else self._file_present()
        conditions = printer_conditions(health) if seen else frozenset()
        with self._lock:
            change = self.tracker.observe(self.printer_id, seen, conditions, now=self._wall())
        self._apply(change)
        if self.drawer_id is not None:
            drawer_conditions = set()
            if seen and health.drawer_open:
                drawer_conditions.add("drawer_open")
                self._drawer_jammed = False
            if self._drawer_jammed:
                drawer_conditions.add("jammed")
            self._observe(self.drawer_id, seen, frozenset(drawer_conditions))
        record = self.tracker.records.get(self.printer_id)
        ready = record is not None and record.state == "online" and not record.conditions & STOPPING
        if ready and len(self.reprints):
            became_ready = change is not None and (
                change.before != "online" or change.removed & STOPPING
            )
            if became_ready or self.clock() >= self._next_drain:
                self.drain()

    def _file_present(self) -> bool:
        path = self.config.printer.path
        return bool(path) and discovery.path_present(path) is not None

    def _discover(self) -> None:
        now = self._wall()
        for bus, lister in self.listers:
            try:
                found = lister()
            except Exception:
                log.exception("devices: listing %s failed", bus)
                continue
            ids = discovery.stable_ids(found)
            seen: dict[str, frozenset[str]] = {}
            with self._lock:
                for item, device_id in ids.items():
                    known = self.tracker.records.get(device_id)
                    if known is not None and known.configured:
                        continue
                    record = self.tracker.add(
                        device_id, bus, item.name or item.kind or bus, item.node, configured=False
                    )
                    record.detail = _hardware(item)
                    seen[device_id] = frozenset()
                changes = self.tracker.sweep(seen, bus, now=now)
            for change in changes:
                self._apply(change, quiet=True)

    # ---------------------------------------------------------------- transitions

    def _apply(self, change: Change | None, *, quiet: bool = False) -> None:
        if change is None:
            return
        with self._lock:
            record = self.tracker.records.get(change.id)
            view = self.view(record) if record is not None else {"id": change.id, "state": "gone"}
        names = ", ".join(change.names())
        level = logging.INFO if quiet or change.after == "online" else logging.WARNING
        log.log(level, "device %s (%s): %s", change.id, view.get("kind", "?"), names)
        self.publish(
            {
                "event": "health",
                "device": view,
                "changes": change.names(),
                "message": view.get("message"),
            }
        )

    def publish(self, body: dict[str, Any]) -> None:
        """Push one device event on the event stream."""
        try:
            self.publish_cb({"type": "device", "at": utcnow(), **body})
        except Exception:
            log.exception("devices: publishing failed")

    def view(self, record: Record) -> dict[str, Any]:
        """The device as the kiosk and ``GET /api/v1/devices`` show it."""
        conditions = sorted(record.conditions)
        message = None
        if record.state == "offline":
            message = MESSAGES.get((record.kind, "offline"))
            if record.kind == "scanner" and record.id in self._scanner_errors:
                message = f"{message} ({self._scanner_errors[record.id]})"
        else:
            for name in ("paper_out", "cover_open", "error", "jammed", "paper_low"):
                if name in record.conditions:
                    message = MESSAGES.get((record.kind, name))
                    break
        return {
            "id": record.id,
            "kind": record.kind,
            "name": record.name,
            "configured": record.configured,
            "address": record.address,
            "state": record.state,
            "conditions": conditions,
            "message": message,
            "since": None
            if record.since is None
            else datetime.fromtimestamp(record.since, UTC).isoformat(timespec="milliseconds")[:-6]
            + "Z",
            "hardware": dict(record.detail),
        }

    def views(self) -> list[dict[str, Any]]:
        """Every device known now, configured ones first."""
        with self._lock:
            records = sorted(
                self.tracker.records.values(), key=lambda r: (not r.configured, r.kind, r.id)
            )
            return [self.view(r) for r in records]

    # ------------------------------------------------------------------ printing

    def print_receipt(
        self, model: dict[str, Any], *, sale_id: str, refund_id: str | None, origin: str
    ) -> PrintResult:
        """Print one receipt model now (device thread); queue it for a reprint if that fails."""
        from drivers.printer import PrinterError, Receipt

        receipt_no = str(model["receipt_no"])
        if self.printer is None:
            return PrintResult(receipt_no, False, False, "no_printer", "No printer is set up.")
        try:
            outcome = self.printer.print_receipt(cast(Receipt, model))
        except PrinterError as err:
            reason = print_reason(err)
            self.counters["print_failed"] += 1
            queued = self.reprints.put(
                model,
                sale_id=sale_id,
                refund_id=refund_id,
                at=utcnow(),
                reason=reason,
                message=err.message,
            )
            log.warning("receipt %s not printed (%s): %s", receipt_no, reason, err)
            self.publish(
                {
                    "event": "print_failed",
                    "device": self.printer_id,
                    "receipt_no": receipt_no,
                    "sale_id": sale_id,
                    "reason": reason,
                    "message": err.message + " The receipt waits in the reprint queue.",
                    "queued": len(self.reprints),
                    "attempts": queued.attempts,
                }
            )
            self._next_drain = self.clock() + DRAIN_RETRY_S
            self._check_printer(err.health)
            return PrintResult(receipt_no, False, True, reason, err.message)
        self.counters["printed"] += 1
        was_queued = self.reprints.remove(receipt_no)
        self.publish(
            {
                "event": "printed",
                "device": self.printer_id,
                "receipt_no": receipt_no,
                "sale_id": sale_id,
                "origin": origin,
                "was_queued": was_queued,
                "queued": len(self.reprints),
            }
        )
        self._check_printer(outcome.after)
        return PrintResult(receipt_no, True, False, paper_low=outcome.paper_low)

    def drain(self) -> int:
        """Print queued receipts oldest first until one fails; how many printed."""
        printed = 0
        for item in self.reprints.items():
            if self._stopping:
                break
            result = self._print_queued(item)
            if not result.printed:
                break
            printed += 1
        if printed:
            log.info("reprint queue: %d receipt(s) printed, %d left", printed, len(self.reprints))
        self._next_drain = self.clock() + DRAIN_RETRY_S
        return printed

    def _print_queued(self, item: Queued) -> PrintResult:
        return self.print_receipt(
            item.model, sale_id=item.sale_id, refund_id=item.refund_id, origin="queue"
        )

    # --------------------------------------------------------------------- drawer

    def kick_request(self, reason: str) -> KickRequest | None:
        """Stamp a kick now (any thread): its age counts from here."""
        if self.drawer is None or reason not in self.config.drawer.kick_on:
            return None
        return self.drawer.request(reason)

    def kick(self, request: KickRequest, journal: Callable[[bool | None], None] | None) -> None:
        """Open the drawer for ``request`` (device thread); ``journal`` records a fired kick."""
        from drivers.drawer import DrawerError

        if self.drawer is None:
            return
        try:
            result = self.drawer.open(request)
        except DrawerError as err:
            self._pending_kick = _PendingKick(request.reason, journal)
            self.publish(
                {
                    "event": "drawer_kick",
                    "device": self.drawer_id,
                    "reason": request.reason,
                    "outcome": "waiting",
                    "message": err.message,
                }
            )
            return
        self._kicked(result, journal)

    def _retry_kick(self) -> None:
        pending = self._pending_kick
        if pending is None or self.drawer is None:
            return
        from drivers.drawer import DrawerError  # not before: it loads python-escpos

        try:
            result = self.drawer.retry_pending()
        except DrawerError:
            return
        self._pending_kick = None
        if result is not None:
            self._kicked(result, pending.journal)

    def _kicked(self, result: KickResult, journal: Callable[[bool | None], None] | None) -> None:
        reason = result.request.reason
        if not result.fired:
            self.counters["kick_stale"] += 1
            self.publish(
                {
                    "event": "drawer_kick",
                    "device": self.drawer_id,
                    "reason": reason,
                    "outcome": "stale",
                    "age_s": round(result.age_s, 1),
                    "message": "The drawer was not opened: its printer was away for more than "
                    f"{self.config.drawer.max_kick_age_s:g} s, and a late kick would open it "
                    "unattended. Open it with the key if needed.",
                }
            )
            return
        self.counters["kick_fired"] += 1
        jammed = result.opened is False
        self._drawer_jammed = jammed
        if jammed:
            self.counters["kick_jammed"] += 1
            log.warning("cash drawer did not open after a kick (%s)", reason)
        self._check_printer()  # the drawer's record shows the jam before anyone hears of it
        self.publish(
            {
                "event": "drawer_kick",
                "device": self.drawer_id,
                "reason": reason,
                "outcome": "jammed" if jammed else "fired",
                "opened": result.opened,
                "message": MESSAGES[("drawer", "jammed")] if jammed else None,
            }
        )
        if journal is not None:
            try:
                journal(result.opened)
            except Exception:
                log.exception("devices: journaling the drawer kick failed")

    # -------------------------------------------------------------------- scanners

    def _build_scanner(self, scanner_id: str, s: ScannerSettings) -> BarcodeScanner:
        from drivers.scanner import EvdevScanner, FramingConfig, SerialScanner, Suffix

        framing = FramingConfig(suffix=Suffix.parse(s.suffix), max_length=s.max_length)
        common: dict[str, Any] = {
            "on_scan": self._scanned,
            "framing": framing,
            "device_id": scanner_id,
            "retry_interval": self.config.retry_interval_s,
            "read_timeout": 0.05,
            "on_drop": self._dropped,
            "on_error": self._scanner_error,
            "on_state": lambda _id, _state: self.wake(),
        }
        if s.mode == "evdev":
            return EvdevScanner(s.path, layout=s.layout, grab=s.grab, **common)
        return SerialScanner(s.path, baudrate=s.baudrate, **common)

    def _scanned(self, scan: Scan) -> None:
        self.counters["scans"] += 1
        self.on_scan(scan)

    def _dropped(self, dropped: DroppedScan) -> None:
        self.counters["scan_dropped"] += 1
        # The data stays out of the event and the log: it is line noise, or worse.
        log.warning(
            "scanner %s: dropped a %s line (%d characters)",
            dropped.device_id,
            dropped.reason.value,
            len(dropped.data),
        )
        self.publish(
            {
                "event": "scan_dropped",
                "device": dropped.device_id,
                "reason": dropped.reason.value,
                "message": "The scan could not be read cleanly and was ignored. Scan again.",
            }
        )

    def _scanner_error(self, scanner_id: str, err: ScannerError) -> None:
        with self._lock:
            self._scanner_errors[scanner_id] = type(err).__name__
        log.info("scanner %s: %s", scanner_id, err)

    # -------------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: each configured device's state, and the reprint queue."""
        return {
            "devices": [
                {
                    "id": v["id"],
                    "kind": v["kind"],
                    "state": v["state"],
                    "conditions": v["conditions"],
                }
                for v in self.views()
                if v["configured"]
            ],
            "receipts_queued": len(self.reprints),
        }

    def metrics_text(self) -> str:
        """Prometheus lines for the devices (appended to ``/metrics``)."""
        out = [
            "# HELP tillbox_device_up 1 while a configured device answers, else 0",
            "# TYPE tillbox_device_up gauge",
        ]
        views = [v for v in self.views() if v["configured"]]
        for v in views:
            out.append(
                f'tillbox_device_up{{id="{v["id"]}",kind="{v["kind"]}"}} '
                f"{int(v['state'] == 'online')}"
            )
        out += [
            "# HELP tillbox_device_condition 1 for each condition a device reports",
            "# TYPE tillbox_device_condition gauge",
        ]
        for v in views:
            for name in v["conditions"]:
                out.append(f'tillbox_device_condition{{id="{v["id"]}",condition="{name}"}} 1')
        gauges = (
            ("tillbox_receipts_queued", "gauge", "Receipts waiting in the reprint queue", None),
            ("tillbox_receipts_printed_total", "counter", "Receipts printed", "printed"),
            ("tillbox_print_failures_total", "counter", "Receipts that failed", "print_failed"),
            ("tillbox_drawer_kicks_total", "counter", "Drawer kicks that fired", "kick_fired"),
            ("tillbox_drawer_kicks_stale_total", "counter", "Kicks dropped as stale", "kick_stale"),
            ("tillbox_scans_total", "counter", "Scans read from scanners", "scans"),
            ("tillbox_scans_dropped_total", "counter", "Scanner lines dropped", "scan_dropped"),
            ("tillbox_scans_refused_total", "counter", "Scans the till refused", "scan_refused"),
        )
        for name, kind, text, key in gauges:
            value = len(self.reprints) if key is None else self.counters[key]
            out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(out) + "\n"


def _hardware(item: discovery.Found) -> dict[str, Any]:
    return {
        "bus": item.bus,
        "node": item.node,
        "vendor_id": None if item.vendor_id is None else f"{item.vendor_id:04x}",
        "product_id": None if item.product_id is None else f"{item.product_id:04x}",
        "serial": item.serial,
        "port_path": item.port_path,
    }
