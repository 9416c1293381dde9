# HTTP routes of card payments through the terminal: start, follow, abort, review, end-of-day.
from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from .auth import Body, IdemKey, ManagerPin, Session, Sessions, User
from .payments import Payments
from .service import Request as Req


class CardPaymentBody(Body):
    amount: int | None = None  # minor units; all that is due when left out


class ResolvedCard(Body):
    """What the terminal's own receipt shows (masked card number only)."""

    receipt: int = Field(ge=0, le=9999)
    trace: int = Field(ge=0, le=999999)
    auth_code: str | None = Field(None, max_length=16)
    masked_pan: str | None = Field(None, max_length=32)
    brand: str | None = Field(None, max_length=40)
    card_type: int | None = Field(None, ge=0, le=255)
    terminal_id: str | None = Field(None, max_length=16)


class ResolveBody(Body):
    decision: Literal["paid", "not_paid"]
    card: ResolvedCard | None = None
    note: str = Field("", max_length=200)


def payments_router(payments: Payments, sessions: Sessions) -> APIRouter:
    """The routes, and the worker's life cycle as the router's lifespan."""
    router = APIRouter(prefix="/api/v1", tags=["payments"], lifespan=payments.lifespan)

    async def manager(user: Session, pin: str | None) -> str:
        return await asyncio.to_thread(sessions.approve, user, pin)

    @router.post("/sales/{sale_id}/payments/card", status_code=202)
    async def start_card_payment(
        sale_id: str, body: CardPaymentBody, user: User, key: IdemKey = None
    ) -> JSONResponse:
        status, view = await payments.pay(
            sale_id, body.amount, Req.of(key, "card_payment", sale_id, body.amount)
        )
        return JSONResponse(view, status_code=status)

    @router.get("/payments/review")
    async def payments_to_review(user: User) -> dict[str, Any]:
        return {"payments": payments.review()}

    @router.post("/payments/end-of-day")
    async def end_of_day(user: User, manager_pin: ManagerPin = None) -> dict[str, Any]:
        return await payments.end_of_day(await manager(user, manager_pin))

    @router.get("/payments/{payment_id}")
    async def get_payment(payment_id: str, user: User) -> dict[str, Any]:
        return payments.view(payment_id)

    @router.post("/payments/{payment_id}/abort", status_code=202)
    async def abort_payment(payment_id: str, user: User) -> dict[str, Any]:
        return payments.abort(payment_id)

    @router.post("/payments/{payment_id}/resolve")
    async def resolve_payment(
        payment_id: str,
        body: ResolveBody,
        user: User,
        manager_pin: ManagerPin = None,
        key: IdemKey = None,
    ) -> dict[str, Any]:
        approver = await manager(user, manager_pin)
        card = body.card.model_dump(exclude_none=True) if body.card else None
        return await payments.resolve(
            payment_id,
            body.decision,
            card,
            body.note,
            approver,
            Req.of(key, "resolve", payment_id, body.model_dump()),
        )

    return router
