# The Xero connector (the reference to copy): xero-python SDK, idempotency keys, rate limits.
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from datetime import time as dtime
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
    Drift,
    Event,
    Rejected,
    Retry,
    secret,
)
from relay.connectors.keys import remote_key, step_version
from relay.connectors.mapping import ROLES, FieldMapping
from relay.connectors.runtime import RateLimiter, limiter_for

from .plan import Options, plan

log = logging.getLogger("tillbox.relay.xero")

# Event types Xero acts on in some mode; the rest it knows and leaves alone.
_ALWAYS = frozenset({"shift.closed", "settlement.paid_out"})
_PER_SALE = frozenset({"sale.completed", "sale.refunded"})
_MONEY = frozenset({"LineAmount", "TaxAmount", "UnitAmount", "Quantity", "Amount"})
_DATES = frozenset({"Date", "DueDate"})


class XeroConfig(ConnectorConfig):
    kind: Literal["xero"] = "xero"
    client_id: str = Field(..., min_length=1, max_length=200)
    client_secret: SecretStr = secret("the custom connection's client secret")
    tenant_id: str = Field(..., min_length=1, max_length=100)
    mode: Literal["journal", "invoice", "per_sale"] = "journal"
    tracking_category: str | None = Field(None, min_length=1, max_length=100)
    contact: str = Field("Tillbox sales", min_length=1, max_length=255)
    acquirer: str = Field("Card acquirer", min_length=1, max_length=255)
    journal_status: Literal["POSTED", "DRAFT"] = "POSTED"
    api_url: str = Field("https://api.xero.com/api.xro/2.0", pattern=r"^https?://")
    token_url: str = Field("https://identity.xero.com/connect/token", pattern=r"^https?://")
    # Xero allows 60 calls in any minute and 5 at once per tenant (and 5000 a day).
    rate_window_s: float = Field(60.0, gt=0, le=3600)


class _Client:
    """The SDK, pointed at the configured hosts, with a client-credentials token kept fresh."""

    def __init__(self, conf: XeroConfig) -> None:
        from xero_python.accounting import AccountingApi  # type: ignore[import-untyped]
        from xero_python.api_client import (  # type: ignore[import-untyped]
            ApiClient,
            Configuration,
        )
        from xero_python.api_client.oauth2 import OAuth2Token  # type: ignore[import-untyped]

        self.conf = conf
        self._lock = threading.Lock()
        self._token: dict[str, Any] = {}
        secret_value = conf.client_secret.get_secret_value()
        self.oauth = OAuth2Token(client_id=conf.client_id, client_secret=secret_value)
        self.api_client = ApiClient(
            Configuration(oauth2_token=self.oauth),
            pool_threads=1,
            oauth2_token_getter=lambda: self._token,
            oauth2_token_saver=self._save,
        )
        # Our queue owns retries (each one passes the rate limiter); urllib3 must not add its own.
        self.api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
        self.api = AccountingApi(self.api_client, base_url=conf.api_url.rstrip("/"))

    def _save(self, token: dict[str, Any]) -> None:
        self._token = token

    def ensure_token(self, force: bool = False) -> None:
        from xero_python.api_client.oauth2 import TokenApi

        with self._lock:
            expires = float(self._token.get("expires_at", 0))
            if not force and self._token and expires > time.time() + 60:
                return
            api = TokenApi(self.api_client, self.conf.client_id, self.oauth.client_secret)
            api.client_credentials_token_url = self.conf.token_url
            token = dict(api.get_client_credentials_token(False))
            token["expires_at"] = time.time() + float(token.get("expires_in", 1800))
            token.setdefault("scope", [])
            self._token = token
            self.oauth.update_token(
                access_token=token["access_token"],
                scope=token["scope"],
                expires_in=token.get("expires_in"),
                token_type=token.get("token_type", "Bearer"),
                expires_at=token["expires_at"],
            )

    def close(self) -> None:
        self.api_client.rest_client.pool_manager.clear()


def _decimals(value: Any, key: str = "") -> Any:
    """Our JSON payload (amounts as decimal strings, dates as YYYY-MM-DD) in the SDK's terms."""
    if isinstance(value, dict):
        return {k: _decimals(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v, key) for v in value]
    if key in _MONEY and isinstance(value, str):
        return Decimal(value)
    if key in _DATES and isinstance(value, str) and len(value) == 10:
        moment = datetime.combine(date.fromisoformat(value), dtime(0), UTC)
        return f"/Date({int(moment.timestamp() * 1000)}+0000)/"
    return value


def _fill(value: Any, found: Callable[[str], str | None]) -> Any:
    """Replace "$step" placeholders with the remote id bound to that step."""
    if isinstance(value, dict):
        return {k: _fill(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, found) for v in value]
    if isinstance(value, str) and value.startswith("$"):
        remote = found(value[1:])
        if remote is None:
            raise Retry(f"step {value[1:]} has no remote id yet")
        return remote
    return value


# (collection name, SDK model of the collection, create method, get method, id attribute, field
# searched when the outcome of a create is uncertain)
_TYPES: dict[str, tuple[str, str, str, str, str, str]] = {
    "ManualJournal": (
        "ManualJournals",
        "ManualJournals",
        "create_manual_journals",
        "get_manual_journals",
        "manual_journal_id",
        "Narration",
    ),
    "Invoice": (
        "Invoices",
        "Invoices",
        "create_invoices",
        "get_invoices",
        "invoice_id",
        "Reference",
    ),
    "CreditNote": (
        "CreditNotes",
        "CreditNotes",
        "create_credit_notes",
        "get_credit_notes",
        "credit_note_id",
        "Reference",
    ),
    "Payment": (
        "Payments",
        "Payments",
        "create_payments",
        "get_payments",
        "payment_id",
        "Reference",
    ),
    "BankTransaction": (
        "BankTransactions",
        "BankTransactions",
        "create_bank_transactions",
        "get_bank_transactions",
        "bank_transaction_id",
        "Reference",
    ),
}


class XeroConnector(Connector):
    """Posts Z-report summaries (a ManualJournal by default; an invoice with payments, or one
    invoice per sale, by config) and card payouts to one Xero organisation."""

    kind: ClassVar[str] = "xero"
    Config: ClassVar[type[ConnectorConfig]] = XeroConfig
    key_limit: ClassVar[int] = 128  # Xero's Idempotency-Key: at most 128 characters
    handles: ClassVar[frozenset[str]] = _ALWAYS | _PER_SALE
    ignores: ClassVar[frozenset[str]] = KNOWN - _ALWAYS

    def __init__(self, name: str, config: ConnectorConfig, context: Any) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, XeroConfig)
        self.conf = config
        self.options = Options(
            config.mode,
            config.tracking_category,
            config.contact,
            config.acquirer,
            config.journal_status,
        )
        self.limiter: RateLimiter = limiter_for(
            f"xero:{config.tenant_id}",
            config.calls_per_minute,
            config.rate_window_s,
            config.max_concurrent,
        )
        self._client: _Client | None = None
        self._client_lock = threading.Lock()
        # (connect, read): the SDK ignores a plain float timeout.
        self._timeout = (config.timeout_s, config.timeout_s)

    def acts_on(self, event_type: str) -> str:
        if event_type in _ALWAYS or (self.conf.mode == "per_sale" and event_type in _PER_SALE):
            return "handle"
        return "ignore" if event_type in KNOWN else "unknown"

    @property
    def client(self) -> _Client:
        with self._client_lock:
            if self._client is None:
                self._client = _Client(self.conf)
            return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # ----- plan ---------------------------------------------------------------------------

    def plan(self, event: Event, mapping: FieldMapping | None) -> Sequence[Command]:
        tz = self.context.timezone_of
        day = tz.event_day(event) if tz is not None else event.at[:10]
        ledger = self.context.ledger
        currency = ledger.currency(event.store) if ledger is not None else "EUR"
        return plan(event, mapping, self.options, day, currency)

    # ----- apply --------------------------------------------------------------------------

    def apply(self, command: Command, bindings: Bindings, uncertain: bool) -> Done:
        ref = command.payload["reference"]
        for step in command.payload["steps"]:
            local = f"{command.key}#{step['name']}"
            if bindings.get(local):
                continue
            doc = _fill(step["doc"], lambda name: bindings.get(f"{command.key}#{name}"))
            if uncertain:
                found = self._find(step["type"], doc)
                if found is not None:
                    log.info("xero: %s %s was already there (%s)", step["type"], ref, found)
                    bindings.put(local, found)
                    continue
            key = remote_key(command.key, step_version(step), self.key_limit)
            bindings.put(local, self._create(step["type"], doc, key))
        return Done()

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """One API call through the rate limiter, with the SDK's errors translated."""
        import urllib3
        from xero_python.exceptions import (  # type: ignore[import-untyped]
            ApiException,
            HTTPStatusException,
        )

        try:
            self.client.ensure_token()
        except Exception as err:  # the SDK raises plain Exception for a refused token request
            raise Retry(f"xero: cannot get an access token: {_short(err)}") from err
        with self.limiter.call():
            try:
                return fn()
            except HTTPStatusException as err:
                raise self._translate(err, what) from err
            except ApiException as err:
                raise Retry(f"xero: {what}: {_short(err)}", uncertain=True) from err
            except urllib3.exceptions.HTTPError as err:
                reason = getattr(err, "reason", err)
                before_sending = isinstance(
                    reason,
                    urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError,
                )
                raise Retry(
                    f"xero: {what}: {type(reason).__name__}: {reason}", uncertain=not before_sending
                ) from err

    def _translate(self, err: Any, what: str) -> Exception:
        status = int(err.status) if isinstance(err.status, int) else 0
        headers = {k.lower(): v for k, v in (err.headers or {}).items()}
        body = (err.body or b"").decode("utf-8", "replace") if isinstance(err.body, bytes) else ""
        if status == 429:
            after = _seconds(headers.get("retry-after"), 60.0)
            self.limiter.pause(after)
            problem = headers.get("x-rate-limit-problem", "?")
            return Retry(f"xero: rate limited ({problem}), retry after {after:g} s", after=after)
        if status == 401:
            self.client.ensure_token(force=True)
            return Retry(f"xero: {what}: unauthorised; check client_id, client_secret, tenant_id")
        if status in (400, 404):
            return Rejected(
                f"xero: {what}: {_messages(body) or status}", status=status, remote=body
            )
        if status == 403:
            return Retry(
                f"xero: {what}: forbidden; is the connection to tenant allowed? {body[:200]}"
            )
        return Retry(f"xero: {what}: HTTP {status}", uncertain=True)

    def _create(self, type_: str, doc: Mapping[str, Any], key: str) -> str:
        from xero_python.api_client.deserializer import deserialize  # type: ignore[import-untyped]

        collection, model, create, _, id_attr, _ = _TYPES[type_]
        c = self.client
        body = deserialize(model, {collection: [_decimals(doc)]}, c.api.get_model_finder())
        _drop_read_only_flags(body)
        method = getattr(c.api, create)
        result = self._call(
            lambda: method(
                self.conf.tenant_id,
                body,
                idempotency_key=key,
                _request_timeout=self._timeout,
            ),
            f"create {type_}",
        )
        items = getattr(result, _snake(collection))
        if not items or not getattr(items[0], id_attr, None):
            raise Retry(f"xero: create {type_}: the answer carried no id", uncertain=True)
        return str(getattr(items[0], id_attr))

    def _find(self, type_: str, doc: Mapping[str, Any]) -> str | None:
        collection, _, _, get, id_attr, field = _TYPES[type_]
        value = str(doc.get(field, ""))
        if not value:
            return None
        method = getattr(self.client.api, get)
        where = f'{field}=="{value}"'
        result = self._call(
            lambda: method(self.conf.tenant_id, where=where, _request_timeout=self._timeout),
            f"look up {type_}",
        )
        for item in getattr(result, _snake(collection)) or []:
            status = str(getattr(item, "status", "") or "")
            if status not in ("DELETED", "VOIDED"):
                return str(getattr(item, id_attr))
        return None

    # ----- check and reconcile ----------------------------------------------------------------

    def check(self, mapping: FieldMapping | None) -> list[str]:
        problems: list[str] = []
        try:
            self.client.ensure_token(force=True)
        except Exception as err:
            return [f"cannot get an access token from {self.conf.token_url}: {_short(err)}"]
        try:
            accounts = self._call(
                lambda: self.client.api.get_accounts(self.conf.tenant_id), "read the accounts"
            )
            taxes = self._call(
                lambda: self.client.api.get_tax_rates(self.conf.tenant_id), "read the tax rates"
            )
        except (Retry, Rejected) as err:
            return [str(err)]
        if mapping is None:
            return ["no mapping file loaded"]
        codes = {a.code for a in accounts.accounts or [] if a.code}
        bank_codes = {
            a.code
            for a in accounts.accounts or []
            if a.code and getattr(a.type, "value", a.type) == "BANK"
        }
        tax_types = {t.tax_type for t in taxes.tax_rates or [] if t.tax_type}
        doc = mapping.doc
        for role in ROLES:
            code = getattr(doc.accounts, role)
            if code is not None and code not in codes:
                problems.append(f"mapping [accounts] {role} = {code!r}: no such account in Xero")
        if doc.accounts.bank and doc.accounts.bank in codes and doc.accounts.bank not in bank_codes:
            problems.append(f"mapping [accounts] bank = {doc.accounts.bank!r}: not a bank account")
        for method, code in doc.tenders.items():
            if code not in codes:
                problems.append(f"mapping [tenders] {method} = {code!r}: no such account in Xero")
        for rate, tax_type in doc.tax_rates.items():
            if tax_type not in tax_types:
                problems.append(f'mapping [tax_rates] "{rate}" = {tax_type!r}: no such tax type')
        return problems

    def reconcile(self, bindings: Mapping[str, str]) -> list[Drift]:
        """Each journal we bound must still be there and not voided or deleted."""
        drift: list[Drift] = []
        for local, remote in sorted(bindings.items()):
            if not local.endswith("#journal"):
                continue

            def read(remote: str = remote) -> Any:
                return self.client.api.get_manual_journal(self.conf.tenant_id, remote)

            try:
                found = self._call(read, "read a journal")
            except Rejected:
                drift.append(Drift(local, remote, "not found in Xero"))
                continue
            items = found.manual_journals or []
            status = str(items[0].status) if items else "missing"
            if status not in ("POSTED", "DRAFT"):
                drift.append(Drift(local, remote, f"the journal is {status} in Xero"))
        return drift


def _drop_read_only_flags(model: Any) -> None:
    """The SDK's models fill read-only status flags (HasAttachments, HasErrors, …) with False;
    the spec forbids sending read-only properties, so they are left out of requests."""
    if isinstance(model, list):
        for item in model:
            _drop_read_only_flags(item)
        return
    types = getattr(model, "openapi_types", None)
    if not isinstance(types, dict):
        return
    for attr in types:
        value = getattr(model, attr, None)
        if value is False and attr.startswith("has_"):
            setattr(model, attr, None)
        elif value is not None:
            _drop_read_only_flags(value)


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _seconds(value: str | None, default: float) -> float:
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def _messages(body: str) -> str:
    """The validation messages of a Xero 400 answer."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500]
    found: list[str] = []
    for element in data.get("Elements", []) or []:
        for v in element.get("ValidationErrors", []) or []:
            if v.get("Message"):
                found.append(str(v["Message"]))
    if not found and data.get("Message"):
        found.append(str(data["Message"]))
    return "; ".join(found)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
