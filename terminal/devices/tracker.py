# purpose: device presence and health as a pure state machine: debounced absence, one change each.
"""Each check reports, per device, whether it was seen and which conditions it has.

A device seen is ``online`` at once. A device not seen is declared ``offline`` (configured
devices) or ``gone`` (discovered ones, then forgotten) only after ``missing_after`` checks
in a row without it, so a flaky cable or a slow answer does not flap the kiosk. Every
transition comes back as one ``Change``, which the caller logs and publishes once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["unknown", "online", "offline", "gone"]


@dataclass(slots=True)
class Record:
    """What the box knows about one device now."""

    id: str
    kind: str
    name: str
    configured: bool
    address: str
    state: State = "unknown"
    conditions: frozenset[str] = frozenset()
    missing: int = 0
    since: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """One transition of one device."""

    id: str
    before: State
    after: State
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def names(self) -> list[str]:
        """Short names of what changed: ``online``, ``offline``, ``paper_out``, ``-paper_out``."""
        out: list[str] = []
        if self.before != self.after:
            out.append(self.after)
        out += sorted(self.added)
        out += [f"-{name}" for name in sorted(self.removed)]
        return out


class Tracker:
    """Presence and conditions of every device, with debounced absence."""

    def __init__(self, missing_after: int) -> None:
        if missing_after < 1:
            raise ValueError("missing_after must be at least 1")
        self.missing_after = missing_after
        self.records: dict[str, Record] = {}

    def add(
        self, id: str, kind: str, name: str, address: str, *, configured: bool = True
    ) -> Record:
        """Start tracking a device (state ``unknown`` until its first check)."""
        record = self.records.get(id)
        if record is None:
            record = self.records[id] = Record(id, kind, name, configured, address)
        return record

    def observe(
        self,
        id: str,
        seen: bool,
        conditions: Iterable[str] = (),
        *,
        now: float | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Change | None:
        """Fold one check of one device in; the transition it caused, if any."""
        record = self.records[id]
        if detail is not None:
            record.detail = dict(detail)
        before_state, before_conditions = record.state, record.conditions
        if seen:
            record.missing = 0
            record.state = "online"
            record.conditions = frozenset(conditions)
        else:
            record.missing += 1
            if record.missing < self.missing_after:
                return None
            record.state = "offline" if record.configured else "gone"
            record.conditions = frozenset()
        if record.state == before_state and record.conditions == before_conditions:
            return None
        record.since = now
        if record.state == "gone":
            del self.records[id]
        return Change(
            id,
            before_state,
            record.state,
            record.conditions - before_conditions,
            before_conditions - record.conditions,
        )

    def sweep(
        self, seen: Mapping[str, Iterable[str]], kind: str, *, now: float | None = None
    ) -> list[Change]:
        """A discovery pass: ``seen`` maps ids found now to their conditions; every other
        unconfigured device of ``kind`` counts as missing this round."""
        changes: list[Change] = []
        for id, conditions in seen.items():
            change = self.observe(id, True, conditions, now=now)
            if change is not None:
                changes.append(change)
        for record in list(self.records.values()):
            if record.kind == kind and not record.configured and record.id not in seen:
                change = self.observe(record.id, False, now=now)
                if change is not None:
                    changes.append(change)
        return changes
