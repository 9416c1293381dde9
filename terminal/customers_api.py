# HTTP routes of customers at the counter: lookup, capture with consent, a sale's customer.
from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from pydantic import Field, StrictBool

from .auth import Body, IdemKey, User
from .downsync import CacheReader
from .journal import Reader
from .sale import Invalid, NotFound, Till
from .service import Request as Req
from .service import TillService, new_id, utcnow

CAPTURED = "customer.captured"


class CaptureBody(Body):
    name: str = Field(max_length=400)
    email: str | None = Field(None, max_length=400)
    phone: str | None = Field(None, max_length=100)
    # Only a JSON true is a yes: a missing answer, "yes" or 1 is not consent.
    marketing_consent: StrictBool = False
    sale_id: str | None = Field(None, max_length=64)


class AttachBody(Body):
    customer_id: str = Field(min_length=1, max_length=64)


def customer_doc(data: Mapping[str, Any]) -> dict[str, Any]:
    """A `customer.captured` event's data in the down-sync customer format."""
    return {
        "id": data["customer_id"],
        "name": data["name"],
        "email": data.get("email") or "",
        "phone": data.get("phone") or "",
        "marketing_consent": data["marketing_consent"],
        "marketing_consent_at": data["marketing_consent_at"],
        "loyalty_points": 0,
    }


def newer(cached: Mapping[str, Any], captured: Mapping[str, Any]) -> Mapping[str, Any]:
    """Of two records of one customer, the one with the later consent answer (ties: the relay's).

    The relay's copy has everything the capture had plus what came later (points, a changed
    address); a copy from before the capture reached the relay must not hide the answer.
    """
    if (cached.get("marketing_consent_at") or "") >= captured["marketing_consent_at"]:
        return cached
    return {**cached, **{k: captured[k] for k in ("marketing_consent", "marketing_consent_at")}}


class Captured:
    """Customers captured on this till, from its journal: findable before the relay sends them
    back in the down-sync, and when the till is offline for days."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_id: dict[str, dict[str, Any]] | None = None

    def _index(self, reader: Reader) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._by_id is None:
                self._by_id = {
                    e["data"]["customer_id"]: customer_doc(e["data"])
                    for e in reader.of_type(CAPTURED)
                }
            return self._by_id

    def add(self, reader: Reader, data: Mapping[str, Any]) -> dict[str, Any]:
        doc = customer_doc(data)
        with self._lock:
            self._index(reader)[doc["id"]] = doc
        return doc

    def get(self, reader: Reader, customer_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._index(reader).get(customer_id)

    def search(self, reader: Reader, text: str) -> list[dict[str, Any]]:
        """Matches as the cache's search finds them: id exactly, name or email, phone digits."""
        needle = text.casefold().strip()
        digits = "".join(c for c in needle if c.isdigit())
        with self._lock:
            docs = list(self._index(reader).values())
        return [
            c
            for c in docs
            if c["id"] == text
            or needle in c["name"].casefold()
            or needle in c["email"].casefold()
            or (digits and digits in "".join(ch for ch in c["phone"] if ch.isdigit()))
        ]


def customers_router(service: TillService, cache: CacheReader) -> APIRouter:
    """Lookup in the down-synced cache plus this till's captures; capture; attach to a sale."""
    router = APIRouter(prefix="/api/v1", tags=["customers"])
    captured = Captured()

    def reader() -> Reader:
        assert service.reader is not None
        return service.reader

    def lookup(text: str, limit: int) -> list[dict[str, Any]]:
        found = {c["id"]: c for c in cache.customers(text, limit)}
        for mine in captured.search(reader(), text):
            there = found.get(mine["id"])
            found[mine["id"]] = mine if there is None else dict(newer(there, mine))
        ordered = sorted(found.values(), key=lambda c: (c["name"].casefold(), c["id"]))
        return ordered[:limit]

    def one(customer_id: str) -> dict[str, Any]:
        there = cache.customer(customer_id)
        mine = captured.get(reader(), customer_id)
        if there is not None and mine is not None:
            return dict(newer(there, mine))
        if there is None and mine is None:
            raise NotFound(
                "unknown_customer",
                "No customer with that id on this till. Look the customer up again.",
            )
        return there or mine or {}

    @router.get("/customers")
    async def find_customers(user: User, q: str = "", limit: int = 20) -> dict[str, Any]:
        if len(q.strip()) < 2:
            raise Invalid("bad_request", "Type at least 2 letters or digits of the customer.")
        found = await asyncio.to_thread(lookup, q, max(1, min(limit, 100)))
        return {"customers": found, "version": cache.version("customers")}

    @router.post("/customers", status_code=201)
    async def capture_customer(body: CaptureBody, user: User, key: IdemKey = None) -> Any:
        customer_id = new_id()

        def decide(till: Till) -> list[Any]:
            return till.capture_customer(
                customer_id,
                body.name,
                body.email,
                body.phone,
                body.marketing_consent,
                utcnow(),
                user.user,
                body.sale_id,
            )

        def answer(envs: list[dict[str, Any]]) -> dict[str, Any]:
            doc = captured.add(service.read_in_writer(), envs[0]["data"])
            sale = None
            if body.sale_id is not None:
                sale = service.sale_view(body.sale_id, service.read_in_writer())
            return {"customer": doc, "sale": sale}

        return await service.write(
            decide, answer, Req.of(key, "capture_customer", user.user, body.model_dump())
        )

    @router.put("/sales/{sale_id}/customer")
    async def attach_customer(
        sale_id: str, body: AttachBody, user: User, key: IdemKey = None
    ) -> dict[str, Any]:
        customer = await asyncio.to_thread(one, body.customer_id)
        return await service.write(
            lambda t: t.set_customer(sale_id, customer),
            lambda _envs: service.sale_view(sale_id, service.read_in_writer()),
            Req.of(key, "attach_customer", sale_id, body.customer_id),
        )

    @router.delete("/sales/{sale_id}/customer")
    async def detach_customer(sale_id: str, user: User, key: IdemKey = None) -> dict[str, Any]:
        return await service.write(
            lambda t: t.set_customer(sale_id, None),
            lambda _envs: service.sale_view(sale_id, service.read_in_writer()),
            Req.of(key, "detach_customer", sale_id),
        )

    return router
