# The contract's canonical JSON is RFC 8785 exactly, fast path or not.
from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tillbox.contract import canonical

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


def test_tricky_strings_and_keys() -> None:
    doc = {"\U0001f600": 1, "\ue000": 2, "z": '\u2028\x7f\x1f"\\/é€', "a": [1.0, 1e21]}
    assert canonical(doc) == bytes(rfc8785.dumps(doc))
    assert canonical({"b": 1, "a": "\x00"}) == b'{"a":"\\u0000","b":1}'


def test_unsafe_integers_are_refused_as_rfc8785_does() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical({"amount": 2**53})
