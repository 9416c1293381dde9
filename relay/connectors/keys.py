# Deterministic idempotency keys from source event ids, cut to each remote's length limit.
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any


def command_key(kind: str, sources: Iterable[str], *parts: str) -> str:
    """Our own key of a command: its kind and a digest (160 bits) of the events and parts it comes
    from.

    The same events always give the same key, in whatever order they are named.
    """
    material = "\n".join([kind, *sorted(sources), *parts])
    return f"{kind}:{hashlib.sha256(material.encode()).hexdigest()[:40]}"


def remote_key(key: str, step: str, limit: int) -> str:
    """The idempotency key sent to a remote for one step of a command, at most `limit` long.

    `tb-` plus a hex digest of the command key and the step: as long as the limit allows (up to
    64 hex digits, 256 bits), never shorter than 32 (128 bits, collision-free in practice).
    """
    room = min(64, limit - 3)
    if room < 32:
        raise ValueError(f"an idempotency key limit of {limit} is too short to be safe")
    digest = hashlib.sha256(f"{key}\n{step}".encode()).hexdigest()
    return f"tb-{digest[:room]}"


def step_version(step: Mapping[str, Any]) -> str:
    """A step's name and a digest of its document: retries of the same document send the same
    idempotency key; a document planned again after a fix (a dead letter replayed with a new
    mapping) gets a new one, since the remote answers a known key with its first answer."""
    doc = json.dumps(step.get("doc"), sort_keys=True, separators=(",", ":"))
    return f"{step['name']}:{hashlib.sha256(doc.encode()).hexdigest()[:16]}"
