# What every connector is: config schema, check, pure plan, side-effecting apply, reconcile.
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:
    from .mapping import FieldMapping


class ConnectorError(Exception):
    """A connector could not do what was asked; the message says what to do next."""


class MissingMapping(ConnectorError):
    """plan() needs a mapping entry that the mapping file does not have yet.

    The event waits in the connector's queue with this message as its reason and is planned
    again once the mapping file changes.
    """


class Retry(ConnectorError):
    """apply() failed in a way that may pass: network, 5xx, 429, a timeout.

    `after` is what the remote asked for (Retry-After), in seconds; None lets the queue choose
    its exponential backoff. `uncertain` says the remote may have done the work (a timeout or a
    dropped connection after sending): the next attempt looks for it before creating again.
    """

    def __init__(
        self,
        message: str,
        *,
        after: float | None = None,
        uncertain: bool = False,
        quiet: bool = False,
    ) -> None:
        super().__init__(message)
        self.after = after
        self.uncertain = uncertain
        # Not a failure, just not yet (e.g. waiting for the ledger to catch up): no attempt is
        # counted and the connector's health does not change.
        self.quiet = quiet


class Rejected(ConnectorError):
    """apply() was refused for good (a 400 validation error): the command goes to dead letters
    with the remote's own message; replay it after fixing the mapping or the remote side."""

    def __init__(self, message: str, *, status: int | None = None, remote: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.remote = remote


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event as connectors see it: a terminal's envelope, or a record the relay
    imported itself (an acquirer settlement report), which has `terminal` "" and `source`
    "import"."""

    id: str
    type: str
    store: str
    terminal: str
    seq: int
    at: str
    data: Mapping[str, Any]
    source: str = "terminal"

    @classmethod
    def from_envelope(cls, env: Mapping[str, Any]) -> Event:
        return cls(
            env["id"],
            env["type"],
            env["store"],
            env["terminal"],
            int(env["seq"]),
            env["at"],
            env["data"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "store": self.store,
            "terminal": self.terminal,
            "seq": self.seq,
            "at": self.at,
            "data": dict(self.data),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Event:
        return cls(
            d["id"],
            d["type"],
            d["store"],
            d["terminal"],
            int(d["seq"]),
            d["at"],
            d["data"],
            d.get("source", "terminal"),
        )


@dataclass(frozen=True, slots=True)
class Command:
    """One unit of work for apply(): everything it needs, planned ahead and stored.

    `key` is unique per connector and deterministic (derived from `sources`, the event ids it
    comes from): planning the same events again gives the same key, so the queue holds each
    command once, and the remote idempotency keys are derived from it. `payload` is JSON: the
    documents to send, built by plan(). `coalesce` marks a refresh command (rebuild a day's
    file, re-run a reconciliation): planning it again while it is queued or done runs it once
    more instead of being ignored.
    """

    kind: str
    key: str
    sources: tuple[str, ...]
    store: str
    day: str
    payload: Mapping[str, Any]
    summary: str
    coalesce: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "sources": list(self.sources),
            "store": self.store,
            "day": self.day,
            "summary": self.summary,
            "coalesce": self.coalesce,
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class Done:
    """What apply() did: the remote ids it made or found, by our local id."""

    bindings: Mapping[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Drift:
    """A difference reconcile() found between what we posted and what the remote holds."""

    local_id: str
    remote_id: str
    problem: str


class Bindings:
    """Our ids ↔ remote ids already known for one command (read before apply, by the queue)."""

    def __init__(self, known: Mapping[str, str] | None = None) -> None:
        self._known = dict(known or {})
        self.new: dict[str, str] = {}

    def get(self, local_id: str) -> str | None:
        return self.new.get(local_id) or self._known.get(local_id)

    def put(self, local_id: str, remote_id: str) -> None:
        self.new[local_id] = remote_id


class ConnectorConfig(BaseModel):
    """Keys every connector has; a connector's own schema subclasses this.

    Mark secrets with `SecretStr` (and `secret()` below): they are never printed or logged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    enabled: bool = True
    mapping: str | None = Field(None, description="path of the field-mapping file")
    calls_per_minute: int = Field(60, ge=1, le=100_000)
    max_concurrent: int = Field(5, ge=1, le=64)
    timeout_s: float = Field(30.0, gt=0, le=600)
    max_attempts: int = Field(0, ge=0, le=1_000_000, description="0: retry for ever")
    backoff_initial_s: float = Field(1.0, gt=0, le=3600)
    backoff_max_s: float = Field(900.0, gt=0, le=86_400)
    # Events from before this day (YYYY-MM-DD, business day) are not posted: for connecting a
    # shop that already has history in its books.
    start_day: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")


def secret(description: str) -> Any:
    """A config field holding a secret: shown as ****** by `tillbox relay connectors show`."""
    return Field(..., description=description, json_schema_extra={"secret": True})


def public_config(config: BaseModel) -> dict[str, Any]:
    """The config as JSON with every secret masked."""
    out: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            out[name] = "******" if value.get_secret_value() else ""
        elif isinstance(value, BaseModel):
            out[name] = public_config(value)
        else:
            out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Context:
    """What the runtime hands a connector besides its config: the central store and the ledger
    (for local reads), the stores' time zones (`Timezones`), and a publisher for MQTT
    (`publish(topic, payload)`; None when there is no broker)."""

    store: Any
    publish: Any = None
    timezone_of: Any = None
    ledger: Any = None


class Connector(ABC):
    """A connector. Subclasses set `kind` and `Config`, and implement the five methods.

    plan() is pure: the same event and mapping give the same commands, with no I/O, clock or
    randomness, so it is tested with golden files. apply() is the only method that touches the
    outside world; the queue calls it with retries, rate limits and dead letters around it.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[ConnectorConfig]]
    needs_mapping: ClassVar[bool] = True
    # Longest idempotency key the remote accepts (Xero 128, QuickBooks' requestid 50).
    key_limit: ClassVar[int] = 128
    # Event types this connector acts on; anything else is recorded as not understood.
    handles: ClassVar[frozenset[str]] = frozenset()
    # Event types it knows and deliberately does nothing with.
    ignores: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, config: ConnectorConfig, context: Context) -> None:
        self.name = name
        self.config = config
        self.context = context

    def acts_on(self, event_type: str) -> str:
        """ "handle", "ignore" (known, nothing to do) or "unknown" (kept and reported)."""
        if event_type in self.handles:
            return "handle"
        return "ignore" if event_type in self.ignores else "unknown"

    @abstractmethod
    def check(self, mapping: FieldMapping | None) -> list[str]:
        """Problems with credentials and mappings, as sentences saying what to fix; [] if none."""

    @abstractmethod
    def plan(self, event: Event, mapping: FieldMapping | None) -> Sequence[Command]:
        """The commands this event needs (pure). Raise MissingMapping when a mapping is missing."""

    @abstractmethod
    def apply(self, command: Command, bindings: Bindings, uncertain: bool) -> Done:
        """Carry out one command against the remote. Raise Retry or Rejected on failure.

        `uncertain` is True when an earlier attempt may have reached the remote (a timeout, a
        crash mid-post): look the document up by its reference before creating it again.
        """

    def reconcile(self, bindings: Mapping[str, str]) -> list[Drift]:
        """Compare what we posted (our id -> remote id) with the remote; [] when it agrees."""
        return []

    def close(self) -> None:  # noqa: B027 - optional: most connectors hold nothing
        """Release connections; called when the runtime stops."""
