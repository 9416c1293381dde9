# purpose: device API routes (device list, reprint queue, reprint) and their mount into the app.
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from ..auth import Sessions, User
from ..config import TerminalConfig
from ..sale import Conflict
from ..service import TillService
from .hub import DeviceHub

API = "/api/v1"
REPRINT_WAIT_S = 30.0


def mount(
    app: FastAPI, config: TerminalConfig, service: TillService, sessions: Sessions
) -> DeviceHub:
    """Add the device routes to ``app`` and run the devices for the app's lifetime.

    Mount before the app's own routes: ``/api/v1/receipts/queue`` must be matched before
    ``/api/v1/receipts/{receipt_no}``.
    """
    hub = DeviceHub(config, service, sessions)
    router = APIRouter(prefix=API, tags=["devices"])

    @router.get("/devices")
    async def devices(_: User) -> dict[str, Any]:
        return {"devices": hub.manager.views(), "receipts_queued": len(hub.manager.reprints)}

    @router.get("/receipts/queue", tags=["receipts"])
    async def receipt_queue(_: User) -> dict[str, Any]:
        m = hub.manager
        printer = next((v for v in m.views() if v["id"] == m.printer_id), None)
        return {"receipts": [q.view() for q in m.reprints.items()], "printer": printer}

    @router.post("/sales/{sale_id}/receipt/print", tags=["receipts"])
    async def print_receipt(sale_id: str, _: User, refund_id: str | None = None) -> dict[str, Any]:
        if hub.manager.printer is None:
            raise Conflict(
                "no_printer",
                "No receipt printer is set up on this till. Set [devices.printer] in the "
                "configuration, or show the receipt on the screen.",
            )
        future = hub.reprint(sale_id, refund_id)
        result = await asyncio.wait_for(asyncio.wrap_future(future), REPRINT_WAIT_S)
        return result.view()

    app.include_router(router)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        async with inner(a) as state:
            await hub.start()
            try:
                yield state
            finally:
                await hub.stop()

    app.router.lifespan_context = lifespan
    return hub
