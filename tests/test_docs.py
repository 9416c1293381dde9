# Keeps the terminal core's docs honest: config keys, API paths, error codes, events, commands.
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from terminal.api import create_app
from terminal.auth import TooManyAttempts, Unauthorized
from terminal.config import TerminalConfig, load
from terminal.demo.run import free_port, write_config
from terminal.sale import Conflict, Forbidden, Invalid, NotFound
from tillbox.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TERMINAL = ROOT / "terminal"

# The HTTP status each refusal class answers with (Unavailable is translated in terminal/api.py).
ERROR_STATUS = {
    cls.__name__: cls.status
    for cls in (Invalid, NotFound, Conflict, Forbidden, Unauthorized, TooManyAttempts)
} | {"Unavailable": 503}
ERROR_CALL = re.compile(r"\b(" + "|".join(ERROR_STATUS) + r')\(\s*"([a-z][a-z0-9_]*)"')
# Refusals that stop the start instead of answering a request.
NOT_HTTP = {"catalog_invalid"}
EVENT_TYPE = re.compile(r'"((?:sale|shift|drawer|payment|customer)\.[a-z_]+)"')


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """Level-2 sections of a Markdown page by heading, without the heading's backticks."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {p.split("\n", 1)[0].strip().strip("`"): p for p in parts}


# -- configuration ---------------------------------------------------------------------


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """How a field nests another model: a table, a table of tables, or an array of tables."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table", annotation
    args = get_args(annotation)
    if get_origin(annotation) is dict and issubclass(args[1], BaseModel):
        return "map", args[1]
    if get_origin(annotation) is list and issubclass(args[0], BaseModel):
        return "array", args[0]
    return None


def config_keys(model: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(section heading, key) for every key of the schema, walking nested models."""
    heading = f"[{'.'.join(path)}]" if path else "Top-level keys"
    for name, field in model.model_fields.items():
        yield heading, name
        nested = _nested(field.annotation)
        if nested is None:
            continue
        kind, sub = nested
        if kind == "table":
            yield from config_keys(sub, (*path, name))
        elif kind == "map":
            yield from config_keys(sub, (*path, name, "<name>"))
        else:
            for _, key in config_keys(sub):
                yield f"[[{'.'.join((*path, name))}]]", key


CONFIG_KEYS = sorted(set(config_keys(TerminalConfig)))


def test_config_walk_finds_the_sections() -> None:
    found = {heading for heading, _ in CONFIG_KEYS}
    assert found >= {
        "Top-level keys",
        "[api]",
        "[tax]",
        "[tax.classes.<name>]",
        "[store]",
        "[[cashiers]]",
    }


@pytest.mark.parametrize(("heading", "key"), CONFIG_KEYS, ids=[f"{h}{k}" for h, k in CONFIG_KEYS])
def test_config_key_documented(heading: str, key: str) -> None:
    page = sections(doc("configuration.md"))
    assert heading in page, f"docs/configuration.md has no section '## `{heading}`'"
    assert f"`{key}`" in page[heading], f"`{key}` is not documented under {heading}"


# -- API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("docs-state")
    app = create_app(load(write_config(folder, free_port()), environ={}))
    paths: dict[str, Any] = app.openapi()["paths"]
    return paths


def test_every_api_endpoint_documented(openapi_paths: dict[str, Any]) -> None:
    text = doc("api.md")
    endpoints = [f"{m.upper()} {p}" for p, ops in openapi_paths.items() for m in ops]
    assert len(endpoints) > 20
    missing = [e for e in endpoints if e not in text]
    assert not missing, f"docs/api.md does not document {missing}"


def raised_error_codes() -> dict[str, set[int]]:
    """Each error code raised in terminal/, with the HTTP statuses it is raised with."""
    codes: dict[str, set[int]] = {}
    for path in sorted(TERMINAL.rglob("*.py")):
        for cls, code in ERROR_CALL.findall(path.read_text(encoding="utf-8")):
            codes.setdefault(code, set()).add(ERROR_STATUS[cls])
    return codes


def test_every_error_code_documented() -> None:
    codes = raised_error_codes()
    assert len(codes) > 30, "the error-code pattern no longer matches how terminal/ raises"
    # Rows of the error table: | `code` | status[, status] | when |
    rows = {
        m.group(1): {int(s) for s in re.findall(r"\d{3}", m.group(2))}
        for m in re.finditer(r"^\| `([a-z0-9_]+)` \| ([^|]*) \|", doc("api.md"), re.MULTILINE)
    }
    missing = sorted(set(codes) - set(rows))
    assert not missing, f"docs/api.md's error table lacks {missing}"
    wrong = {
        code: sorted(statuses)
        for code, statuses in codes.items()
        if code not in NOT_HTTP and rows[code] != statuses
    }
    assert not wrong, f"docs/api.md's error table should give these statuses: {wrong}"


# -- journal ---------------------------------------------------------------------------


def test_every_event_type_documented() -> None:
    types = set(EVENT_TYPE.findall((TERMINAL / "sale" / "till.py").read_text(encoding="utf-8")))
    assert {"sale.completed", "sale.refunded", "shift.closed"} <= types
    text = doc("journal.md")
    missing = sorted(t for t in types if f"### `{t}`" not in text)
    assert not missing, f"docs/journal.md has no section for {missing}"


# -- the tillbox command ---------------------------------------------------------------


def subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], bool]]:
    """Every subcommand path of the parser, and whether it is a leaf (a command that runs)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                children = list(subcommands(sub, path))
                yield path, not children
                yield from children


COMMANDS = list(subcommands(build_parser()))


def test_every_command_documented() -> None:
    text = "\n".join(
        [(ROOT / "README.md").read_text(encoding="utf-8")]
        + [p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md"))]
    )
    leaves = [" ".join(path) for path, leaf in COMMANDS if leaf]
    assert "journal verify" in leaves
    missing = [c for c in leaves if f"tillbox {c}" not in text]
    assert not missing, f"no doc or README mentions {['tillbox ' + c for c in missing]}"


@pytest.mark.parametrize("command", [path for path, _ in COMMANDS], ids=" ".join)
def test_command_answers_help(command: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tillbox.cli", *command, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: tillbox {' '.join(command)}")
