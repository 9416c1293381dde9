# Xero on 127.0.0.1: requests checked against Xero's OpenAPI file, limits, failures on demand.
from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int
    problem: str = ""
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    kind: str  # "429", "500", "503", "timeout" (create, then answer too late), "400"
    retry_after: float = 1.0
    delay: float = 3.0
    only: str | None = None  # a path fragment the fault applies to


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
class _State:
    docs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    limit_hits: list[str] = field(default_factory=list)
    replays: int = 0
    idem: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    window: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    peak_in_flight: int = 0
    tokens: set[str] = field(default_factory=set)
    faults: deque[Fault] = field(default_factory=deque)


class XeroStandIn:
    """Xero on 127.0.0.1: `/connect/token` (client credentials) and `/api.xro/2.0/...`."""

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
        self.tenant, self.client_id, self.client_secret = tenant, client_id, client_secret
        self.calls, self.window_s, self.concurrent = calls, window_s, concurrent
        self.items = set(items)
        self.port = free_port()
        self.state = _State()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        openapi()

    # ----- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        standin = self

        class Handler(_Handler):
            owner = standin

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Down: the port refuses connections (what was created stays)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    def fail(self, kind: str, times: int = 1, **kw: Any) -> None:
        with self.lock:
            for _ in range(times):
                self.state.faults.append(Fault(kind, **kw))

    # ----- what tests read ----------------------------------------------------------------

    def created(self, collection: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state.docs.get(collection, {}).values())

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

    @property
    def requests(self) -> list[Recorded]:
        with self.lock:
            return list(self.state.requests)


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


class _Handler(BaseHTTPRequestHandler):
    owner: XeroStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    counted = False

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> bytes:
        data = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        if self.counted:  # the call is over for the limit once its answer leaves
            self.counted = False
            with self.owner.lock:
                self.owner.state.in_flight -= 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        return data

    def _handle(self, method: str) -> None:
        o = self.owner
        st = o.state
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if parsed.path == "/connect/token":
            self._token(raw)
            return
        try:
            body = json.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            body = None
        rec = Recorded(method, parsed.path, query, headers, body, 0)
        with o.lock:
            st.requests.append(rec)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in st.tokens:
            rec.status = 401
            self._send(401, {"Title": "Unauthorized", "Status": 401, "Detail": "TokenInvalid"})
            return
        if headers.get("xero-tenant-id") != o.tenant:
            rec.status = 403
            self._send(403, {"Title": "Forbidden", "Detail": "AuthenticationUnsuccessful"})
            return
        # Rate limits first, as Xero does: a refused call does not count.
        with o.lock:
            now = time.monotonic()
            while st.window and st.window[0] <= now - o.window_s:
                st.window.popleft()
            problem = ""
            if st.in_flight >= o.concurrent:
                problem, after = "concurrent", 1
            elif len(st.window) >= o.calls:
                problem, after = "minute", math.ceil(st.window[0] + o.window_s - now)
            if problem:
                st.limit_hits.append(problem)
            else:
                st.window.append(now)
                st.in_flight += 1
                self.counted = True
                st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            fault = None
            if (
                not problem
                and st.faults
                and (st.faults[0].only is None or st.faults[0].only in parsed.path)
            ):
                fault = st.faults.popleft()
        if problem:
            rec.status = 429
            rec.problem = f"limit:{problem}"
            self._send(
                429,
                {"Message": "rate limit"},
                {"Retry-After": str(max(after, 1)), "X-Rate-Limit-Problem": problem},
            )
            return
        try:
            self._api(method, parsed.path, query, headers, raw, body, rec, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if self.counted:
                self.counted = False
                with o.lock:
                    st.in_flight -= 1

    def _token(self, raw: bytes) -> None:
        o = self.owner
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        if form.get("grant_type") != "client_credentials" or (
            form.get("client_id"),
            form.get("client_secret"),
        ) != (o.client_id, o.client_secret):
            self._send(400, {"error": "invalid_client"})
            return
        token = uuid.uuid4().hex
        with o.lock:
            o.state.tokens.add(token)
        self._send(
            200,
            {
                "access_token": token,
                "expires_in": 1800,
                "token_type": "Bearer",
                "scope": "accounting.transactions accounting.settings",
            },
        )

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
        body: Any,
        rec: Recorded,
        fault: Fault | None,
    ) -> None:
        o = self.owner
        st = o.state
        if fault is not None and fault.kind in ("429", "500", "503"):
            rec.status = int(fault.kind)
            rec.problem = f"injected:{fault.kind}"
            extra = {"Retry-After": f"{fault.retry_after:g}", "X-Rate-Limit-Problem": "minute"}
            self._send(rec.status, {"Message": "injected"}, extra if fault.kind == "429" else {})
            return
        problem = self._validate(method, path, query, headers, raw)
        if problem:
            with o.lock:
                st.violations.append(f"{method} {path}: {problem}")
            rec.status = 400
            rec.problem = "spec"
            self._send(400, _error(f"request does not follow the API spec: {problem}"))
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
                self._send(status, data)
                return
        if fault is not None and fault.kind == "400":
            rec.status = 400
            rec.problem = "injected:400"
            self._send(400, _error("injected validation error"))
            return
        status, answer = self._route(method, path, query, body)
        rec.status = status
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.delay)  # created; the answer comes after the client gave up
        data = json.dumps(answer, default=str).encode()
        if method in ("PUT", "POST") and key and status in (200, 400):
            with o.lock:
                st.idem[key] = (status, data, "")
        self._send(status, data)

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
