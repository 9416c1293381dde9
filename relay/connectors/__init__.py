# Connectors: business systems fed from the stored events (docs/connectors.md). Registry here.
from __future__ import annotations

import importlib
import re
from typing import Any, Final

from pydantic import ValidationError

from tillbox.settings import describe

from .base import Connector, ConnectorConfig, Context

# kind -> "module:Class"; imported only when configured (the SDKs are heavy).
KINDS: Final[dict[str, str]] = {
    "beancount": "relay.connectors.beancount:BeancountConnector",
    "xero": "relay.connectors.xero:XeroConnector",
    "quickbooks": "relay.connectors.quickbooks:QuickBooksConnector",
    "reconcile": "relay.connectors.reconcile:ReconcileConnector",
}
# Always running in `tillbox relay run`, whatever relay.toml says.
BUILT_IN: Final = ("reconcile",)
RESERVED: Final = frozenset({"ledger"})
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class ConnectorConfigError(Exception):
    """A `[connectors.<name>]` table cannot be used; names the key."""


def connector_class(kind: str) -> type[Connector]:
    try:
        target = KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ConnectorConfigError(
            f"kind: unknown connector kind {kind!r}; use one of {known}"
        ) from None
    module, _, cls = target.partition(":")
    found: type[Connector] = getattr(importlib.import_module(module), cls)
    return found


def parse_config(name: str, raw: dict[str, Any]) -> tuple[type[Connector], ConnectorConfig]:
    """Validate one connector's table against its kind's schema."""
    where = f"connectors.{name}"
    if not _NAME.match(name) or name in RESERVED:
        raise ConnectorConfigError(
            f"{where}: a connector name is 1-32 of a-z, 0-9, '-', '_' (and not 'ledger')"
        )
    if "kind" not in raw:
        raise ConnectorConfigError(f"{where}.kind: missing; say which connector this is")
    try:
        cls = connector_class(str(raw["kind"]))
    except ConnectorConfigError as err:
        raise ConnectorConfigError(f"{where}.{err}") from None
    try:
        config = cls.Config.model_validate(raw)
    except ValidationError as err:
        raise ConnectorConfigError(describe(err, "docs/connectors.md", prefix=where)) from err
    return cls, config


def validate_all(config: Any) -> None:
    for name, raw in config.connectors.items():
        parse_config(name, dict(raw))


def build_connectors(
    config: Any, context: Context, *, only: set[str] | None = None
) -> list[Connector]:
    """The connectors of relay.toml that are enabled, plus the built-in ones."""
    out: list[Connector] = []
    tables = dict(config.connectors)
    for name in BUILT_IN:
        tables.setdefault(name, {"kind": name})
    for name, raw in tables.items():
        if only is not None and name not in only:
            continue
        cls, conf = parse_config(name, dict(raw))
        if conf.enabled:
            out.append(cls(name, conf, context))
    return out
