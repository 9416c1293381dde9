# Config plumbing for every TOML file Tillbox reads: reading, TILLBOX_* overrides, error wording.
from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class SettingsError(Exception):
    """A config file or variable that cannot be used; each program re-raises it as its own
    ConfigError with the same message."""


class Strict(BaseModel):
    """A config section: an unknown key is an error, and values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_toml(path: Path, missing: str | None) -> dict[str, Any]:
    """The file's tables. A missing file is an error whose message ends with the hint
    `missing`, or, with `missing=None`, the same as an empty file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing is None:
            return {}
        raise SettingsError(f"{path}: no such file. {missing}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SettingsError(f"{path}: cannot be read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise SettingsError(f"{path}: not valid TOML: {err}") from err


def apply_env(
    raw: dict[str, Any],
    environ: Mapping[str, str],
    prefix: str,
    *,
    not_keys: Collection[str] = (),
    other_prefixes: Collection[str] = (),
) -> dict[str, str]:
    """`<prefix>API__PORT=8081` sets `api.port` in `raw`; `__` separates nested keys.

    Variables in `not_keys` or starting with one of `other_prefixes` (another program's) are
    skipped. Returns which variable set which key, so an error can name the variable.
    """
    origins: dict[str, str] = {}
    for name, value in environ.items():
        if not name.startswith(prefix) or name in not_keys:
            continue
        if any(name.startswith(other) for other in other_prefixes):
            continue
        keys = name[len(prefix) :].lower().split("__")
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise SettingsError(f"{name}: {key} is not a section")
            node = child
        node[keys[-1]] = value
        origins[".".join(keys)] = name
    return origins


def validate(
    model: type[M],
    raw: Mapping[str, Any],
    path: Path,
    doc: str,
    origins: Mapping[str, str] | None = None,
) -> M:
    """`raw` checked against `model`, or one SettingsError naming every bad key: `doc` is the
    page that lists the keys, `origins` (from apply_env) names the variable that set a key."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise SettingsError(f"{path}: " + describe(err, doc, origins)) from err


def describe(
    err: ValidationError, doc: str, origins: Mapping[str, str] | None = None, *, prefix: str = ""
) -> str:
    """`key: problem` for each of the model's errors, `;`-separated; `prefix` is where the
    model's table sits in its file (e.g. `connectors.xero`)."""
    parts = []
    for e in err.errors():
        where = [prefix] if prefix else []
        key = ".".join([*where, *map(str, e["loc"])]) or "(top level)"
        msg = (
            f"unknown key; check its spelling against {doc}"
            if e["type"] == "extra_forbidden"
            else e["msg"]
        )
        var = (origins or {}).get(key)
        parts.append(f"{key} (from ${var}): {msg}" if var else f"{key}: {msg}")
    return "; ".join(parts)
