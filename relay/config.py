# relay.toml: a typed, versioned schema; unknown keys and bad values stop the start.
from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tillbox.settings import SettingsError, apply_env, read_toml, validate
from tillbox.settings import Strict as _Strict

DEFAULT_PATH = Path("/etc/tillbox/relay.toml")
ENV_PREFIX = "TILLBOX_RELAY_"
_NOT_KEYS = {"TILLBOX_RELAY_CONFIG"}  # the config file's path, not a key in it
DEFAULT_DATABASE = "sqlite:////var/lib/tillbox/relay.sqlite"


class ConfigError(Exception):
    """The relay configuration cannot be used; the message names the key and what to do."""


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
    # "separate": the ledger and connectors run in `tillbox relay connectors run`
    # (tillbox-relay-connectors.service), so ingest has its process to itself.
    connectors: Literal["inline", "separate"] = "inline"


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
    stores: dict[str, LedgerStoreConfig] = Field(default_factory=dict)

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


class HttpConfig(_Strict):
    """The relay's read-only HTTP API (reconciliation reports): off unless enabled, and then
    only for callers with the bearer token."""

    enabled: bool = False
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(8081, ge=1, le=65535)
    token: str | None = Field(None, min_length=16, max_length=256)

    @model_validator(mode="after")
    def _token_when_open(self) -> HttpConfig:
        if self.enabled and self.token is None:
            raise ValueError(
                "http.token: the HTTP API needs a bearer token of at least 16 characters "
                "(e.g. from `openssl rand -hex 24`); set it, or set http.enabled = false"
            )
        return self


class RelayConfig(_Strict):
    version: Literal[1] = 1
    broker: BrokerConfig | None = None
    database: DatabaseConfig = DatabaseConfig()
    ingest: IngestConfig = IngestConfig()
    log: LogConfig = LogConfig()
    ledger: LedgerConfig = LedgerConfig()
    http: HttpConfig = HttpConfig()
    # Each connector's own schema checks its table (relay/connectors/, docs/connectors.md).
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> RelayConfig:
    """Read, override from TILLBOX_RELAY_* variables and validate; raise ConfigError on a problem.

    A missing file at the default path means "all defaults" (a store-only relay with
    SQLite under /var/lib/tillbox); a missing file that was named explicitly is an error.
    """
    explicit = path is not None
    path = path or DEFAULT_PATH
    try:
        raw = read_toml(
            path, "Write one (see docs/relay.md) or drop --config." if explicit else None
        )
        apply_env(raw, os.environ if environ is None else environ, ENV_PREFIX, not_keys=_NOT_KEYS)
        config = validate(RelayConfig, raw, path, "docs/relay.md")
    except SettingsError as err:
        raise ConfigError(str(err)) from err
    _check_files(config)
    _check_connectors(config, path)
    return config


def _check_connectors(config: RelayConfig, path: Path) -> None:
    from .connectors import ConnectorConfigError, validate_all

    try:
        validate_all(config)
    except ConnectorConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def _check_files(config: RelayConfig) -> None:
    if config.broker is None:
        return
    for key in ("ca_file", "cert_file", "key_file"):
        value: Path | None = getattr(config.broker, key)
        if value is not None and not value.is_file():
            raise ConfigError(f"broker.{key}: {value} is not a readable file")
