# The local HTTP API (FastAPI): sales, payments, refunds, shifts, drawer, health and metrics.
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import Field

from . import catalog_source, sdnotify
from .auth import Body, IdemKey, ManagerPin, Session, Sessions, User
from .config import TerminalConfig
from .customers_api import customers_router
from .devices.routes import mount as mount_devices
from .downsync import CacheReader
from .journal import Reader
from .payments import Payments
from .payments_api import payments_router
from .receipt import receipt_model
from .sale import Discount, Invalid, Item, NotFound, Override, SaleError, Till
from .service import Request as Req
from .service import TillService, Unavailable, new_id
from .update import Updater, UpdateSettings
from .uplink import Uplink, disabled_view

log = logging.getLogger("tillbox.api")
API = "/api/v1"
UI = Path(__file__).parent / "ui"


class LoginBody(Body):
    pin: str = Field(min_length=4, max_length=8, pattern=r"^\d+$")


class LineBody(Body):
    barcode: str | None = Field(None, max_length=32)
    sku: str | None = Field(None, max_length=64)
    quantity: Decimal = Decimal(1)


class DiscountBody(Body):
    percent: Decimal | None = None
    amount: int | None = None

    def discount(self) -> Discount:
        return Discount(percent=self.percent, amount=self.amount)


class OverrideBody(Body):
    unit_price: int
    reason: str = Field(max_length=200)


class LineChangeBody(Body):
    quantity: Decimal | None = None
    discount: DiscountBody | None = None
    clear_discount: bool = False
    price_override: OverrideBody | None = None
    clear_override: bool = False


class PaymentBody(Body):
    method: Literal["cash", "card"]
    amount: int | None = None
    tendered: int | None = None
    card: dict[str, Any] | None = None


class ReasonBody(Body):
    reason: str = Field(max_length=200)


class RefundLine(Body):
    line_id: str
    quantity: Decimal


class RefundBody(Body):
    lines: list[RefundLine] | None = None
    to: Literal["original", "cash"] = "original"
    reason: str = Field(max_length=200)


class ShiftOpenBody(Body):
    opening_float: int


class CashMoveBody(Body):
    amount: int
    reason: str = Field(max_length=200)


class ShiftCloseBody(Body):
    counted: int


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(config: TerminalConfig, update: UpdateSettings | None = None) -> FastAPI:
    """The daemon's app; `lifespan` owns the journal writer from start-up to shutdown."""
    service = TillService(config, catalog_source.load(config))
    sessions = Sessions(config.cashiers, config.session_minutes)
    uplink = Uplink(config, service) if config.uplink.enabled else None
    updater: Updater | None = None
    if uplink:
        # Fleet updates arrive as cmd/update (docs/updates.md); they wait for an idle till.
        updater = Updater(
            update or UpdateSettings(),
            config.state_dir,
            uplink.send_result,
            lambda view: uplink.set_status("update", view),
            [
                lambda: f"{n} sale(s) open" if (n := len(service.open_sale_ids())) else None,
                # journaled card operations not finished yet (payments, refunds, reversals)
                lambda: (
                    f"{n} card payment(s) open"
                    if (n := service.snapshot(lambda t: len(t.state.card_ops)))
                    else None
                ),
            ],
        )
        uplink.on_command("update", updater.submit)
    cache = CacheReader(config.cache_path)
    payments = Payments(config, service)
    started = time.monotonic()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        if uplink:
            uplink.start()
        if updater:
            updater.start()
        watchdog = sdnotify.start_watchdog()
        log.info(
            "till ready: store %s terminal %s, %d catalog items, uplink %s",
            config.store_id,
            config.terminal_id,
            len(service.catalog),
            f"to {config.uplink.host}:{config.uplink.port}" if uplink else "off",
        )
        yield
        sdnotify.stopping()
        await sdnotify.stop_watchdog(watchdog)
        if updater:
            await asyncio.to_thread(updater.stop)
        if uplink:
            await asyncio.to_thread(uplink.stop)
        cache.close()
        await service.stop()

    app = FastAPI(
        title="Tillbox terminal API",
        version="1",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    app.state.updater = updater
    app.state.sessions = sessions
    devices = mount_devices(app, config, service, sessions)  # first: its /receipts/queue

    @app.exception_handler(SaleError)
    async def _sale_error(_: Request, err: SaleError) -> JSONResponse:
        return error(err.status, err.code, err.message)

    @app.exception_handler(Unavailable)
    async def _unavailable(_: Request, err: Unavailable) -> JSONResponse:
        return error(503, err.code, err.message)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"] if p != "body")
            parts.append(f"{where}: {e['msg']}" if where else e["msg"])
        return error(422, "bad_request", "The request is not valid: " + "; ".join(parts))

    def sale_lines(sale_id: str) -> list[dict[str, Any]]:
        view = service.sale_view(sale_id)
        lines: list[dict[str, Any]] = view.get("lines", []) if view["status"] == "open" else []
        return lines

    async def discount_approver(
        user: Session, manager_pin: str | None, discount: Discount, base: int
    ) -> str | None:
        """A manager for discounts above the cashier's limit (a big discount is a price cut)."""
        if discount.percent is not None:
            percent = discount.percent
        else:
            percent = Decimal(discount.amount or 0) * 100 / max(base, 1)
        if percent <= config.cashier_discount_limit:
            return None
        return await asyncio.to_thread(sessions.approve, user, manager_pin)

    def sale_answer(sale_id: str) -> Any:
        return lambda _envs: service.sale_view(sale_id, service.read_in_writer())

    # -- sessions ----------------------------------------------------------------------

    @app.post(f"{API}/sessions", status_code=201, tags=["sessions"])
    async def login(body: LoginBody) -> dict[str, Any]:
        s = await asyncio.to_thread(sessions.login, body.pin)
        return {"token": s.token, "cashier": {"id": s.user, "name": s.cashier.name, "role": s.role}}

    @app.delete(f"{API}/sessions/current", status_code=204, tags=["sessions"])
    async def logout(user: User) -> None:
        sessions.logout(user.token)

    @app.get(f"{API}/sessions/current", tags=["sessions"])
    async def whoami(user: User) -> dict[str, Any]:
        return {"id": user.user, "name": user.cashier.name, "role": user.role}

    # -- store and catalog -------------------------------------------------------------

    @app.get(f"{API}/store", tags=["catalog"])
    async def store() -> dict[str, Any]:
        return {
            "name": config.store.name,
            "currency": config.currency,
            "locale": config.locale,
            "minor_units": config.minor_units,
        }

    def item_view(item: Item) -> dict[str, Any]:
        return {
            "sku": item.sku,
            "name": item.name,
            "price": item.price,
            "tax_class": item.tax_class,
            "unit": item.unit,
            "barcodes": list(item.barcodes),
            "category": item.category,
        }

    @app.get(f"{API}/catalog/items", tags=["catalog"])
    async def items(q: str = "", category: str = "", limit: int = 50) -> dict[str, Any]:
        found = service.catalog.search(q, category, max(1, min(limit, 500)))
        return {"items": [item_view(i) for i in found]}

    @app.get(f"{API}/catalog/categories", tags=["catalog"])
    async def categories() -> dict[str, Any]:
        return {"categories": [{"id": c.id, "name": c.name} for c in service.catalog.categories]}

    @app.get(f"{API}/catalog/barcodes/{{code}}", tags=["catalog"])
    async def by_barcode(code: str) -> dict[str, Any]:
        return item_view(service.catalog.by_barcode(code))

    # -- down-synced stock and customers (read-only) -----------------------------------

    @app.get(f"{API}/stock/{{sku}}", tags=["stock"])
    async def stock(sku: str) -> dict[str, Any]:
        level, version = cache.stock(sku)
        if level is None:
            service.catalog.by_sku(sku)  # unknown everywhere: 404 unknown_sku
        return {"sku": sku, "level": level, "version": version}

    # -- sales -------------------------------------------------------------------------

    @app.post(f"{API}/sales", status_code=201, tags=["sales"])
    async def open_sale(user: User, key: IdemKey = None) -> dict[str, Any]:
        service.check_room()
        sale_id = new_id()

        def decide(till: Till) -> list[Any]:
            return till.open_sale(sale_id, user.user)

        def answer(envs: list[dict[str, Any]]) -> dict[str, Any]:
            return service.sale_view(envs[0]["data"]["sale_id"], service.read_in_writer())

        return await service.write(decide, answer, Req.of(key, "open_sale", user.user))

    @app.get(f"{API}/sales", tags=["sales"])
    async def open_sales(user: User) -> dict[str, Any]:
        return {"sales": [service.sale_view(s) for s in service.open_sale_ids()]}

    @app.get(f"{API}/sales/{{sale_id}}", tags=["sales"])
    async def get_sale(sale_id: str, user: User) -> dict[str, Any]:
        return service.sale_view(sale_id)

    @app.post(f"{API}/sales/{{sale_id}}/lines", status_code=201, tags=["sales"])
    async def add_line(
        sale_id: str, body: LineBody, user: User, key: IdemKey = None
    ) -> dict[str, Any]:
        if (body.barcode is None) == (body.sku is None):
            raise Invalid("bad_request", "Give either a barcode or a SKU.")
        catalog = service.catalog  # one catalog for the whole request, even across a swap
        item = catalog.by_barcode(body.barcode) if body.barcode else catalog.by_sku(body.sku or "")
        line_id = new_id()
        return await service.write(
            lambda t: t.add_line(sale_id, line_id, item, body.quantity, body.barcode),
            sale_answer(sale_id),
            Req.of(key, "add_line", sale_id, body.model_dump()),
        )

    @app.patch(f"{API}/sales/{{sale_id}}/lines/{{line_id}}", tags=["sales"])
    async def change_line(
        sale_id: str,
        line_id: str,
        body: LineChangeBody,
        user: User,
        manager_pin: ManagerPin = None,
        key: IdemKey = None,
    ) -> dict[str, Any]:
        discount: Discount | Literal["keep"] | None = "keep"
        discount_by: str | None = None
        if body.clear_discount:
            discount = None
        elif body.discount:
            discount = body.discount.discount()
            line = next((li for li in sale_lines(sale_id) if li["line_id"] == line_id), None)
            discount_by = await discount_approver(
                user, manager_pin, discount, line["base"] if line else 1
            )
        override: Override | Literal["keep"] | None = "keep"
        if body.price_override or body.clear_override:
            approver = await asyncio.to_thread(sessions.approve, user, manager_pin)
            override = (
                None
                if body.clear_override or body.price_override is None
                else Override(body.price_override.unit_price, body.price_override.reason, approver)
            )
        qty = None if body.quantity is None else str(body.quantity)
        return await service.write(
            lambda t: t.change_line(
                sale_id,
                line_id,
                quantity=qty,
                discount=discount,
                override=override,
                approved_by=discount_by,
            ),
            sale_answer(sale_id),
            Req.of(key, "change_line", sale_id, line_id, body.model_dump()),
        )

    @app.delete(f"{API}/sales/{{sale_id}}/lines/{{line_id}}", tags=["sales"])
    async def remove_line(
        sale_id: str, line_id: str, user: User, key: IdemKey = None
    ) -> dict[str, Any]:
        return await service.write(
            lambda t: t.remove_line(sale_id, line_id),
            sale_answer(sale_id),
            Req.of(key, "remove_line", line_id),
        )

    @app.put(f"{API}/sales/{{sale_id}}/discount", tags=["sales"])
    async def set_discount(
        sale_id: str,
        body: DiscountBody,
        user: User,
        manager_pin: ManagerPin = None,
        key: IdemKey = None,
    ) -> dict[str, Any]:
        discount = body.discount()
        base = sum(li["base"] - li["discount_amount"] for li in sale_lines(sale_id))
        approver = await discount_approver(user, manager_pin, discount, base)
        return await service.write(
            lambda t: t.set_discount(sale_id, discount, approver),
            sale_answer(sale_id),
            Req.of(key, "discount", sale_id, body.model_dump()),
        )

    @app.delete(f"{API}/sales/{{sale_id}}/discount", tags=["sales"])
    async def clear_discount(sale_id: str, user: User) -> dict[str, Any]:
        return await service.write(lambda t: t.set_discount(sale_id, None), sale_answer(sale_id))

    @app.post(f"{API}/sales/{{sale_id}}/payments", status_code=201, tags=["sales"])
    async def add_payment(
        sale_id: str, body: PaymentBody, user: User, key: IdemKey = None
    ) -> dict[str, Any]:
        payment_id = new_id()
        return await service.write(
            lambda t: t.add_payment(
                sale_id,
                payment_id,
                body.method,
                amount=body.amount,
                tendered=body.tendered,
                card=body.card,
            ),
            sale_answer(sale_id),
            Req.of(key, "payment", sale_id, body.model_dump()),
        )

    @app.post(f"{API}/sales/{{sale_id}}/complete", tags=["sales"])
    async def complete(sale_id: str, user: User, key: IdemKey = None) -> dict[str, Any]:
        return await service.write(
            lambda t: t.complete(sale_id), sale_answer(sale_id), Req.of(key, "complete", sale_id)
        )

    @app.post(f"{API}/sales/{{sale_id}}/void", tags=["sales"])
    async def void(
        sale_id: str,
        body: ReasonBody,
        user: User,
        manager_pin: ManagerPin = None,
        key: IdemKey = None,
    ) -> Any:
        approver = await asyncio.to_thread(sessions.approve, user, manager_pin)
        if payments.reverses(sale_id):  # card payments go back through the terminal first
            request = Req.of(key, "void", sale_id)
            status, view = await payments.void(sale_id, body.reason, user.user, approver, request)
            return JSONResponse(view, status_code=status)
        return await service.write(
            lambda t: t.void(sale_id, body.reason, user.user, approver),
            sale_answer(sale_id),
            Req.of(key, "void", sale_id),
        )

    @app.post(f"{API}/sales/{{sale_id}}/refunds", status_code=201, tags=["sales"])
    async def refund(
        sale_id: str,
        body: RefundBody,
        user: User,
        manager_pin: ManagerPin = None,
        key: IdemKey = None,
    ) -> Any:
        approver = await asyncio.to_thread(sessions.approve, user, manager_pin)
        refund_id = new_id()
        lines = None if body.lines is None else {li.line_id: li.quantity for li in body.lines}
        if lines is not None and len(lines) != len(body.lines or []):
            raise Invalid("bad_request", "Name each line once.")
        if payments.enabled and body.to == "original":  # a card part goes through the terminal
            request = Req.of(key, "refund", sale_id, body.model_dump())
            status, view = await payments.refund(
                sale_id, lines, body.reason, user.user, approver, request
            )
            return JSONResponse(view, status_code=status)

        def decide(till: Till) -> list[Any]:
            original, refunds = service.completed_sale(sale_id, service.read_in_writer())
            return till.refund(
                original, refunds, refund_id, lines, body.to, body.reason, user.user, approver
            )

        return await service.write(
            decide, sale_answer(sale_id), Req.of(key, "refund", sale_id, body.model_dump())
        )

    @app.get(f"{API}/sales/{{sale_id}}/receipt", tags=["receipts"])
    async def receipt(sale_id: str, user: User, refund_id: str | None = None) -> dict[str, Any]:
        return receipt_model(config, service.sale_view(sale_id), refund_id)

    @app.get(f"{API}/receipts/{{receipt_no}}", tags=["receipts"])
    async def find_receipt(receipt_no: str, user: User) -> dict[str, Any]:
        reader: Reader | None = service.reader
        assert reader is not None
        env = reader.by_receipt(receipt_no)
        if env is None:
            raise NotFound(
                "unknown_receipt",
                f"No receipt {receipt_no} on this till. Check "
                "the number, or look the sale up on the till that sold it.",
            )
        return service.sale_view(env["data"]["sale_id"])

    # -- drawer and shifts -------------------------------------------------------------

    @app.post(f"{API}/drawer/open", tags=["drawer"])
    async def no_sale(
        body: ReasonBody, user: User, manager_pin: ManagerPin = None, key: IdemKey = None
    ) -> dict[str, Any]:
        approver = await asyncio.to_thread(sessions.approve, user, manager_pin)
        return await service.write(
            lambda t: t.no_sale(body.reason, user.user, approver),
            lambda envs: {"opened": True},
            Req.of(key, "no_sale", body.reason),
        )

    @app.post(f"{API}/shifts", status_code=201, tags=["shifts"])
    async def open_shift(body: ShiftOpenBody, user: User, key: IdemKey = None) -> dict[str, Any]:
        service.check_room()
        shift_id = new_id()
        return await service.write(
            lambda t: t.open_shift(shift_id, user.user, body.opening_float),
            lambda envs: service.shift_view() or {},
            Req.of(key, "open_shift", body.opening_float),
        )

    @app.get(f"{API}/shifts/current", tags=["shifts"])
    async def current_shift(user: User) -> dict[str, Any]:
        view = service.shift_view()
        if view is None:
            raise NotFound("no_shift", "No shift is open. Open one with the counted float.")
        return view

    @app.post(f"{API}/shifts/current/cash", status_code=201, tags=["shifts"])
    async def move_cash(
        body: CashMoveBody, user: User, manager_pin: ManagerPin = None, key: IdemKey = None
    ) -> dict[str, Any]:
        approver = await asyncio.to_thread(sessions.approve, user, manager_pin)
        return await service.write(
            lambda t: t.move_cash(body.amount, body.reason, user.user, approver),
            lambda envs: service.shift_view() or {},
            Req.of(key, "cash", body.amount, body.reason),
        )

    @app.post(f"{API}/shifts/current/close", tags=["shifts"])
    async def close_shift(body: ShiftCloseBody, user: User, key: IdemKey = None) -> dict[str, Any]:
        return await service.write(
            lambda t: t.close_shift(body.counted, user.user),
            lambda envs: z_view(envs[0]),
            Req.of(key, "close_shift", body.counted),
        )

    @app.get(f"{API}/shifts/{{shift_id}}/report", tags=["shifts"])
    async def shift_report(shift_id: str, user: User) -> dict[str, Any]:
        assert service.reader is not None
        env = service.reader.shift_closed(shift_id)
        if env is None:
            current = service.shift_view()
            if current and current["shift_id"] == shift_id:
                return {"shift_id": shift_id, "kind": "X", **current["report"]}
            raise NotFound("unknown_shift", "No shift with that id on this till.")
        return z_view(env)

    def z_view(env: dict[str, Any]) -> dict[str, Any]:
        d = env["data"]
        return {
            "shift_id": d["shift_id"],
            "kind": "Z",
            "opened_at": d["opened_at"],
            "closed_at": env["at"],
            "closed_by": d["user"],
            **d["report"],
        }

    # -- event stream, health, metrics -------------------------------------------------

    @app.get(f"{API}/events", tags=["events"])
    async def events(request: Request, token: str = "") -> StreamingResponse:
        sessions.get(token or request.headers.get("authorization", "").removeprefix("Bearer "))
        queue = service.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        msg = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"event: {msg['type']}\ndata: {json.dumps(msg)}\n\n"
            finally:
                service.unsubscribe(queue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        return JSONResponse(health(), status_code=200 if health_ok() else 503)

    def health_ok() -> bool:
        return service.journal_error is None and service.free_mb() >= config.min_free_mb

    def health() -> dict[str, Any]:
        assert service.reader is not None
        depth, oldest = service.reader.outbox_stats()
        shift = service.shift_view()
        return {
            "status": "ok" if health_ok() else "degraded",
            "store": config.store_id,
            "terminal": config.terminal_id,
            "journal": {
                "writable": service.journal_error is None,
                "error": service.journal_error,
                "seq": service.seq,
                "free_mb": service.free_mb(),
                "min_free_mb": config.min_free_mb,
            },
            "outbox": {"depth": depth, "oldest": oldest},
            "uplink": uplink.view(depth, oldest) if uplink else disabled_view(depth, oldest),
            "shift": None
            if shift is None
            else {"shift_id": shift["shift_id"], "open_sales": shift["open_sales"]},
            "devices": devices.manager.health(),
            "uptime_s": round(time.monotonic() - started, 1),
        }

    @app.get("/metrics", tags=["health"])
    async def metrics() -> PlainTextResponse:
        h = health()
        shift = service.shift_view()
        report = shift["report"] if shift else None
        lines = [
            (
                "tillbox_journal_seq",
                "gauge",
                "Highest journal sequence number",
                h["journal"]["seq"],
            ),
            (
                "tillbox_journal_writable",
                "gauge",
                "1 when the journal accepts writes",
                int(h["journal"]["writable"]),
            ),
            (
                "tillbox_disk_free_bytes",
                "gauge",
                "Free bytes on the state directory's disk",
                h["journal"]["free_mb"] * 1024 * 1024,
            ),
            (
                "tillbox_outbox_depth",
                "gauge",
                "Events waiting to be sent upstream",
                h["outbox"]["depth"],
            ),
            (
                "tillbox_outbox_oldest_age_seconds",
                "gauge",
                "Age of the oldest event not yet acked by the relay (0 when none)",
                h["uplink"]["oldest_age_s"] or 0,
            ),
            (
                "tillbox_uplink_connected",
                "gauge",
                "1 while connected to the MQTT broker",
                int(h["uplink"]["connected"]),
            ),
            (
                "tillbox_last_ack_seq",
                "gauge",
                "Highest sequence number the relay has acked",
                h["uplink"]["last_ack_seq"] or 0,
            ),
            (
                "tillbox_uplink_in_flight",
                "gauge",
                "Events sent and not yet acked by the relay",
                h["uplink"].get("in_flight", 0),
            ),
            (
                "tillbox_uplink_window",
                "gauge",
                "Most events published without the broker's PUBACK",
                h["uplink"].get("window", 0),
            ),
            (
                "tillbox_uplink_unacked_max",
                "gauge",
                "Most events sent past the relay's last ack",
                h["uplink"].get("unacked_max", 0),
            ),
            (
                "tillbox_uplink_resends_total",
                "counter",
                "Times sending restarted after the ack timeout",
                h["uplink"].get("resends", 0),
            ),
            (
                "tillbox_uplink_reconnects_total",
                "counter",
                "Connections to the broker lost since start",
                h["uplink"].get("reconnects", 0),
            ),
            *(
                (
                    f"tillbox_{family}_version",
                    "gauge",
                    f"Version of the down-synced {family} (0 before the first)",
                    state["version"] or 0,
                )
                for family, state in h["uplink"].get("sync", {}).items()
            ),
            (
                "tillbox_open_sales",
                "gauge",
                "Sales open on this till",
                len(service.open_sale_ids()),
            ),
            (
                "tillbox_shift_sales",
                "gauge",
                "Sales completed in the open shift",
                report["sales"]["count"] if report else 0,
            ),
            (
                "tillbox_process_resident_bytes",
                "gauge",
                "Resident memory of the daemon",
                _rss_bytes(),
            ),
        ]
        text = "".join(f"# HELP {n} {h_}\n# TYPE {n} {t}\n{n} {v}\n" for n, t, h_, v in lines)
        text += devices.manager.metrics_text()
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    app.include_router(payments_router(payments, sessions))  # card terminal (docs/payments.md)
    app.include_router(customers_router(service, cache))  # lookup, capture, a sale's customer
    # The kiosk (docs/kiosk.md). Keep this mount last: it answers every path no route took.
    app.mount("/", StaticFiles(directory=UI, html=True), name="ui")
    return app


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
