# purpose: CashDrawer, the one abstract cash drawer, and the rule that a stale kick never fires.
"""A drawer kick is stamped when the sale asks for it and fires only while it is fresh.

If the pulse cannot go out (the printer driving the drawer is away), the kick stays pending;
when ``retry_pending()`` runs after ``max_kick_age_s`` it is dropped and reported, never
fired: a drawer springing open half a minute after the sale is a till-security problem.
Time comes from an injectable clock (seconds, monotonic), so this is tested without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .errors import DrawerError

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class KickRequest:
    """A wish to open the drawer, stamped on the drawer's clock when it was made."""

    created_at: float
    reason: str = ""


class KickOutcome(StrEnum):
    """What became of a kick."""

    FIRED = "fired"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class KickResult:
    """The fate of one kick; ``opened`` is what the sensor saw (None: no sensor reading)."""

    outcome: KickOutcome
    request: KickRequest
    age_s: float
    opened: bool | None = None

    @property
    def fired(self) -> bool:
        """The pulse went out."""
        return self.outcome is KickOutcome.FIRED


class CashDrawer(ABC):
    """A cash drawer: ``open()`` kicks it, ``is_open()`` reads its sensor if it has one."""

    def __init__(self, *, max_kick_age_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        if max_kick_age_s <= 0:
            raise ValueError("max_kick_age_s must be above 0")
        self.max_kick_age_s = max_kick_age_s
        self._clock = clock
        self._pending: KickRequest | None = None
        self._lock = threading.Lock()

    def request(self, reason: str = "") -> KickRequest:
        """Stamp a kick now; hand it to ``open()`` later (or now)."""
        return KickRequest(created_at=self._clock(), reason=reason)

    @property
    def pending(self) -> KickRequest | None:
        """The kick that failed to go out and may still be retried."""
        return self._pending

    def open(self, request: KickRequest | None = None) -> KickResult:
        """Fire ``request`` (a fresh one if None) unless it is stale.

        Returns a FIRED or STALE result; raises ``DrawerError`` when the pulse cannot be sent,
        keeping the kick pending for ``retry_pending()``.
        """
        req = request or self.request()
        with self._lock:
            if self._is_stale(req):
                return self._drop(req)
            fired = False
            try:
                fired = self._pulse(lambda: not self._is_stale(req))
            except DrawerError:
                self._pending = req
                raise
            if not fired:
                return self._drop(req)
            self._pending = None
            age = self._age(req)
        return KickResult(KickOutcome.FIRED, req, age, self._verify())

    def retry_pending(self) -> KickResult | None:
        """Fire the pending kick if it is still fresh, drop it if not; None if there is none."""
        req = self._pending
        if req is None:
            return None
        return self.open(req)

    @abstractmethod
    def is_open(self) -> bool | None:
        """Whether the drawer is open; None when there is no sensor or it cannot be read."""

    @abstractmethod
    def _pulse(self, still_wanted: Callable[[], bool]) -> bool:
        """Send the pulse if ``still_wanted()`` right before it goes out; return whether sent.
        Raise ``DrawerError`` if it cannot be sent."""

    def _verify(self) -> bool | None:
        """After a pulse: did the drawer open? None when unknown."""
        return None

    def _age(self, req: KickRequest) -> float:
        return self._clock() - req.created_at

    def _is_stale(self, req: KickRequest) -> bool:
        return self._age(req) > self.max_kick_age_s

    def _drop(self, req: KickRequest) -> KickResult:
        age = self._age(req)
        if self._pending == req:
            self._pending = None
        log.warning(
            "dropped a stale drawer kick (%.1f s old, limit %.1f s)%s",
            age,
            self.max_kick_age_s,
            f": {req.reason}" if req.reason else "",
        )
        return KickResult(KickOutcome.STALE, req, age)
