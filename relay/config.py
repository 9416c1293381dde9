# relay.toml: a typed, versioned schema; unknown keys and bad values stop the start.
from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_PATH = Path("/etc/tillbox/relay.toml")
ENV_PREFIX = "TILLBOX_RELAY_"
DEFAULT_DATABASE = "sqlite:////var/lib/tillbox/relay.sqlite"


class ConfigError(Exception):
    """The relay configuration cannot be used; the message names the key and what to do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _default_client_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return f"tillbox-relay-{host}"[:64]


class BrokerConfig(_Strict):
    host: str = Field("localhost", min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    client_id: str = Field(default_factory=_default_client_id, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    session_expiry: int = Field(600, ge=0, le=4_294_967_295)
    receive_maximum: int = Field(1000, ge=1, le=65535)

    @model_validator(mode="after")
    def _tls_files(self) -> BrokerConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("broker.cert_file and broker.key_file go together: set both or none")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("broker.cert_file needs broker.ca_file (client certificates need TLS)")
        return self

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


class DatabaseConfig(_Strict):
    url: str = DEFAULT_DATABASE

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not (value.startswith("sqlite:///") or value.startswith("postgresql+psycopg://")):
            raise ValueError(
                "use sqlite:////absolute/path.sqlite or postgresql+psycopg://user@host/dbname"
            )
        return value


class IngestConfig(_Strict):
    batch_size: int = Field(500, ge=1, le=10_000)
    max_batch_delay_ms: int = Field(20, ge=0, le=5_000)
    gap_alert_after_s: float = Field(60.0, gt=0, le=86_400)


class LedgerStoreConfig(_Strict):
    timezone: str | None = None
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _known_zone(value)


class LedgerConfig(_Strict):
    timezone: str = "UTC"
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    stores: dict[str, LedgerStoreConfig] = {}

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _known_zone(value)


def _known_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r}: an IANA time zone such as Europe/Berlin") from None
    return value


class LogConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class RelayConfig(_Strict):
    version: Literal[1] = 1
    broker: BrokerConfig | None = None
    database: DatabaseConfig = DatabaseConfig()
    ingest: IngestConfig = IngestConfig()
    log: LogConfig = LogConfig()
    ledger: LedgerConfig = LedgerConfig()
    # Each connector's own schema checks its table (relay/connectors/, docs/connectors.md).
    connectors: dict[str, dict[str, Any]] = {}


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> RelayConfig:
    """Read, override from TILLBOX_RELAY_* variables and validate; raise ConfigError on a problem.

    A missing file at the default path means "all defaults" (a store-only relay with
    SQLite under /var/lib/tillbox); a missing file that was named explicitly is an error.
    """
    explicit = path is not None
    path = path or DEFAULT_PATH
    raw: dict[str, Any] = {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if explicit:
            raise ConfigError(
                f"{path}: no such file. Write one (see docs/relay.md) or drop --config."
            ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    apply_env(raw, os.environ if environ is None else environ)
    try:
        config = RelayConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: " + describe(err)) from err
    _check_files(config)
    _check_connectors(config, path)
    return config


def _check_connectors(config: RelayConfig, path: Path) -> None:
    from .connectors import ConnectorConfigError, validate_all

    try:
        validate_all(config)
    except ConnectorConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """`TILLBOX_RELAY_BROKER__PORT=8883` sets `broker.port`; `__` separates nested keys."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "TILLBOX_RELAY_CONFIG":
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        node = raw
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {key} is not a section")
            node = child
        node[keys[-1]] = value


def describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = (
            "unknown key; check its spelling against docs/relay.md"
            if e["type"] == "extra_forbidden"
            else e["msg"]
        )
        parts.append(f"{key}: {msg}")
    return "; ".join(parts)


def _check_files(config: RelayConfig) -> None:
    if config.broker is None:
        return
    for key in ("ca_file", "cert_file", "key_file"):
        value: Path | None = getattr(config.broker, key)
        if value is not None and not value.is_file():
            raise ConfigError(f"broker.{key}: {value} is not a readable file")
