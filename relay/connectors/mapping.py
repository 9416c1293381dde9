# The field-mapping file: our SKUs, tax rates, tenders, stores and ledger roles -> remote codes.
from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, ValidationError, field_validator

from tillbox.contract import valid_id
from tillbox.settings import Strict, describe

from .base import ConnectorError, MissingMapping

FORMAT_VERSION: Final = 1
Role = Literal["sales", "rounding", "over_short", "cash_moves", "fees", "bank"]
ROLES: Final[tuple[str, ...]] = ("sales", "rounding", "over_short", "cash_moves", "fees", "bank")


class MappingError(ConnectorError):
    """The mapping file cannot be used; the message names the key and what to write."""


class StoreMap(Strict):
    tracking: str | None = Field(None, min_length=1, max_length=100)


class Accounts(Strict):
    sales: str | None = Field(None, min_length=1, max_length=64)
    rounding: str | None = Field(None, min_length=1, max_length=64)
    over_short: str | None = Field(None, min_length=1, max_length=64)
    cash_moves: str | None = Field(None, min_length=1, max_length=64)
    fees: str | None = Field(None, min_length=1, max_length=64)
    bank: str | None = Field(None, min_length=1, max_length=64)


class MappingDoc(Strict):
    version: Literal[1]
    revision: str = Field("", max_length=64)
    accounts: Accounts = Accounts()
    tenders: dict[str, str] = Field(default_factory=dict)
    tax_rates: dict[str, str] = Field(default_factory=dict)
    stores: dict[str, StoreMap] = Field(default_factory=dict)
    items: dict[str, str] = Field(default_factory=dict)

    @field_validator("tenders", "items")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        for k, v in value.items():
            if not k or len(k) > 64:
                raise ValueError(f"{k!r}: a key of 1-64 characters")
            if not v or len(v) > 64:
                raise ValueError(f"{k}: a remote code of 1-64 characters")
        return value

    @field_validator("tax_rates")
    @classmethod
    def _rates(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in value.items():
            rate = canonical_rate(k)
            if rate is None:
                raise ValueError(f'{k!r}: a tax rate in percent, e.g. "19" or "7.5"')
            if rate in out:
                raise ValueError(f"{k!r}: the rate {rate} is mapped twice")
            if not v or len(v) > 64:
                raise ValueError(f"{k}: a remote tax code of 1-64 characters")
            out[rate] = v
        return out

    @field_validator("stores")
    @classmethod
    def _stores(cls, value: dict[str, StoreMap]) -> dict[str, StoreMap]:
        for k in value:
            if not valid_id(k):
                raise ValueError(f"{k!r}: a store id (1-32 letters, digits, '-', '_')")
        return value


@functools.lru_cache(maxsize=1024)
def canonical_rate(value: str | Decimal) -> str | None:
    """'19', '19.0' and '19.00' are one rate: '19'. None if not a percentage."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite() or d < 0 or d > 100:
        return None
    text = format(d.normalize(), "f")
    return text


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """A loaded, validated mapping file. Lookups raise MissingMapping naming what to add."""

    doc: MappingDoc
    path: str
    digest: str

    @property
    def label(self) -> str:
        return f"{self.doc.revision or 'unlabelled'} ({self.digest[:12]})"

    def account(self, role: str) -> str:
        value: str | None = getattr(self.doc.accounts, role)
        if value is None:
            raise MissingMapping(
                f'mapping {self.path}: [accounts] has no {role!r}; add {role} = "<account code>"'
            )
        return value

    def tender(self, method: str) -> str:
        value = self.doc.tenders.get(method)
        if value is None:
            raise MissingMapping(
                f"mapping {self.path}: tender {method!r} has no clearing account; add "
                f'{method} = "<account code>" under [tenders]'
            )
        return value

    def tax(self, rate: str) -> str:
        key = canonical_rate(rate) or rate
        value = self.doc.tax_rates.get(key)
        if value is None:
            raise MissingMapping(
                f'mapping {self.path}: tax rate {key}% has no tax code; add "{key}" = '
                '"<tax code>" under [tax_rates]'
            )
        return value

    def item(self, sku: str) -> str:
        value = self.doc.items.get(sku) or self.doc.items.get("*")
        if value is None:
            raise MissingMapping(
                f'mapping {self.path}: SKU {sku!r} has no item code; add "{sku}" = '
                '"<item code>" under [items] (or "*" for a catch-all item)'
            )
        return value

    def tracking(self, store: str) -> str:
        entry = self.doc.stores.get(store)
        if entry is None or entry.tracking is None:
            raise MissingMapping(
                f"mapping {self.path}: store {store!r} has no tracking option / location; add "
                f'[stores.{store}] tracking = "<name or id>"'
            )
        return entry.tracking

    def tracking_or_none(self, store: str) -> str | None:
        entry = self.doc.stores.get(store)
        return entry.tracking if entry else None


def parse(text: str, where: str) -> FieldMapping:
    """Validate a mapping file's text; raise MappingError naming every bad key."""
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise MappingError(f"{where}: not valid TOML: {err}") from err
    if "version" not in raw:
        raise MappingError(f"{where}: version: missing; write version = {FORMAT_VERSION} first")
    if raw["version"] != FORMAT_VERSION:
        raise MappingError(
            f"{where}: version: this relay reads mapping format {FORMAT_VERSION}, the file says "
            f"{raw['version']!r}"
        )
    try:
        doc = MappingDoc.model_validate(raw)
    except ValidationError as err:
        raise MappingError(f"{where}: " + describe(err, "docs/connectors.md")) from err
    digest = hashlib.sha256(
        json.dumps(doc.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()
    return FieldMapping(doc, where, digest)


def load(path: str | Path) -> FieldMapping:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise MappingError(f"{p}: cannot read the mapping file: {err.strerror or err}") from err
    return parse(text, str(p))
