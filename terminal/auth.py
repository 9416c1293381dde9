# Cashier sessions by PIN, manager approval on the spot, and a brake on PIN guessing.
from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import BaseModel, ConfigDict

from .config import Cashier
from .sale import Forbidden, SaleError

MAX_FAILURES = 5
LOCKOUT_SECONDS = 30.0


class Body(BaseModel):
    """A request body of the local API: an unknown field is refused (422), never ignored."""

    model_config = ConfigDict(extra="forbid")


class Unauthorized(SaleError):
    status = 401


class TooManyAttempts(SaleError):
    status = 429


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    cashier: Cashier
    expires: float

    @property
    def user(self) -> str:
        return self.cashier.id

    @property
    def role(self) -> str:
        return self.cashier.role


class Sessions:
    """In-memory sessions: a restart asks cashiers to log in again, which is the safe side."""

    def __init__(
        self, cashiers: list[Cashier], minutes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cashiers = cashiers
        self._ttl = minutes * 60.0
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._failures: list[float] = []

    def _match(self, pin: str) -> Cashier | None:
        now = self._clock()
        self._failures = [t for t in self._failures if now - t < LOCKOUT_SECONDS]
        if len(self._failures) >= MAX_FAILURES:
            raise TooManyAttempts(
                "pin_locked", "Too many wrong PINs. Wait 30 seconds, then try again."
            )
        for cashier in self._cashiers:
            if cashier.check_pin(pin):
                return cashier
        self._failures.append(now)
        return None

    def login(self, pin: str) -> Session:
        cashier = self._match(pin)
        if cashier is None:
            raise Unauthorized("wrong_pin", "That PIN is not right. Try again.")
        session = Session(secrets.token_urlsafe(24), cashier, self._clock() + self._ttl)
        self._sessions[session.token] = session
        return session

    def logout(self, token: str) -> None:
        self._sessions.pop(token, None)

    def get(self, token: str | None) -> Session:
        session = self._sessions.get(token or "")
        if session is None or session.expires < self._clock():
            if session is not None:
                del self._sessions[session.token]
            raise Unauthorized("login_required", "Log in with your PIN first.")
        return session

    def latest(self) -> Session | None:
        """The newest login still valid: the cashier at the counter, whom a scan works for."""
        now = self._clock()
        for session in reversed(list(self._sessions.values())):
            if session.expires >= now:
                return session
        return None

    def approve(self, session: Session, manager_pin: str | None) -> str:
        """Who approves a manager-only action: the manager logged in, or one whose PIN is given."""
        if session.role == "manager":
            return session.user
        if manager_pin:
            cashier = self._match(manager_pin)
            if cashier is not None and cashier.role == "manager":
                return cashier.id
            raise Forbidden(
                "manager_pin_wrong", "That is not a manager's PIN. Ask a manager to enter theirs."
            )
        raise Forbidden(
            "manager_required", "A manager must approve this. Ask a manager to enter their PIN."
        )


# -- what the HTTP routes declare ------------------------------------------------------


async def current_session(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Session:
    """The session of the request's `Authorization: Bearer` token, else Unauthorized (401).

    Async on purpose: it is a dict lookup, and FastAPI would run a plain `def` dependency on
    its thread pool, a thread hop on every authenticated request (docs/benchmarks.md, 2).
    """
    sessions: Sessions = request.app.state.sessions
    return sessions.get((authorization or "").removeprefix("Bearer ").strip())


User = Annotated[Session, Depends(current_session)]
ManagerPin = Annotated[str | None, Header(alias="X-Manager-Pin", max_length=8)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)]
