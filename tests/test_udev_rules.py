# purpose: the udev rules parse and name every Tillbox device under /dev/tillbox/, group tillbox.
"""Debian 12's udev (252) has no `udevadm verify` (it came in systemd 253), so the rules
are checked by the small parser below, written from udev(7); where `udevadm verify`
exists it runs as well."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = sorted((Path(__file__).resolve().parents[1] / "systemd" / "udev").glob("*.rules"))
TOKEN = re.compile(r'\s*([A-Z_]+)(\{[^}"]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
MATCH_KEYS = {
    "ACTION",
    "DEVPATH",
    "KERNEL",
    "KERNELS",
    "SUBSYSTEM",
    "SUBSYSTEMS",
    "DRIVER",
    "DRIVERS",
    "ATTR",
    "ATTRS",
    "ENV",
    "TAG",
    "TAGS",
    "PROGRAM",
    "RESULT",
    "TEST",
}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "OWNER", "TAG", "ENV", "ATTR", "RUN", "GOTO", "LABEL"}
WITH_ARGUMENT = {"ATTR", "ATTRS", "ENV"}


def rules(path: Path) -> list[list[tuple[str, str, str]]]:
    """Each rule as (key, operator, value) tokens; raises ValueError naming the bad line."""
    out: list[list[tuple[str, str, str]]] = []
    logical = ""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = logical + raw.strip()
        if line.endswith("\\"):
            logical = line[:-1] + " "
            continue
        logical = ""
        if not line or line.startswith("#"):
            continue
        tokens: list[tuple[str, str, str]] = []
        for part in _split(line):
            m = TOKEN.fullmatch(part)
            if m is None:
                raise ValueError(f"{path.name}:{number}: cannot parse {part!r}")
            key, arg, op, value = m.group(1), m.group(2), m.group(3), m.group(4)
            if (key in WITH_ARGUMENT) != (arg is not None):
                raise ValueError(f"{path.name}:{number}: {key} and its {{argument}} disagree")
            matching = op in ("==", "!=")
            if matching and key not in MATCH_KEYS:
                raise ValueError(f"{path.name}:{number}: {key} cannot be matched")
            if not matching and key not in ASSIGN_KEYS:
                raise ValueError(f"{path.name}:{number}: {key} cannot be assigned")
            tokens.append((key + (arg or ""), op, value))
        out.append(tokens)
    if logical:
        raise ValueError(f"{path.name}: ends inside a continued line")
    return out


def _split(line: str) -> list[str]:
    """Split a rule on the commas between tokens (not those inside quotes)."""
    parts, current, quoted = [], "", False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    if quoted:
        raise ValueError(f"unbalanced quotes in {line!r}")
    parts.append(current)
    return parts


def test_there_are_rules() -> None:
    assert RULES, "systemd/udev/*.rules is missing"


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_rules_parse_and_jump_to_labels_that_exist(path: Path) -> None:
    parsed = rules(path)
    labels = {v for rule in parsed for k, _, v in rule if k == "LABEL"}
    gotos = {v for rule in parsed for k, _, v in rule if k == "GOTO"}
    assert gotos <= labels


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_every_device_goes_to_tillbox_with_mode_0660(path: Path) -> None:
    links: set[str] = set()
    for rule in rules(path):
        keys = {k: (op, v) for k, op, v in rule}
        if "LABEL" in keys or "GOTO" in keys:
            continue
        assert keys.get("GROUP") == ("=", "tillbox"), rule
        assert keys.get("MODE") == ("=", "0660"), rule
        assert any(k.startswith(("SUBSYSTEM", "KERNEL")) for k in keys), rule
        for key, op, value in rule:
            if key == "SYMLINK":
                assert op == "+=" and value.startswith("tillbox/"), rule
                links.add(value)
        if keys.get("SUBSYSTEM", ("", ""))[1] == "tty":
            assert keys.get("ENV{ID_MM_DEVICE_IGNORE}") == ("=", "1"), rule
    assert {"tillbox/printer", "tillbox/scanner", "tillbox/card-terminal"} <= links


def test_the_checker_rejects_broken_rules(tmp_path: Path) -> None:
    for bad in (
        'SUBSYSTEM="tty", GROUP="tillbox"',  # assigns a match key
        'SUBSYSTEM=="tty", GROUP=="tillbox"',  # matches an assign key
        'SUBSYSTEM=="tty, GROUP="tillbox"',  # unbalanced quote
        'ATTRS=="04b8", GROUP="tillbox"',  # ATTRS without {name}
        'SUBSYSTEM=="tty" GROUP="tillbox"',  # missing comma
    ):
        path = tmp_path / "bad.rules"
        path.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(ValueError):
            rules(path)


def _udevadm_verify() -> str | None:
    udevadm = shutil.which("udevadm") or next(
        (p for p in ("/usr/bin/udevadm", "/bin/udevadm") if Path(p).exists()), None
    )
    if udevadm is None:
        return None
    done = subprocess.run([udevadm, "verify", "--help"], capture_output=True, timeout=30)
    return udevadm if done.returncode == 0 else None


@pytest.mark.skipif(_udevadm_verify() is None, reason="this udevadm has no verify (systemd < 253)")
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_udevadm_verify(path: Path) -> None:
    udevadm = _udevadm_verify()
    assert udevadm is not None
    done = subprocess.run([udevadm, "verify", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
