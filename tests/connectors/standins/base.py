# What every accounting stand-in shares: a threaded HTTP server on 127.0.0.1, recorded requests,
# bearer tokens, the per-window and at-once call limits, and failures injected on demand.
from __future__ import annotations

import json
import math
import socket
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


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


@dataclass
class State:
    docs: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    limit_hits: list[str] = field(default_factory=list)
    replays: int = 0
    window: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    peak_in_flight: int = 0
    tokens: set[str] = field(default_factory=set)
    faults: deque[Fault] = field(default_factory=deque)


class StandIn:
    """One service on 127.0.0.1, answered by its `Handler` subclass; `calls` per `window_s`
    seconds and `concurrent` at once, as the real service allows."""

    def __init__(
        self,
        state: State,
        handler: type[Handler],
        *,
        calls: int,
        window_s: float,
        concurrent: int,
    ) -> None:
        self.handler = handler
        self.calls, self.window_s, self.concurrent = calls, window_s, concurrent
        self.port = free_port()
        self.state = state
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        handler = type("Handler", (self.handler,), {"owner": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
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
        """The next `times` calls that pass the limits fail as `kind` (see Fault)."""
        with self.lock:
            for _ in range(times):
                self.state.faults.append(Fault(kind, **kw))

    def created(self, collection: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.state.docs.get(collection, {}).values())

    @property
    def requests(self) -> list[Recorded]:
        with self.lock:
            return list(self.state.requests)


class Handler(BaseHTTPRequestHandler):
    """Records each API call, checks its token, applies the limits and injected 429/500/503,
    then hands it to `api`; the token endpoint goes to `token`."""

    owner: StandIn
    protocol_version = "HTTP/1.1"
    content_type = "application/json"
    token_path = ""
    unauthorized: ClassVar[Any] = {}
    throttle_message = "rate limit"
    counted = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # ----- what a service says in its own words -----------------------------------------

    def parse_body(self, raw: bytes, headers: dict[str, str]) -> Any:
        return json.loads(raw) if raw else None

    def refuse(self, headers: dict[str, str]) -> tuple[int, Any] | None:
        """(status, body) for a call that is not let in, else None."""
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.owner.state.tokens:
            return 401, self.unauthorized
        return None

    def service_error(self, message: str) -> Any:
        return {"Message": message}

    def limit_headers(self, problem: str) -> dict[str, str]:
        return {}

    def token(self, raw: bytes, headers: dict[str, str]) -> None:
        raise NotImplementedError

    def api(self, rec: Recorded, raw: bytes, fault: Fault | None) -> None:
        """Answer a call that passed the checks (`rec.status` and `rec.problem` say how)."""
        raise NotImplementedError

    # ----- the plumbing ------------------------------------------------------------------

    def send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> bytes:
        data = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        self._release()  # the call is over for the limit once its answer leaves
        self.send_response(status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        return data

    def _handle(self, method: str) -> None:
        o, st = self.owner, self.owner.state
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if parsed.path == self.token_path:
            self.token(raw, headers)
            return
        try:
            body = self.parse_body(raw, headers)
        except ValueError:
            body = None
        rec = Recorded(method, parsed.path, query, headers, body, 0)
        with o.lock:
            st.requests.append(rec)
        refused = self.refuse(headers)
        if refused is not None:
            rec.status = refused[0]
            self.send(*refused)
            return
        problem, after, fault = self._admit(parsed.path)
        if problem:
            rec.status, rec.problem = 429, f"limit:{problem}"
            headers_out = {"Retry-After": str(max(after, 1)), **self.limit_headers(problem)}
            self.send(429, self.service_error(self.throttle_message), headers_out)
            return
        try:
            if fault is not None and fault.kind in ("429", "500", "503"):
                rec.status, rec.problem = int(fault.kind), f"injected:{fault.kind}"
                extra = {"Retry-After": f"{fault.retry_after:g}", **self.limit_headers("minute")}
                self.send(
                    rec.status, self.service_error("injected"), extra if fault.kind == "429" else {}
                )
                return
            self.api(rec, raw, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._release()

    def _admit(self, path: str) -> tuple[str, int, Fault | None]:
        """Limits first, as the real services do: a refused call does not count."""
        o, st = self.owner, self.owner.state
        with o.lock:
            now = time.monotonic()
            while st.window and st.window[0] <= now - o.window_s:
                st.window.popleft()
            problem, after = "", 0
            if st.in_flight >= o.concurrent:
                problem, after = "concurrent", 1
            elif len(st.window) >= o.calls:
                problem, after = "minute", math.ceil(st.window[0] + o.window_s - now)
            if problem:
                st.limit_hits.append(problem)
                return problem, after, None
            st.window.append(now)
            st.in_flight += 1
            self.counted = True
            st.peak_in_flight = max(st.peak_in_flight, st.in_flight)
            if st.faults and (st.faults[0].only is None or st.faults[0].only in path):
                return "", 0, st.faults.popleft()
            return "", 0, None

    def _release(self) -> None:
        if self.counted:
            self.counted = False
            with self.owner.lock:
                self.owner.state.in_flight -= 1
