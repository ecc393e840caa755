"""Listening sockets with our own accept loop, so running out of file descriptors costs a pause, not a flood.

asyncio's own accept loop, on ``EMFILE``, logs a traceback and schedules a retry *for every pending
connection of the burst* (up to the listen backlog), so 1,100 held connections produced ~6,500 tracebacks
a second and starved everything else. Here, on ``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM`` the listening
socket stops being watched for an exponentially growing pause (:data:`PAUSE_MIN` .. :data:`PAUSE_MAX`
seconds); the pending connections wait in the kernel's backlog and are accepted when descriptors are
free again. One log line at most per :data:`LOG_EVERY` seconds says how often it happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Callable
from typing import Any

from pbx_sla.log import get_logger

log = get_logger(__name__)

RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
PAUSE_MIN = 0.05
PAUSE_MAX = 1.0
LOG_EVERY = 60.0
#: connections accepted per readiness callback before letting other work run
BURST = 64


class RateLimitedLog:
    """At most one line per ``every`` seconds per key; the lines say how many were folded into them."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._folded: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: stay silent; else log now, saying how many lines were folded since the last one."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._folded[key] = self._folded.get(key, 0) + 1
            return None
        if len(self._last) > 10_000:  # keys can come from peers: bound them
            self._last.clear()
        self._last[key] = now
        return self._folded.pop(key, 0)


class Listener:
    """Bound, listening, non-blocking sockets; ``accept(conn, address)`` is called for each connection.

    Has the parts of :class:`asyncio.Server` the daemon and the tests use: ``sockets``, ``close``,
    ``wait_closed``, ``serve_forever``.
    """

    def __init__(self, sockets: list[socket.socket], accept: Callable[[socket.socket, Any], None]) -> None:
        self.sockets = sockets
        self._accept = accept
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._pause = PAUSE_MIN
        self._paused: dict[int, asyncio.TimerHandle] = {}
        self._log = RateLimitedLog()
        #: accept() calls that failed for lack of descriptors or memory
        self.resource_errors = 0

    @classmethod
    async def bind(cls, host: str, port: int, backlog: int, accept: Callable[[socket.socket, Any], None]) -> Listener:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        listener = cls(sockets, accept)
        for sock in sockets:
            listener._watch(sock)
        return listener

    def _watch(self, sock: socket.socket) -> None:
        self._paused.pop(sock.fileno(), None)
        if not self._closed.done():
            self._loop.add_reader(sock.fileno(), self._ready, sock)

    def _ready(self, sock: socket.socket) -> None:
        for _ in range(BURST):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in RESOURCE_ERRORS:
                    self._back_off(sock, exc)
                elif (folded := self._log.allow(f"accept-{exc.errno}")) is not None:
                    log.warning("FastAGI accept failed", error=str(exc), similar_since_last_line=folded)
                return
            self._pause = PAUSE_MIN
            self._accept(conn, address)

    def _back_off(self, sock: socket.socket, exc: OSError) -> None:
        self.resource_errors += 1
        fd = sock.fileno()
        self._loop.remove_reader(fd)
        delay, self._pause = self._pause, min(self._pause * 2, PAUSE_MAX)
        self._paused[fd] = self._loop.call_later(delay, self._watch, sock)
        if (folded := self._log.allow("resources")) is not None:
            log.error(
                "FastAGI cannot accept connections: out of file descriptors or memory; pausing accept "
                "(lower [agi] max_sessions or raise the open-file limit)",
                error=exc.strerror,
                pause_seconds=delay,
                similar_since_last_line=folded,
                total=self.resource_errors,
            )

    def close(self) -> None:
        if self._closed.done():
            return
        for handle in self._paused.values():
            handle.cancel()
        self._paused.clear()
        for sock in self.sockets:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        try:
            await asyncio.shield(self._closed)
        finally:
            self.close()
