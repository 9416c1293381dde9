# Xero on 127.0.0.1: requests checked against Xero's OpenAPI file, limits, failures on demand.
from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .base import Fault, Handler, Recorded, StandIn, State

ROOT = Path(__file__).resolve().parents[3]
SPEC = ROOT.parent / "shared" / "specs" / "xero" / "xero_accounting.yaml"
API = "/api.xro/2.0"
_openapi: Any = None
_openapi_lock = threading.Lock()


def spec_path() -> Path:
    if not SPEC.is_file():
        pytest.fail(
            f"the Xero OpenAPI spec is missing: expected {SPEC} (../shared/specs/xero/ beside the "
            "repository). The Xero tests check every request against it."
        )
    return SPEC


def openapi() -> Any:
    """The spec, loaded once per test run (it is large). Xero's own file does not pass a strict
    spec check (string defaults on booleans), so the spec itself is not validated."""
    global _openapi
    with _openapi_lock:
        if _openapi is None:
            import yaml
            from openapi_core import Config, OpenAPI

            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            doc = yaml.load(spec_path().read_text(encoding="utf-8"), Loader=loader)
            _openapi = OpenAPI.from_dict(doc, config=Config(spec_validator_cls=None))
        return _openapi


ACCOUNTS = {
    "200": "REVENUE",
    "260": "OTHERINCOME",
    "404": "EXPENSE",
    "405": "EXPENSE",
    "090": "BANK",
    "091": "BANK",
    "610": "CURRLIAB",
    "611": "CURRENT",
    "612": "CURRENT",
    "613": "CURRENT",
    "820": "CURRLIAB",
}
TAX_TYPES = {"OUTPUT2": "19", "OUTPUT": "7", "EXEMPTOUTPUT": "0", "NONE": "0"}
TRACKING = {"Store": ["Berlin Mitte", "Wien"]}


@dataclass
class _State(State):
    idem: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)


class XeroStandIn(StandIn):
    """Xero on 127.0.0.1: `/connect/token` (client credentials) and `/api.xro/2.0/...`."""

    state: _State

    def __init__(
        self,
        *,
        tenant: str = "tenant-1",
        client_id: str = "tillbox-test",
        client_secret: str = "s3cret",
        calls: int = 60,
        window_s: float = 60.0,
        concurrent: int = 5,
        items: Iterable[str] = (),
    ) -> None:
        super().__init__(_State(), _Handler, calls=calls, window_s=window_s, concurrent=concurrent)
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.items = set(items)
        openapi()

    def creates(self) -> list[Recorded]:
        """Successful create requests (PUT/POST answered 200), replays excluded."""
        with self.lock:
            return [
                r
                for r in self.state.requests
                if r.method in ("PUT", "POST")
                and r.status == 200
                and r.path.startswith(API)
                and not r.problem
            ]


def day_of(value: Any) -> str:
    """YYYY-MM-DD of a Xero /Date(ms)/ value."""
    m = re.match(r"^/Date\((-?\d+)([+-]\d{4})?\)/$", str(value))
    if not m:
        return str(value)
    return time.strftime("%Y-%m-%d", time.gmtime(int(m.group(1)) / 1000))


def _error(message: str, kind: str = "ValidationException") -> dict[str, Any]:
    return {
        "ErrorNumber": 10,
        "Type": kind,
        "Message": "A validation exception occurred",
        "Elements": [{"ValidationErrors": [{"Message": message}]}],
    }


class _Handler(Handler):
    owner: XeroStandIn
    content_type = "application/json; charset=utf-8"
    token_path = "/connect/token"
    unauthorized: ClassVar[Any] = {"Title": "Unauthorized", "Status": 401, "Detail": "TokenInvalid"}

    def do_PUT(self) -> None:
        self._handle("PUT")

    def parse_body(self, raw: bytes, headers: dict[str, str]) -> Any:
        return json.loads(raw, parse_float=Decimal) if raw else None

    def refuse(self, headers: dict[str, str]) -> tuple[int, Any] | None:
        refused = super().refuse(headers)
        if refused is None and headers.get("xero-tenant-id") != self.owner.tenant:
            return 403, {"Title": "Forbidden", "Detail": "AuthenticationUnsuccessful"}
        return refused

    def limit_headers(self, problem: str) -> dict[str, str]:
        return {"X-Rate-Limit-Problem": problem}

    def token(self, raw: bytes, headers: dict[str, str]) -> None:
        o = self.owner
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        if form.get("grant_type") != "client_credentials" or (
            form.get("client_id"),
            form.get("client_secret"),
        ) != (o.client_id, o.client_secret):
            self.send(400, {"error": "invalid_client"})
            return
        token = uuid.uuid4().hex
        with o.lock:
            o.state.tokens.add(token)
        self.send(
            200,
            {
                "access_token": token,
                "expires_in": 1800,
                "token_type": "Bearer",
                "scope": "accounting.transactions accounting.settings",
            },
        )

    def api(self, rec: Recorded, raw: bytes, fault: Fault | None) -> None:
        o, st = self.owner, self.owner.state
        method, path, query, headers = rec.method, rec.path, rec.query, rec.headers
        problem = self._validate(method, path, query, headers, raw)
        if problem:
            with o.lock:
                st.violations.append(f"{method} {path}: {problem}")
            rec.status = 400
            rec.problem = "spec"
            self.send(400, _error(f"request does not follow the API spec: {problem}"))
            return
        key = headers.get("idempotency-key")
        if method in ("PUT", "POST") and key:
            with o.lock:
                seen = st.idem.get(key)
                if seen is not None:
                    st.replays += 1
            if seen is not None:
                status, data, _ = seen
                rec.status = status
                rec.problem = "replay"
                self.send(status, data)
                return
        if fault is not None and fault.kind == "400":
            rec.status = 400
            rec.problem = "injected:400"
            self.send(400, _error("injected validation error"))
            return
        status, answer = self._route(method, path, query, rec.body)
        rec.status = status
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.delay)  # created; the answer comes after the client gave up
        data = json.dumps(answer, default=str).encode()
        if method in ("PUT", "POST") and key and status in (200, 400):
            with o.lock:
                st.idem[key] = (status, data, "")
        self.send(status, data)

    def _validate(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> str:
        from openapi_core.testing import MockRequest

        req = MockRequest(
            "https://api.xero.com",
            method.lower(),
            path,
            headers=headers,
            args=query,
            data=raw or None,
            content_type=headers.get("content-type", "application/json").split(";")[0],
        )
        try:
            openapi().validate_request(req)
        except Exception as err:
            cause = getattr(err, "__cause__", None)
            detail = getattr(cause, "schema_errors", None)
            return f"{err}" + (f" {detail}" if detail else "")
        return ""

    # ----- the API's behaviour ---------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        o = self.owner
        parts = path[len(API) + 1 :].split("/")
        collection = parts[0]
        env = {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "Tillbox stand-in",
            "DateTimeUTC": f"/Date({int(time.time() * 1000)})/",
        }
        if method == "GET":
            if collection == "Accounts":
                accounts = [
                    {
                        "AccountID": str(uuid.uuid5(uuid.NAMESPACE_URL, c)),
                        "Code": c,
                        "Name": f"Account {c}",
                        "Type": t,
                        "Status": "ACTIVE",
                    }
                    for c, t in sorted(ACCOUNTS.items())
                ]
                return 200, {**env, "Accounts": accounts}
            if collection == "TaxRates":
                rates = [
                    {
                        "Name": k,
                        "TaxType": k,
                        "Status": "ACTIVE",
                        "EffectiveRate": v,
                        "DisplayTaxRate": v,
                    }
                    for k, v in TAX_TYPES.items()
                ]
                return 200, {**env, "TaxRates": rates}
            with o.lock:
                docs = list(o.state.docs.get(collection, {}).values())
            if len(parts) > 1:
                found = [d for d in docs if parts[1] in d.values()]
                if not found:
                    return 404, {"Message": "not found"}
                return 200, {**env, collection: found}
            where = query.get("where", "")
            m = re.match(r'^(\w+)=="(.*)"$', where)
            if m:
                docs = [d for d in docs if str(d.get(m.group(1))) == m.group(2)]
            return 200, {**env, collection: docs}
        items = (body or {}).get(collection) or []
        out = []
        for doc in items:
            problem = self._business(collection, doc)
            if problem:
                return 400, {
                    **_error(problem),
                    "Elements": [{**doc, "ValidationErrors": [{"Message": problem}]}],
                }
            out.append(self._store(collection, doc))
        return 200, {**env, collection: out}

    def _business(self, collection: str, doc: dict[str, Any]) -> str:
        """Xero's own checks on the documents Tillbox sends (accounts, balance, references)."""

        def account(code: Any) -> str:
            return "" if str(code) in ACCOUNTS else f"Account code '{code}' is not a valid code"

        def tracking(lines: list[dict[str, Any]]) -> str:
            for line in lines:
                for t in line.get("Tracking") or []:
                    if t.get("Option") not in TRACKING.get(t.get("Name"), []):
                        return f"Tracking option {t.get('Option')!r} of {t.get('Name')!r} not found"
            return ""

        def taxes(lines: list[dict[str, Any]]) -> str:
            for line in lines:
                if line.get("TaxType") and line["TaxType"] not in TAX_TYPES:
                    return f"The TaxType code '{line['TaxType']}' does not exist or cannot be used"
            return ""

        if collection == "ManualJournals":
            lines = doc.get("JournalLines") or []
            for line in lines:
                if problem := account(line.get("AccountCode")):
                    return problem
            if problem := taxes(lines) or tracking(lines):
                return problem
            total = sum(Decimal(str(x.get("LineAmount", 0))) for x in lines)
            if doc.get("LineAmountTypes") == "Exclusive":
                total += sum(Decimal(str(x.get("TaxAmount", 0) or 0)) for x in lines)
            if total != 0:
                return f"The total debits must equal total credits (off by {total})"
            return ""
        if collection in ("Invoices", "CreditNotes", "BankTransactions"):
            if not (doc.get("Contact") or {}).get("Name"):
                return "A Contact must be specified"
            lines = doc.get("LineItems") or []
            for line in lines:
                if problem := account(line.get("AccountCode")):
                    return problem
                code = line.get("ItemCode")
                if code is not None and code not in self.owner.items:
                    return f"Item code '{code}' is not valid"
            if collection == "BankTransactions":
                bank = str((doc.get("BankAccount") or {}).get("Code"))
                if ACCOUNTS.get(bank) != "BANK":
                    return f"Account code '{bank}' is not a bank account"
            return taxes(lines) or tracking(lines)
        if collection == "Payments":
            if problem := account((doc.get("Account") or {}).get("Code")):
                return problem
            target = doc.get("Invoice") or doc.get("CreditNote") or {}
            wanted = target.get("InvoiceID") or target.get("CreditNoteID")
            with self.owner.lock:
                known = self.owner.state.docs.get("Invoices", {}) | self.owner.state.docs.get(
                    "CreditNotes", {}
                )
            if wanted not in known:
                return "Invoice or credit note could not be found"
            return ""
        return ""

    def _store(self, collection: str, doc: dict[str, Any]) -> dict[str, Any]:
        ids = {
            "ManualJournals": "ManualJournalID",
            "Invoices": "InvoiceID",
            "CreditNotes": "CreditNoteID",
            "Payments": "PaymentID",
            "BankTransactions": "BankTransactionID",
        }
        new = dict(doc)
        new[ids.get(collection, "ID")] = str(uuid.uuid4())
        new.setdefault("Status", "AUTHORISED")
        new["UpdatedDateUTC"] = f"/Date({int(time.time() * 1000)}+0000)/"
        with self.owner.lock:
            self.owner.state.docs.setdefault(collection, {})[new[ids[collection]]] = new
        return new
