# The relay's read-only HTTP API: end-of-day reconciliation reports, behind a bearer token.
from __future__ import annotations

import hmac
import logging
import socket
import threading
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tillbox.contract import valid_id

from .config import ConfigError, HttpConfig, RelayConfig
from .reconcile import business_day, for_config, render
from .store import Store

log = logging.getLogger("tillbox.relay.http")
TEXT = "text/plain; charset=utf-8"


class HttpError(Exception):
    """The HTTP API cannot start; the message says what to change."""


def _wants_text(fmt: str | None, accept: str) -> bool:
    if fmt is not None:
        if fmt not in ("json", "text"):
            raise HTTPException(400, f"format={fmt!r}: send format=json or format=text")
        return fmt == "text"
    kinds = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    return "text/plain" in kinds and "application/json" not in kinds


def create_app(config: RelayConfig, store: Store) -> FastAPI:
    """The app; every route needs `Authorization: Bearer <http.token>`."""
    token = config.http.token
    if token is None:
        raise ConfigError("http.token: the HTTP API needs a bearer token")
    expected = f"Bearer {token}".encode()
    reconciler = for_config(config, store.engine)
    app = FastAPI(
        title="Tillbox relay",
        summary="End-of-day reconciliation reports (docs/accounting.md)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(HTTPException)
    async def _error(_request: Any, err: HTTPException) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if err.status_code == 401 else None
        return JSONResponse({"error": err.detail}, err.status_code, headers=headers)

    def authorize(authorization: str) -> None:
        if not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(
                401, "send the relay's http.token as `Authorization: Bearer <token>`"
            )

    @app.get("/v1/stores/{store_id}/reconciliation/{day}")
    def reconciliation(
        store_id: str,
        day: str,
        authorization: Annotated[str, Header()] = "",
        accept: Annotated[str, Header()] = "",
        fmt: Annotated[str | None, Query(alias="format")] = None,
    ) -> Response:
        """The report of one store's business day, as computed now from the central store."""
        authorize(authorization)
        text = _wants_text(fmt, accept)
        if not valid_id(store_id):
            raise HTTPException(400, f"store {store_id!r}: 1-32 letters, digits, '-' or '_'")
        try:
            wanted = business_day(day)
        except ValueError as err:
            raise HTTPException(400, str(err)) from None
        if not reconciler.knows(store_id):
            raise HTTPException(
                404,
                f"no terminal of store {store_id!r} has sent events to this relay; "
                "send a store id as the terminals have it (`store_id` in terminal.toml)",
            )
        rep = reconciler.report(store_id, wanted)
        if text:
            return PlainTextResponse(render(rep), media_type=TEXT)
        return JSONResponse(rep.to_json())

    return app


class HttpServer:
    """uvicorn on a thread of its own; the socket is bound before start() returns, so a port
    in use stops the relay's start with a message rather than a dead thread."""

    def __init__(self, config: RelayConfig, store: Store) -> None:
        self.settings: HttpConfig = config.http
        app = create_app(config, store)
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.settings.port}"

    def start(self) -> None:
        host, port = self.settings.host, self.settings.port
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(info[4])
            # Listening now, so a client that read the log line below is queued by the kernel
            # until uvicorn's thread takes over the socket, not refused.
            sock.listen(2048)
        except OSError as err:
            raise HttpError(
                f"http: cannot listen on {host}:{port} ({err}); pick another http.port "
                "or stop what holds it"
            ) from err
        self._socket = sock
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="relay-http", daemon=True
        )
        self._thread.start()
        log.info("reconciliation API on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
