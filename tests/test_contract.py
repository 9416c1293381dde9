# The contract: canonical JSON is RFC 8785 exactly, and both sides use its topic names.
from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.downsync import parse_resync
from relay.mqtt import Received
from terminal.downsync import FAMILIES, KINDS, parse_topic
from tillbox import contract
from tillbox.contract import (
    EnvelopeError,
    canonical,
    checked_data,
    downsync_topic,
    envelope_bytes,
    event_hash,
    resync_topic,
    validate_envelope,
)

keys = st.text(max_size=8)
scalars = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_is_rfc8785(value: Any) -> None:
    assert canonical(value) == bytes(rfc8785.dumps(value))


@settings(max_examples=400, deadline=None)
@given(values | st.dictionaries(keys, st.sampled_from(["\ud800", "a\udfff", "\x00\x1f\u2028"])))
def test_the_till_and_the_relay_encode_plain_json_alike(value: Any) -> None:
    """The till encodes with Python's json, the relay with orjson (its extra): the same bytes
    wherever canonical() takes the fast path, and the same refusal of a lone surrogate."""
    if contract._plain(value):
        try:
            want: bytes | type[Exception] = contract._json_compact_sorted(value)
        except UnicodeEncodeError:
            want = UnicodeEncodeError
        try:
            got: bytes | type[Exception] = contract._orjson_compact_sorted(value)
        except UnicodeEncodeError:
            got = UnicodeEncodeError
        assert got == want


def test_tricky_strings_and_keys() -> None:
    doc: dict[str, Any] = {
        "\U0001f600": 1,
        "\ue000": 2,
        "z": '\u2028\x7f\x1f"\\/é€',
        "a": [1.0, 1e21],
    }
    assert canonical(doc) == bytes(rfc8785.dumps(doc))
    assert canonical({"b": 1, "a": "\x00"}) == b'{"a":"\\u0000","b":1}'


def test_unsafe_integers_are_refused_as_rfc8785_does() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical({"amount": 2**53})


def test_both_sides_read_the_down_sync_topics_the_contract_names() -> None:
    for family in FAMILIES:
        for kind in KINDS:
            assert parse_topic("s1", downsync_topic("s1", family, kind)) == (family, kind)
            assert parse_topic("s2", downsync_topic("s1", family, kind)) is None
    asked = Received(resync_topic("s1", "t1"), b'{"family": "stock"}', 1, 1, 0)
    assert parse_resync(asked) == ("s1", "t1", "stock")


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(keys, values, max_size=6),
    st.integers(1, 2**53 - 1),
    st.sampled_from(["2026-11-27T10:15:00Z", "2026-11-27T10:15:00.5Z", "2026-11-27T10:15:00Z\n"]),
)
def test_the_hash_check_encodes_data_once_and_agrees_with_event_hash(
    data: dict[str, Any], seq: int, at: str
) -> None:
    env: dict[str, Any] = {
        "schema": "tillbox.event/1",
        "id": "0b7e3a52-5c1e-4f0e-9d8a-2f6c1e1b9a10",
        "type": "sale.completed",
        "store": "s1",
        "terminal": "t1",
        "seq": seq,
        "at": at,
        "prev_hash": "0" * 64,
        "data": data,
    }
    env["hash"] = event_hash(env)
    assert checked_data(env) == canonical(data)
    assert validate_envelope(env) is env
    assert envelope_bytes(**{**env, "data": canonical(data)}) == canonical(env)  # the wire form
    env["data"] = {**data, "changed": not data.get("changed")}
    with pytest.raises(EnvelopeError, match="hash does not match"):
        validate_envelope(env)
