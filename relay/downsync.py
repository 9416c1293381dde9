# Down-sync: each store's catalog, stock and customers as retained snapshots plus versioned deltas.
from __future__ import annotations

import json
import logging
import time
from typing import Any, Final, Literal

from tillbox.contract import TOPIC_PREFIX, downsync_topic, resync_topic, valid_id

from .mqtt import Link, Publication, Received
from .store import FAMILIES, Family, Store

log = logging.getLogger("tillbox.relay.downsync")

RESYNC_SUBSCRIPTION: Final = f"$share/relay/{resync_topic('+', '+')}"
MAX_DELTAS: Final = 50
PUBACK_TIMEOUT: Final = 10.0
RESYNC_MIN_INTERVAL: Final = 1.0


class DownsyncError(Exception):
    """Down-sync messages did not reach the broker; the store still knows them as unpublished."""


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def parse_resync(message: Received) -> tuple[str, str, Family | Literal["acks"]] | str:
    """(store, terminal, what) a terminal asks to be re-sent, or why the request is unusable.

    `what` is a down-sync family (its snapshot is re-published) or "acks" (the terminal's
    current `{"upto": …}` is re-sent)."""
    parts = message.topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_PREFIX or parts[4] != "resync":
        return "not a resync topic"
    store, terminal = parts[2], parts[3]
    if not (valid_id(store) and valid_id(terminal)):
        return "store or terminal id in the topic is not valid"
    try:
        doc = json.loads(message.payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        return f"not JSON: {err}"
    family = doc.get("family") if isinstance(doc, dict) else None
    if family == "acks":
        return store, terminal, "acks"
    for known in FAMILIES:
        if family == known:
            return store, terminal, known
    return f'resync needs {{"family": one of {", ".join(FAMILIES)}, acks}}'


class Downsync:
    """Publishes what the store holds. Each publish runs inside a transaction that locks the
    (store, family) row, so two publishers (relay instances, the admin CLI) never interleave
    and the retained snapshot on the broker only ever moves forward."""

    def __init__(self, store: Store, link: Link, timeout: float = PUBACK_TIMEOUT) -> None:
        self.store = store
        self.link = link
        self.timeout = timeout
        self._last_resync: dict[tuple[str, Family], float] = {}

    def sync(self, store_id: str, family: Family, *, force_snapshot: bool = False) -> int | None:
        """Publish unpublished deltas in version order, then the newest snapshot (retained).

        Returns the version now on the broker, or None when there was nothing to publish.
        Raises DownsyncError when a PUBACK is missing or refused (the store is left as it was).
        """
        with self.store.transaction() as conn:
            published = self.store.lock_family(conn, store_id, family)
            latest = self.store.latest_version(conn, store_id, family)
            if latest == 0 or (latest <= published and not force_snapshot):
                return None
            messages: list[tuple[str, bytes, bool]] = []
            first = max(published + 1, latest - MAX_DELTAS + 1, 1)
            for version in range(first, latest + 1):
                delta = self.store.delta(conn, store_id, family, version)
                messages.append((downsync_topic(store_id, family, "delta"), encode(delta), False))
            snapshot = self.store.snapshot(conn, store_id, family)
            messages.append((downsync_topic(store_id, family, "snapshot"), encode(snapshot), True))
            self._publish_all(messages)
            if latest > published:
                self.store.mark_published(conn, store_id, family, latest)
        log.info("published %s version %d for store %s", family, latest, store_id)
        return latest

    def sync_pending(self) -> list[tuple[str, Family, int]]:
        """Publish every (store, family) whose newest version is not on the broker yet."""
        done: list[tuple[str, Family, int]] = []
        for store_id, family in self.store.unpublished():
            version = self.sync(store_id, family)
            if version is not None:
                done.append((store_id, family, version))
        return done

    def republish_all(self) -> int:
        """Put every snapshot on the broker again (a broker that lost its retained messages)."""
        count = 0
        for store_id, family in self.store.families():
            if self.sync(store_id, family, force_snapshot=True) is not None:
                count += 1
        return count

    def resync(self, store_id: str, family: Family) -> int | None:
        """A terminal asked for the snapshot again; answer at most once a second per family."""
        key = (store_id, family)
        now = time.monotonic()
        if now - self._last_resync.get(key, -RESYNC_MIN_INTERVAL) < RESYNC_MIN_INTERVAL:
            return None
        self._last_resync[key] = now
        return self.sync(store_id, family, force_snapshot=True)

    def _publish_all(self, messages: list[tuple[str, bytes, bool]]) -> None:
        pubs: list[Publication] = [
            self.link.publish(topic, payload, retain=retain) for topic, payload, retain in messages
        ]
        deadline = time.monotonic() + self.timeout
        for pub in pubs:
            if not pub.wait(max(0.0, deadline - time.monotonic())):
                why = pub.error or (str(pub.reason) if pub.reason else "no PUBACK in time")
                raise DownsyncError(f"publish to {pub.topic} failed: {why}")
