# purpose: a TCP proxy on 127.0.0.1 that forwards, cuts, stalls and resumes, to fake a bad network.
"""`TcpProxy` sits between a client and a server (here: the terminal and the broker).

- `forward` (the start state): bytes flow both ways.
- `cut()`: every open connection is reset (both sides), and new ones are accepted and reset
  at once, like a link that is down: the client sees ECONNRESET or a refused handshake.
- `drop()`: the open connections are reset once; new ones are forwarded.
- `stall()`: connections stay open but nothing moves in either direction, and a new
  connection is accepted but never reaches the server, like a link that black-holes
  packets: only keepalives and timeouts notice.
- `resume()`: back to forwarding; what was held back during a stall flows on.

The proxy runs an asyncio loop on a thread of its own; every method is safe to call from
the test's thread and returns once the change is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Mode = Literal["forward", "cut", "stall"]
_CHUNK = 65536


@dataclass(eq=False)
class _Link:
    """One client connection and, once the server is dialled, its server side."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def reset(self) -> None:
        for writer in (self.client, self.server):
            if writer is not None:
                _abort(writer)
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    """A fault-injecting TCP proxy from `port` (free, 127.0.0.1) to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.mode: Mode = "forward"
        self.accepted = 0  # connections accepted so far
        self.bytes_up = 0  # client -> server, forwarded
        self.bytes_down = 0  # server -> client, forwarded
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )

    # -- control, from any thread --------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        """Reset every connection, stop listening and end the proxy's thread."""
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def cut(self) -> None:
        self._call(self._set("cut", reset=True))

    def drop(self) -> None:
        self._call(self._set("forward", reset=True))

    def stall(self) -> None:
        self._call(self._set("stall", reset=False))

    def resume(self) -> None:
        self._call(self._set("forward", reset=False))

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._links)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the loop's side -----------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.reset()
        self._links.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _set(self, mode: Mode, *, reset: bool) -> None:
        assert self._flowing is not None
        self.mode = mode
        if reset:
            for link in list(self._links):
                link.reset()
            self._links.clear()
        if mode == "stall":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.accepted += 1
        _nodelay(writer)
        if self.mode == "cut":
            _abort(writer)
            return
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._flowing.wait()  # a stalled link accepts but never dials the server
            if link not in self._links:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                link.reset()
                return
            _nodelay(up_writer)
            link.server = up_writer
            if link not in self._links:  # reset while dialling
                link.reset()
                return
            up = asyncio.ensure_future(self._pipe(reader, up_writer, link, upstream=True))
            down = asyncio.ensure_future(self._pipe(up_reader, writer, link, upstream=False))
            link.tasks = [up, down]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if link in self._links:
                self._links.discard(link)
                link.reset()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        upstream: bool,
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()  # read just before a stall: hold it back
                writer.write(data)
                await writer.drain()
                if upstream:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            # One side ended: close the other cleanly, so the peer sees the end as it happened.
            with contextlib.suppress(Exception):
                writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dead link or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
