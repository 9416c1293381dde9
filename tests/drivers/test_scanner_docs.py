# Keeps docs/scanners.md honest: every layout, suffix, setting and drop reason is documented.
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from drivers.scanner import KEYMAPS, DropReason, FramingConfig, Suffix

DOC = (Path(__file__).resolve().parents[2] / "docs" / "scanners.md").read_text()


@pytest.mark.parametrize(
    "name",
    [
        *sorted(KEYMAPS),
        *(suffix.name for suffix in Suffix),
        *(reason.value for reason in DropReason),
        *(f.name for f in dataclasses.fields(FramingConfig)),
    ],
)
def test_documented(name: str) -> None:
    assert f"`{name}`" in DOC
