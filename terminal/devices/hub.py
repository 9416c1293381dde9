# purpose: DeviceHub ties devices to the till: receipts and kicks from the journal, scans to sales.
"""What the journal says happened drives the devices, never the other way round.

The hub follows the event stream: a completed sale or refund is printed from the journal
(``receipt_model``), a cash tender or cash movement kicks the drawer and is journaled as
``drawer.opened``, a no-sale kicks it. Scans go to the newest open sale through the same
one writer as every other change. The device work itself runs on the ``DeviceManager``'s
thread; the event loop only hands it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from ..auth import Sessions
from ..config import TerminalConfig
from ..journal import Reader
from ..receipt import receipt_model
from ..sale import SaleError, Till
from ..sale.till import Sale
from ..service import TillService, Unavailable, new_id
from .manager import DeviceManager, PrintResult

if TYPE_CHECKING:
    from drivers.scanner import Scan

log = logging.getLogger("tillbox.devices")

HANDLED = "handled_seq"
RECEIPT_TYPES = ("sale.completed", "sale.refunded")
SCAN_TIMEOUT_S = 15.0


class _NoOpenSale(Exception):
    """Raised inside a decision: there is no open sale for the scan to go to."""


def newest_open_sale(till: Till) -> Sale | None:
    """The one counter's current sale: the most recently opened one still open."""
    sales = till.state.sales.values()
    return max(sales, key=lambda s: s.opened_seq) if sales else None


def _is_cash(payments: list[dict[str, Any]]) -> bool:
    return any(p.get("method") == "cash" and p.get("amount", 0) for p in payments)


class DeviceHub:
    """The devices of one till, wired to its service and sessions."""

    def __init__(self, config: TerminalConfig, service: TillService, sessions: Sessions) -> None:
        self.config = config
        self.service = service
        self.sessions = sessions
        self.manager = DeviceManager(
            config.devices,
            config.state_dir,
            language=config.locale.split("-")[0],
            publish=service.publish,
            on_scan=self._on_scan,
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._reader: Reader | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._queue = self.service.subscribe()
        self.manager.start()
        # Before the follower hands over anything: receipts owed from before a restart.
        self.manager.submit(self._catch_up)
        self._task = asyncio.create_task(self._follow(self._queue), name="devices-follow")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._queue is not None:
            self.service.unsubscribe(self._queue)
        await asyncio.to_thread(self.manager.stop)
        if self._reader is not None:
            self._reader.close()

    # ---------------------------------------------------------- journal → devices

    async def _follow(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            message = await queue.get()
            try:
                self.on_event(message)
            except Exception:
                log.exception("devices: could not act on %s", message.get("type"))

    def on_event(self, message: dict[str, Any]) -> None:
        """A journaled event arrived (event loop): stamp kicks now, hand the work over."""
        if "seq" not in message or "data" not in message:
            return  # not a journal event (device, uplink)
        kind, data, seq = message["type"], message["data"], int(message["seq"])
        m = self.manager
        if kind == "sale.completed":
            if _is_cash(data["payments"]):
                self._kick("sale", data["cashier"], data["sale_id"], data["receipt_no"])
            m.submit(lambda: self._print_journaled(seq, data["sale_id"], None))
        elif kind == "sale.refunded":
            if _is_cash(data["payments"]):
                self._kick("refund", data.get("user"), data["sale_id"], data["receipt_no"])
            m.submit(lambda: self._print_journaled(seq, data["sale_id"], data["refund_id"]))
        elif kind == "drawer.opened" and data.get("reason") == "no_sale":
            request = m.kick_request("no_sale")
            if request is not None:
                m.submit(lambda: m.kick(request, None))  # the no-sale is journaled already
        elif kind == "shift.cash_moved":
            self._kick("cash_movement", data.get("user"), None, None)

    def _kick(
        self, reason: str, user: str | None, sale_id: str | None, receipt_no: str | None
    ) -> None:
        request = self.manager.kick_request(reason)
        if request is None:
            return

        def journal(opened: bool | None) -> None:
            self._journal_kick(reason, opened, user, sale_id, receipt_no)

        self.manager.submit(lambda: self.manager.kick(request, journal))

    def _journal_kick(
        self,
        reason: str,
        opened: bool | None,
        user: str | None,
        sale_id: str | None,
        receipt_no: str | None,
    ) -> None:
        """Record a fired automatic kick (device thread → the one writer)."""
        assert self.loop is not None

        def decide(till: Till) -> list[Any]:
            return till.drawer_kicked(
                reason,  # type: ignore[arg-type]
                opened,
                user=user,
                sale_id=sale_id,
                receipt_no=receipt_no,
            )

        future = asyncio.run_coroutine_threadsafe(
            self.service.write(decide, lambda _envs: None), self.loop
        )
        future.result(timeout=10)

    def _reader_now(self) -> Reader:
        if self._reader is None:
            self._reader = Reader(self.config.journal_path, immutable=self.service.journal is None)
        return self._reader

    def _model(self, sale_id: str, refund_id: str | None) -> dict[str, Any]:
        view = self.service.sale_view(sale_id, self._reader_now())
        return receipt_model(self.config, view, refund_id)

    def _print_journaled(self, seq: int, sale_id: str, refund_id: str | None) -> None:
        """Device thread: print the receipt of a sale or refund just journaled."""
        m = self.manager
        if m.printer is None:
            return
        mark = m.reprints.mark(HANDLED)
        if mark is not None and seq <= mark:
            return  # queued by the catch-up already
        if self.config.devices.printer.print_receipts:
            m.print_receipt(
                self._model(sale_id, refund_id), sale_id=sale_id, refund_id=refund_id, origin="sale"
            )
        m.reprints.set_mark(HANDLED, seq)

    def _catch_up(self) -> None:
        """Device thread, at start: queue receipts of sales journaled while nobody printed."""
        m = self.manager
        if m.printer is None or not self.config.devices.printer.print_receipts:
            return
        reader = self._reader_now()
        head = reader.last_seq()
        mark = m.reprints.mark(HANDLED)
        if mark is not None:
            owed = 0
            for env in reader.events_from(mark + 1):
                if env["type"] not in RECEIPT_TYPES:
                    continue
                data = env["data"]
                refund_id = data.get("refund_id") if env["type"] == "sale.refunded" else None
                m.reprints.put(
                    self._model(data["sale_id"], refund_id),
                    sale_id=data["sale_id"],
                    refund_id=refund_id,
                    at=env["at"],
                    reason="restart",
                    message="The till stopped before this receipt was printed.",
                )
                owed += 1
            if owed:
                log.warning("reprint queue: %d receipt(s) owed from before the restart", owed)
        m.reprints.set_mark(HANDLED, head)
        if len(m.reprints):
            m.wake()

    def reprint(self, sale_id: str, refund_id: str | None) -> Future[PrintResult]:
        """Print a past sale's (or refund's) receipt again; the future holds the outcome."""
        model = receipt_model(self.config, self.service.sale_view(sale_id), refund_id)
        future: Future[PrintResult] = Future()

        def job() -> None:
            try:
                future.set_result(
                    self.manager.print_receipt(
                        model, sale_id=sale_id, refund_id=refund_id, origin="reprint"
                    )
                )
            except BaseException as err:
                future.set_exception(err)

        self.manager.submit(job)
        return future

    # ------------------------------------------------------------------ scanning

    def _on_scan(self, scan: Scan) -> None:
        """Scanner thread: hand the scan to the event loop and wait, so scans stay in order."""
        loop = self.loop
        if loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.scan(scan.code, scan.device_id), loop)
        try:
            future.result(timeout=SCAN_TIMEOUT_S)
        except Exception:
            log.exception("scanner %s: the scan was not handled", scan.device_id)

    async def scan(self, code: str, device_id: str) -> dict[str, Any] | None:
        """Add the scanned item to the newest open sale, opening one if there is none.

        Every refusal becomes a ``scan_refused`` device event with the till's own message.
        """
        session = self.sessions.latest()
        if session is None:
            self._refuse(
                device_id, code, "login_required", "Log in with your PIN, then scan again."
            )
            return None
        try:
            item = self.service.catalog.by_barcode(code)
        except SaleError as err:
            if err.code == "bad_barcode" and self._receipt_scanned(code, device_id):
                return None
            self._refuse(device_id, code, err.code, err.message)
            return None
        line_id = new_id()

        def add(till: Till) -> list[Any]:
            sale = newest_open_sale(till)
            if sale is None:
                raise _NoOpenSale
            return till.add_line(sale.sale_id, line_id, item, 1, code)

        def answer(envs: list[dict[str, Any]]) -> dict[str, Any]:
            return dict(envs[0]["data"])

        try:
            try:
                return await self.service.write(add, answer)
            except _NoOpenSale:
                self.service.check_room()
                sale_id = new_id()
                await self.service.write(
                    lambda t: t.open_sale(sale_id, session.user), lambda _envs: None
                )
                return await self.service.write(add, answer)
        except (SaleError, Unavailable) as err:
            self._refuse(device_id, code, err.code, err.message)
        except _NoOpenSale:
            self._refuse(device_id, code, "sale_not_open", "Start a sale, then scan again.")
        return None

    def _receipt_scanned(self, code: str, device_id: str) -> bool:
        """A receipt's own barcode was scanned (for a return): tell the kiosk which sale."""
        reader = self.service.reader
        env = reader.by_receipt(code) if reader is not None and len(code) <= 64 else None
        if env is None:
            return False
        self.manager.publish(
            {
                "event": "receipt_scanned",
                "device": device_id,
                "receipt_no": code,
                "sale_id": env["data"]["sale_id"],
                "message": f"Receipt {code}: open the sale to refund it.",
            }
        )
        return True

    def _refuse(self, device_id: str, code: str, error: str, message: str) -> None:
        self.manager.counters["scan_refused"] += 1
        if error == "bad_barcode":
            from drivers.printer.receipt import scrub_card_numbers

            # Not a product code, so possibly anything a scanner can read: mask card numbers.
            code, message = scrub_card_numbers(code), scrub_card_numbers(message)
        log.info("scanner %s: scan refused (%s)", device_id, error)
        self.manager.publish(
            {
                "event": "scan_refused",
                "device": device_id,
                "barcode": code,
                "code": error,
                "message": message,
            }
        )
