# The QuickBooks Online connector: python-quickbooks, requestid idempotency, rotating tokens.
from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from relay.accounting.ledger import KNOWN
from relay.connectors.base import (
    Bindings,
    Command,
    Connector,
    ConnectorConfig,
    Done,
    Event,
    Rejected,
    Retry,
    secret,
)
from relay.connectors.keys import remote_key, step_version
from relay.connectors.mapping import FieldMapping
from relay.connectors.runtime import RateLimiter, limiter_for

from .plan import plan

log = logging.getLogger("tillbox.relay.quickbooks")

_MONEY = frozenset({"Amount", "UnitPrice", "TotalTax"})


class QuickBooksConfig(ConnectorConfig):
    kind: Literal["quickbooks"] = "quickbooks"
    client_id: str = Field(..., min_length=1, max_length=200)
    client_secret: SecretStr = secret("the app's client secret")
    refresh_token: SecretStr = secret("the first refresh token; rotated ones are kept in the store")
    realm_id: str = Field(..., min_length=1, max_length=40, description="the company id")
    api_url: str = Field("https://quickbooks.api.intuit.com/v3", pattern=r"^https?://")
    token_url: str = Field(
        "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer", pattern=r"^https?://"
    )
    minorversion: int = Field(75, ge=75, le=1000)
    # QuickBooks Online allows 500 requests a minute and 10 at once per company.
    calls_per_minute: int = Field(500, ge=1, le=100_000)
    max_concurrent: int = Field(10, ge=1, le=64)
    rate_window_s: float = Field(60.0, gt=0, le=3600)


class _Answer(threading.local):
    """The last HTTP answer seen by this thread (python-quickbooks hides the status)."""

    status: int = 0
    headers: Mapping[str, str] = {}
    text: str = ""


class QuickBooksConnector(Connector):
    """Posts each Z report as SalesReceipts and RefundReceipts per tender (and a JournalEntry
    for over/short and cash moves), and each card payout as a Deposit with its fee line."""

    kind: ClassVar[str] = "quickbooks"
    Config: ClassVar[type[ConnectorConfig]] = QuickBooksConfig
    key_limit: ClassVar[int] = 50  # the requestid query parameter: at most 50 characters
    handles: ClassVar[frozenset[str]] = frozenset({"shift.closed", "settlement.paid_out"})
    ignores: ClassVar[frozenset[str]] = KNOWN - handles

    def __init__(self, name: str, config: ConnectorConfig, context: Any) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, QuickBooksConfig)
        self.conf = config
        self.limiter: RateLimiter = limiter_for(
            f"quickbooks:{config.realm_id}",
            config.calls_per_minute,
            config.rate_window_s,
            config.max_concurrent,
        )
        self._lock = threading.Lock()
        self._access: tuple[str, float] | None = None
        self._answer = _Answer()
        self._qb: Any = None

    # ----- plan ---------------------------------------------------------------------------

    def plan(self, event: Event, mapping: FieldMapping | None) -> Sequence[Command]:
        tz = self.context.timezone_of
        day = tz.event_day(event) if tz is not None else event.at[:10]
        ledger = self.context.ledger
        currency = ledger.currency(event.store) if ledger is not None else "EUR"
        return plan(event, mapping, day, currency)

    # ----- the SDK ------------------------------------------------------------------------

    def _state(self) -> Any:
        from relay.connectors.state import ConnectorState

        return ConnectorState(self.context.store.engine)

    def _refresh(self) -> tuple[str, float]:
        """A fresh access token; the refresh token Intuit rotates is kept in the store."""
        import requests

        kept = self._state().get_value(self.name, "refresh_token")
        refresh = kept or self.conf.refresh_token.get_secret_value()
        basic = base64.b64encode(
            f"{self.conf.client_id}:{self.conf.client_secret.get_secret_value()}".encode()
        ).decode()
        try:
            r = requests.post(
                self.conf.token_url,
                data={"grant_type": "refresh_token", "refresh_token": refresh},
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
                timeout=self.conf.timeout_s,
            )
        except requests.RequestException as err:
            raise Retry(f"quickbooks: cannot refresh the access token: {err}") from err
        if r.status_code != 200:
            raise Retry(
                f"quickbooks: the token endpoint refused the refresh token ({r.status_code}); "
                "connect the app again and put the new refresh token in relay.toml"
            )
        token = r.json()
        if token.get("refresh_token") and token["refresh_token"] != refresh:
            self._state().set_value(self.name, "refresh_token", token["refresh_token"])
        return str(token["access_token"]), time.time() + float(token.get("expires_in", 3600))

    def _client(self, force: bool = False) -> Any:
        with self._lock:
            if force or self._access is None or self._access[1] < time.time() + 60:
                self._access = self._refresh()
                self._qb = None
            if self._qb is None:
                self._qb = self._build(self._access[0])
            return self._qb

    def _build(self, access_token: str) -> Any:
        import requests
        from quickbooks import QuickBooks  # type: ignore[import-untyped]

        answer, timeout = self._answer, self.conf.timeout_s

        class Session(requests.Session):
            """What python-quickbooks needs of a session: `request` and `access_token`. The
            token is ours (refreshed above); every request gets a timeout and its answer noted."""

            access_token = ""

            def request(self, *args: Any, **kw: Any) -> Any:
                kw.setdefault("timeout", timeout)
                resp = super().request(*args, **kw)
                answer.status, answer.headers, answer.text = (
                    resp.status_code,
                    resp.headers,
                    resp.text,
                )
                return resp

        Session.access_token = access_token
        qb = QuickBooks(company_id=self.conf.realm_id, minorversion=self.conf.minorversion)
        qb.api_url_v3 = self.conf.api_url.rstrip("/")
        qb.session = Session()
        return qb

    def _call(self, fn: Callable[[Any], Any], what: str) -> Any:
        import requests
        from quickbooks.exceptions import QuickbooksException  # type: ignore[import-untyped]

        qb = self._client()
        with self.limiter.call():
            self._answer.status = 0
            try:
                return fn(qb)
            except requests.ConnectionError as err:
                before = isinstance(err, requests.ConnectTimeout) or "refused" in str(err)
                raise Retry(f"quickbooks: {what}: {err}", uncertain=not before) from err
            except requests.Timeout as err:
                raise Retry(f"quickbooks: {what}: timed out", uncertain=True) from err
            except QuickbooksException as err:
                raise self._translate(err, what) from err

    def _translate(self, err: Any, what: str) -> Exception:
        a = self._answer
        status = a.status
        headers = {k.lower(): v for k, v in dict(a.headers).items()}
        if status == 429:
            try:
                after = float(headers.get("retry-after", "60"))
            except ValueError:
                after = 60.0
            self.limiter.pause(after)
            return Retry(f"quickbooks: throttled, retry after {after:g} s", after=after)
        if status == 401:
            self._access = None
            return Retry(f"quickbooks: {what}: unauthorised; refreshing the token")
        if status == 400:
            detail = getattr(err, "detail", "") or ""
            return Rejected(
                f"quickbooks: {what}: {err.message}{': ' + detail if detail else ''}",
                status=400,
                remote=a.text,
            )
        return Retry(f"quickbooks: {what}: HTTP {status or '?'}: {err.message}", uncertain=True)

    # ----- apply --------------------------------------------------------------------------

    def apply(self, command: Command, bindings: Bindings, uncertain: bool) -> Done:
        for step in command.payload["steps"]:
            local = f"{command.key}#{step['name']}"
            if bindings.get(local):
                continue
            doc = step["doc"]
            if uncertain:
                found = self._find(step["type"], str(doc.get("DocNumber", "")))
                if found is not None:
                    bindings.put(local, found)
                    continue
            key = remote_key(command.key, step_version(step), self.key_limit)
            bindings.put(local, self._create(step["type"], doc, key))
        return Done()

    def _create(self, type_: str, doc: Mapping[str, Any], key: str) -> str:
        import importlib

        module = importlib.import_module(f"quickbooks.objects.{type_.lower()}")
        cls = getattr(module, type_)
        obj = cls.from_json(_decimals(doc))
        saved = self._call(lambda qb: obj.save(qb=qb, request_id=key), f"create {type_}")
        remote = getattr(saved, "Id", None)
        if not remote:
            raise Retry(f"quickbooks: create {type_}: no Id in the answer", uncertain=True)
        return str(remote)

    def _find(self, type_: str, doc_number: str) -> str | None:
        if not doc_number:
            return None
        select = f"select Id from {type_} where DocNumber = '{doc_number}'"
        result = self._call(lambda qb: qb.query(select), f"look up {type_}")
        found = (result.get("QueryResponse") or {}).get(type_) or []
        return str(found[0]["Id"]) if found else None

    # ----- check --------------------------------------------------------------------------

    def check(self, mapping: FieldMapping | None) -> list[str]:
        try:
            self._client(force=True)
        except Retry as err:
            return [str(err)]
        if mapping is None:
            return ["no mapping file loaded"]
        problems: list[str] = []
        wanted = {
            "Account": [
                *(v for v in vars(mapping.doc.accounts).values() if v),
                *mapping.doc.tenders.values(),
            ],
            "TaxCode": list(mapping.doc.tax_rates.values()),
            "Item": [mapping.doc.items.get("*", "")],
        }
        if not mapping.doc.items.get("*"):
            problems.append('mapping [items]: QuickBooks summaries need "*" = "<item id>"')
        for type_, ids in wanted.items():
            for remote in sorted({i for i in ids if i}):

                def look(qb: Any, t: str = type_, i: str = remote) -> Any:
                    return qb.query(f"select Id from {t} where Id = '{i}'")

                try:
                    result = self._call(look, f"look up {type_} {remote}")
                except (Retry, Rejected) as err:
                    problems.append(str(err))
                    continue
                if not (result.get("QueryResponse") or {}).get(type_):
                    problems.append(f"mapping: {type_} {remote!r} does not exist in QuickBooks")
        return problems


def _decimals(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _decimals(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v, key) for v in value]
    if key in _MONEY and isinstance(value, str):
        return Decimal(value)
    return value
