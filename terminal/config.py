# terminal.toml: a typed, versioned schema; unknown keys and bad values stop the start.
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from tillbox.contract import valid_id
from tillbox.settings import SettingsError, Strict, apply_env, read_toml, validate

from .devices.settings import DevicesConfig
from .sale import Policy, TaxClass, TaxSetup

DEFAULT_PATH = Path("/etc/tillbox/terminal.toml")
ENV_PREFIX = "TILLBOX_"
# The config file's path and a test-only crash hook (terminal/payments.py), not keys in it.
_NOT_KEYS = {"TILLBOX_CONFIG", "TILLBOX_TEST_CRASH_AFTER"}
_RELAY = "TILLBOX_RELAY_"  # the relay's own variables
CONFIG_VERSION = 1
# ISO 4217 minor units for the currencies whose count is not 2.
_MINOR_UNITS = {
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "CLP": 0,
    "HUF": 2,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}
_PIN_ITERATIONS = 30_000


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what to do."""


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class TaxClassConfig(Strict):
    rate: Decimal = Field(ge=0, le=100)
    code: str = Field(min_length=1, max_length=2)


class TaxConfig(Strict):
    mode: Literal["inclusive", "exclusive"] = "inclusive"
    rounding: Literal["half_up", "half_even", "down"] = "half_up"
    level: Literal["total", "line"] = "total"
    classes: dict[str, TaxClassConfig] = Field(min_length=1)


class StoreConfig(Strict):
    name: str = Field("Tillbox", min_length=1, max_length=64)
    address: list[str] = Field(default_factory=list, max_length=4)
    tax_id: str = ""
    footer: list[str] = Field(default_factory=list, max_length=4)


class Cashier(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    name: str = Field(min_length=1, max_length=40)
    role: Literal["cashier", "manager"] = "cashier"
    pin_hash: str = Field(pattern=r"^pbkdf2_sha256\$\d+\$[0-9a-f]+\$[0-9a-f]{64}$")

    def check_pin(self, pin: str) -> bool:
        _, rounds, salt, digest = self.pin_hash.split("$")
        got = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(rounds))
        return hmac.compare_digest(got.hex(), digest)


class UplinkConfig(Strict):
    """MQTT store-and-forward to the relay and down-sync from it (docs/uplink.md)."""

    enabled: bool = False
    host: str = Field("localhost", min_length=1, max_length=253)
    port: int = Field(8883, ge=1, le=65535)
    tls: bool = True
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    client_id: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    keepalive: int = Field(30, ge=5, le=3600)
    session_expiry_s: int = Field(7 * 86400, ge=0, le=0xFFFFFFFF)
    window: int = Field(100, ge=1, le=1000)
    unacked_max: int = Field(2000, ge=1, le=100_000)
    ack_timeout_s: float = Field(30.0, ge=0.2, le=3600)
    backoff_min_s: float = Field(1.0, ge=0.05, le=600)
    backoff_max_s: float = Field(60.0, ge=0.05, le=3600)

    @model_validator(mode="after")
    def _consistent(self) -> UplinkConfig:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError("uplink.backoff_max_s must not be below uplink.backoff_min_s")
        if self.unacked_max < self.window:
            raise ValueError("uplink.unacked_max must not be below uplink.window")
        if self.enabled and self.tls:
            missing = [k for k in ("ca", "cert", "key") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"uplink: tls is on, so set {', '.join(missing)} (the CA file and this "
                    "terminal's client certificate and key), or set tls = false for a local "
                    "test broker"
                )
        return self


class PaymentConfig(Strict):
    """The card terminal, spoken to over ZVT (docs/payments.md)."""

    enabled: bool = False
    transport: Literal["tcp", "serial"] = "tcp"
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(20007, ge=1, le=65535)
    device: str = Field("/dev/ttyUSB0", min_length=1, max_length=255)
    baud: int = 9600
    password: str = Field("000000", pattern=r"^\d{6}$")
    currency_code: int = Field(978, ge=1, le=999)
    connect_timeout_s: float = Field(5.0, gt=0, le=60)
    byte_timeout_s: float = Field(0.2, gt=0, le=5)
    ack_timeout_s: float = Field(5.0, gt=0, le=60)
    answer_timeout_s: float = Field(5.0, gt=0, le=600)
    completion_timeout_s: float = Field(180.0, gt=0, le=3600)
    retry_s: float = Field(5.0, ge=0.05, le=600)
    recovery_timeout_s: float = Field(120.0, ge=0, le=3600)
    log_frames: bool = False

    @field_validator("baud")
    @classmethod
    def _baud(cls, value: int) -> int:
        if value not in (9600, 19200, 38400, 57600, 115200):
            raise ValueError("use 9600, 19200, 38400, 57600 or 115200")
        return value


class TerminalConfig(Strict):
    version: Literal[1] = 1
    store_id: str
    terminal_id: str
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    locale: str = Field("de-DE", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    timezone: str = "Europe/Berlin"
    cash_increment: int = Field(1, ge=1, le=100)
    state_dir: Path = Path("/var/lib/tillbox")
    catalog: Path | None = None
    min_free_mb: int = Field(64, ge=0, le=100_000)
    cashier_discount_limit: Decimal = Field(Decimal(10), ge=0, le=100)
    session_minutes: int = Field(720, ge=1, le=1440)
    api: ApiConfig = ApiConfig()
    tax: TaxConfig
    store: StoreConfig = StoreConfig()
    cashiers: list[Cashier] = Field(min_length=1)
    uplink: UplinkConfig = UplinkConfig()
    payment: PaymentConfig = PaymentConfig()
    devices: DevicesConfig = DevicesConfig()

    @field_validator("store_id", "terminal_id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not valid_id(value):
            raise ValueError("use 1-32 letters, digits, '-' or '_' (it becomes an MQTT topic)")
        return value

    @field_validator("catalog", mode="before")
    @classmethod
    def _no_catalog(cls, value: Any) -> Any:
        return None if value == "" else value  # TILLBOX_CATALOG="" means the demo catalog

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known time zone; use a name like Europe/Berlin") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TerminalConfig:
        ids = [c.id for c in self.cashiers]
        if len(set(ids)) != len(ids):
            raise ValueError("cashiers: two cashiers share an id")
        if not any(c.role == "manager" for c in self.cashiers):
            raise ValueError('cashiers: at least one cashier must have role = "manager"')
        codes = [c.code for c in self.tax.classes.values()]
        if len(set(codes)) != len(codes):
            raise ValueError("tax.classes: two tax classes share a code")
        return self

    @property
    def minor_units(self) -> int:
        return _MINOR_UNITS.get(self.currency, 2)

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.sqlite"

    @property
    def cache_path(self) -> Path:
        """Down-synced catalog, stock and customers (never the journal: it is append-only)."""
        return self.state_dir / "cache.sqlite"

    @property
    def client_id(self) -> str:
        return self.uplink.client_id or f"{self.store_id}-{self.terminal_id}"

    def policy(self) -> Policy:
        classes = {name: TaxClass(name, c.rate, c.code) for name, c in self.tax.classes.items()}
        setup = TaxSetup(self.tax.mode, classes, self.tax.rounding, self.tax.level)
        return Policy(self.store_id, self.terminal_id, self.currency, setup, self.cash_increment)


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """The `pin_hash` value for a cashier's PIN (what `tillbox hash-pin` prints)."""
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8):
        raise ConfigError("A PIN has 4 to 8 digits.")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, _PIN_ITERATIONS)
    return f"pbkdf2_sha256${_PIN_ITERATIONS}${salt.hex()}${digest.hex()}"


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> TerminalConfig:
    """Read, override from TILLBOX_* variables and validate; raise ConfigError on any problem."""
    environ = os.environ if environ is None else environ
    path = path or Path(environ.get("TILLBOX_CONFIG") or DEFAULT_PATH)
    try:
        raw = read_toml(
            path,
            missing="Start from terminal/demo/terminal.toml (every key is in "
            "docs/configuration.md), or pass --config PATH.",
        )
        origins = apply_env(raw, environ, ENV_PREFIX, not_keys=_NOT_KEYS, other_prefixes=[_RELAY])
        return validate(TerminalConfig, raw, path, "docs/configuration.md", origins)
    except SettingsError as err:
        raise ConfigError(str(err)) from err
