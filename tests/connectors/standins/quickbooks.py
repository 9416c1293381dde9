# QuickBooks Online on 127.0.0.1: rotating tokens, requestid, throttling, failures on demand.
from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from .base import Fault, Handler, Recorded, StandIn, State

ACCOUNTS = {
    "35": "Bank",
    "4": "Other Current Asset",
    "36": "Other Current Asset",
    "37": "Other Current Asset",
    "70": "Expense",
    "71": "Expense",
}
TAX_CODES = {"5", "6", "7"}
ITEMS = {"1"}
DEPARTMENTS = {"1", "2"}
ENTITIES = ("SalesReceipt", "RefundReceipt", "Deposit", "JournalEntry")


def _fault(message: str, code: str = "2020", kind: str = "ValidationFault") -> dict[str, Any]:
    return {
        "Fault": {"Error": [{"Message": message, "Detail": message, "code": code}], "type": kind},
        "time": "2026-11-27T00:00:00.000-08:00",
    }


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@dataclass
class _State(State):
    seen: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    refresh: str = "refresh-0"
    rotations: int = 0
    next_id: int = 100


class QuickBooksStandIn(StandIn):
    """QuickBooks Online on 127.0.0.1: `/oauth2/v1/tokens/bearer` (refresh tokens that rotate)
    and `/v3/company/{realm}/...`."""

    state: _State

    def __init__(
        self,
        *,
        realm: str = "9130",
        client_id: str = "qb-app",
        client_secret: str = "qb",
        calls: int = 500,
        window_s: float = 60.0,
        concurrent: int = 10,
    ) -> None:
        super().__init__(_State(), _Handler, calls=calls, window_s=window_s, concurrent=concurrent)
        self.realm, self.client_id, self.client_secret = realm, client_id, client_secret


class _Handler(Handler):
    owner: QuickBooksStandIn
    token_path = "/oauth2/v1/tokens/bearer"
    unauthorized: ClassVar[Any] = _fault("AuthenticationFailed", "100", "AUTHENTICATION")
    throttle_message = "message=ThrottleExceeded; statusCode=429"

    def parse_body(self, raw: bytes, headers: dict[str, str]) -> Any:
        return json.loads(raw) if raw and "json" in headers.get("content-type", "") else raw

    def service_error(self, message: str) -> Any:
        return _fault(message, "3001", "SERVICE")

    def token(self, raw: bytes, headers: dict[str, str]) -> None:
        o, st = self.owner, self.owner.state
        form = dict(urllib.parse.parse_qsl(raw.decode()))
        expected = base64.b64encode(f"{o.client_id}:{o.client_secret}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            self.send(401, {"error": "invalid_client"})
            return
        with o.lock:
            if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != st.refresh:
                ok = False
            else:
                ok = True
                st.rotations += 1
                st.refresh = f"refresh-{st.rotations}"
                access = f"access-{st.rotations}-{time.monotonic_ns()}"
                st.tokens.add(access)
        if not ok:
            self.send(400, {"error": "invalid_grant"})
            return
        self.send(
            200,
            {
                "access_token": access,
                "refresh_token": st.refresh,
                "expires_in": 3600,
                "x_refresh_token_expires_in": 8726400,
                "token_type": "bearer",
            },
        )

    def api(self, rec: Recorded, raw: bytes, fault: Fault | None) -> None:
        o, st, path, query, body = self.owner, self.owner.state, rec.path, rec.query, rec.body
        m = re.match(rf"^/v3/company/{o.realm}/(\w+)$", path)
        if not m:
            rec.status = 404
            self.send(404, _fault("no such resource", "610"))
            return
        entity = m.group(1)
        if entity == "query":
            rec.status = 200
            self.send(200, self._query(body.decode() if isinstance(body, bytes) else ""))
            return
        name = next((e for e in ENTITIES if e.lower() == entity), None)
        if name is None:
            rec.status = 400
            self.send(400, _fault(f"unsupported entity {entity}"))
            return
        request_id = query.get("requestid")
        if not request_id or len(request_id) > 50:
            with o.lock:
                st.violations.append(f"{name}: requestid missing or longer than 50: {request_id!r}")
        elif request_id in st.seen:
            with o.lock:
                st.replays += 1
            status, data = st.seen[request_id]
            rec.status, rec.problem = status, "replay"
            self.send(status, data)
            return
        if query.get("minorversion") is None:
            with o.lock:
                st.violations.append(f"{name}: no minorversion")
        problem = self._check(name, body if isinstance(body, dict) else {})
        if problem:
            status, answer = 400, _fault(problem)
        else:
            with o.lock:
                st.next_id += 1
                doc = dict(body, Id=str(st.next_id), SyncToken="0")
                st.docs.setdefault(name, {})[doc["Id"]] = doc
            status, answer = 200, {name: doc, "time": "2026-11-27T00:00:00.000-08:00"}
        rec.status = status
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.delay)
        data = json.dumps(answer, default=str).encode()
        if request_id:
            with o.lock:
                st.seen[request_id] = (status, data)
        self.send(status, data)

    def _query(self, text: str) -> dict[str, Any]:
        m = re.match(r"^select \w+ from (\w+) where (\w+) = '([^']*)'$", text.strip(), re.I)
        if not m:
            return _fault(f"cannot parse query {text!r}", "4000")
        entity, fieldname, value = m.groups()
        if entity in ("Account", "TaxCode", "Item"):
            known = {"Account": ACCOUNTS, "TaxCode": TAX_CODES, "Item": ITEMS}[entity]
            found = [{"Id": value}] if fieldname == "Id" and value in known else []
        else:
            with self.owner.lock:
                docs = list(self.owner.state.docs.get(entity, {}).values())
            found = [d for d in docs if str(d.get(fieldname)) == value]
        return {"QueryResponse": {entity: found} if found else {}, "time": "now"}

    def _check(self, name: str, doc: dict[str, Any]) -> str:
        """The required fields and references of each document (Intuit's API reference)."""
        lines = doc.get("Line")
        if not isinstance(lines, list) or not lines:
            return f"{name}: Line is required"
        if len(str(doc.get("DocNumber", ""))) > 21:
            return "DocNumber: at most 21 characters"
        if "TxnDate" in doc and not re.match(r"^\d{4}-\d{2}-\d{2}$", str(doc["TxnDate"])):
            return "TxnDate: YYYY-MM-DD"
        dept = (doc.get("DepartmentRef") or {}).get("value")
        if dept is not None and dept not in DEPARTMENTS:
            return f"Invalid Reference Id: Department {dept}"
        for line in lines:
            if _amount(line.get("Amount")) is None:
                return "Line.Amount: a number is required"
        if name in ("SalesReceipt", "RefundReceipt", "Deposit"):
            acct = (doc.get("DepositToAccountRef") or {}).get("value")
            if acct not in ACCOUNTS:
                return f"Invalid Reference Id: Account {acct}"
            if name == "Deposit" and ACCOUNTS[acct] != "Bank":
                return "Deposit: DepositToAccountRef must be a bank account"
        if name in ("SalesReceipt", "RefundReceipt"):
            for line in lines:
                if line.get("DetailType") != "SalesItemLineDetail":
                    return "Line.DetailType: SalesItemLineDetail expected"
                detail = line.get("SalesItemLineDetail") or {}
                if (detail.get("ItemRef") or {}).get("value") not in ITEMS:
                    return "Invalid Reference Id: Item"
                if (detail.get("TaxCodeRef") or {}).get("value") not in TAX_CODES:
                    return "Invalid Reference Id: TaxCode"
        if name == "Deposit":
            for line in lines:
                ref = ((line.get("DepositLineDetail") or {}).get("AccountRef") or {}).get("value")
                if ref not in ACCOUNTS:
                    return f"Invalid Reference Id: Account {ref}"
        if name == "JournalEntry":
            debit = credit = Decimal(0)
            for line in lines:
                detail = line.get("JournalEntryLineDetail") or {}
                if (detail.get("AccountRef") or {}).get("value") not in ACCOUNTS:
                    return "Invalid Reference Id: Account"
                amount = _amount(line.get("Amount")) or Decimal(0)
                if detail.get("PostingType") == "Debit":
                    debit += amount
                elif detail.get("PostingType") == "Credit":
                    credit += amount
                else:
                    return "PostingType: Debit or Credit"
            if debit != credit:
                return "Transaction must be balanced: debits and credits differ"
        return ""
