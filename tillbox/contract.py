# Terminal-relay contract: envelope, topics, canonical hashing (imports nothing of ours).
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import rfc8785

SCHEMA: Final = "tillbox.event/1"
TOPIC_PREFIX: Final = "tillbox/v1"
GENESIS_HASH: Final = "0" * 64
ENVELOPE_KEYS: Final = frozenset(
    {"schema", "id", "type", "store", "terminal", "seq", "at", "prev_hash", "hash", "data"}
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class EnvelopeError(ValueError):
    """An event envelope that does not follow tillbox.event/1."""


# Store-wide down-sync topics sit where a terminal id would: a terminal may not take these names.
RESERVED_IDS: Final = frozenset({"catalog", "stock", "customers", "alerts"})


def valid_id(value: str) -> bool:
    """Store and terminal ids are short, topic-safe names that no store-wide topic uses."""
    return bool(_ID.match(value)) and value not in RESERVED_IDS


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes, so any implementation can recompute a hash.

    For JSON made of objects, arrays, strings, integers, booleans and null whose keys are
    all in the Basic Multilingual Plane, JCS is exactly Python's sorted, compact json.dumps
    (same escapes, and code-point order equals UTF-16 order there), which runs in C. Our
    events hold no floats, so the slow general path is only a fallback.
    """
    if _plain(value):
        return _compact_sorted(value)
    return bytes(rfc8785.dumps(value))


# One encoder for every call: json.dumps with these options builds a new one each time.
_JCS: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _json_compact_sorted(value: Any) -> bytes:
    return _JCS.encode(value).encode()


try:  # the relay installs orjson (its extra); the till at the counter does without
    import orjson

    def _orjson_compact_sorted(value: Any) -> bytes:
        """The same bytes as _json_compact_sorted for plain values (tests/test_contract.py),
        3-4x faster; what orjson refuses, the json module answers (or refuses) as before."""
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return _json_compact_sorted(value)

    _compact_sorted = _orjson_compact_sorted
except ImportError:  # pragma: no cover - the relay's tests run with orjson
    _compact_sorted = _json_compact_sorted


def _plain(value: Any) -> bool:
    """No floats, no unsafe integers, no key outside the Basic Multilingual Plane.

    Exact types first (every hash on both sides runs this): JSON decoding makes only
    dict, list, str, int, bool and None; anything else takes the general checks."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                    return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if not -_SAFE_INT <= item <= _SAFE_INT:
                return False
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str) or (not key.isascii() and max(key) > "\uffff"):
                    return False
                stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, float) or (isinstance(item, int) and abs(item) > _SAFE_INT):
            return False
    return True


_SAFE_INT: Final = 2**53 - 1  # I-JSON: beyond this JCS refuses an integer


def event_hash(envelope: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical envelope without its own `hash`."""
    body = {k: v for k, v in envelope.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def validate_envelope(envelope: Any) -> dict[str, Any]:
    """Check shape and hash of one envelope; return it or raise EnvelopeError naming the field."""
    checked_data(envelope)
    return envelope  # type: ignore[no-any-return]


def checked_data(envelope: Any) -> bytes:
    """Check an envelope as validate_envelope does; return the canonical JSON of its `data`,
    which the hash was computed over, so that a store can keep it without encoding it again."""
    if not isinstance(envelope, dict):
        raise EnvelopeError("envelope must be a JSON object")
    missing = ENVELOPE_KEYS - envelope.keys()
    if missing:
        raise EnvelopeError(f"missing field(s): {', '.join(sorted(missing))}")
    extra = envelope.keys() - ENVELOPE_KEYS
    if extra:
        raise EnvelopeError(f"unknown field(s): {', '.join(sorted(extra))}")
    checks: list[tuple[str, bool]] = [
        ("schema", envelope["schema"] == SCHEMA),
        ("id", isinstance(envelope["id"], str) and bool(_UUID.match(envelope["id"]))),
        ("type", isinstance(envelope["type"], str) and bool(_TYPE.match(envelope["type"]))),
        ("store", isinstance(envelope["store"], str) and valid_id(envelope["store"])),
        ("terminal", isinstance(envelope["terminal"], str) and valid_id(envelope["terminal"])),
        (
            "seq",
            isinstance(envelope["seq"], int)
            and not isinstance(envelope["seq"], bool)
            and 1 <= envelope["seq"] <= _SAFE_INT,
        ),
        ("at", isinstance(envelope["at"], str) and bool(_AT.match(envelope["at"]))),
        (
            "prev_hash",
            isinstance(envelope["prev_hash"], str) and bool(_HEX64.match(envelope["prev_hash"])),
        ),
        ("hash", isinstance(envelope["hash"], str) and bool(_HEX64.match(envelope["hash"]))),
        ("data", isinstance(envelope["data"], dict)),
    ]
    for field, ok in checks:
        if not ok:
            raise EnvelopeError(f"bad value for {field!r}")
    data = canonical(envelope["data"])
    if _hash_with(envelope, data) != envelope["hash"]:
        raise EnvelopeError("hash does not match the envelope's content")
    return data


def _hash_with(envelope: Mapping[str, Any], data: bytes) -> str:
    """event_hash of an envelope with exactly ENVELOPE_KEYS, given the canonical `data`."""
    body = envelope_bytes(
        at=envelope["at"],
        data=data,
        hash=None,
        id=envelope["id"],
        prev_hash=envelope["prev_hash"],
        schema=envelope["schema"],
        seq=envelope["seq"],
        store=envelope["store"],
        terminal=envelope["terminal"],
        type=envelope["type"],
    )
    return hashlib.sha256(body).hexdigest()


_str: Final = json.encoder.encode_basestring  # quoted and escaped as canonical() does (C)


def envelope_bytes(
    *,
    at: str,
    data: bytes,
    hash: str | None,
    id: str,
    prev_hash: str,
    schema: str,
    seq: int,
    store: str,
    terminal: str,
    type: str,
) -> bytes:
    """The canonical (JCS) envelope, written around the canonical bytes of its `data`: with
    `hash`, the wire form; without, the body the hash is computed over.

    JCS composes (a member's value is canonical on its own) and every other member is a
    string or a safe integer under a fixed ASCII key, so the members are written in JCS key
    order directly: `data`, by far the largest part, is never encoded again."""
    head = f'{{"at":{_str(at)},"data":'
    mid = "" if hash is None else f',"hash":{_str(hash)}'
    tail = (
        f'{mid},"id":{_str(id)},"prev_hash":{_str(prev_hash)},"schema":{_str(schema)},'
        f'"seq":{seq:d},"store":{_str(store)},"terminal":{_str(terminal)},"type":{_str(type)}}}'
    )
    return head.encode() + data + tail.encode()


def events_topic(store: str, terminal: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/{terminal}/events"


def ack_topic(store: str, terminal: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/{terminal}/ack"


def status_topic(store: str, terminal: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/{terminal}/status"


def cmd_topic(store: str, terminal: str, name: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/{terminal}/cmd/{name}"


def resync_topic(store: str, terminal: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/{terminal}/resync"


def downsync_topic(store: str, family: str, kind: str) -> str:
    """Store-wide down-sync: `family` catalog, stock or customers; `kind` snapshot or delta."""
    return f"{TOPIC_PREFIX}/{store}/{family}/{kind}"


def alerts_topic(store: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/alerts"


def cmd_result_topic(store: str, terminal: str) -> str:
    return f"{TOPIC_PREFIX}/{store}/{terminal}/cmd-result"
