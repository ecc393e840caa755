"""Per-server AMI collector: connect, log in, resync, route events, record sessions, reconnect with backoff.

Each login opens an *AMI session*, stored as an ``ami_session`` record (table ``ami_sessions``,
sql/0010_ami_trunks.sql). Events sent while we were not connected are lost for good, so trunk state is
only *known* inside ``[resynced_at, lost_at)`` of a session: features poll current state in their
``on_login`` hook and ``resynced_at`` is stamped when every hook has returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pbx_sla.ami.connection import AmiActions, AmiManager, AuthenticationError, now_stamp
from pbx_sla.config import AsteriskServer
from pbx_sla.input_warnings import warn_input
from pbx_sla.log import get_logger
from pbx_sla.pipeline import EventHandler, MessageHandler, Record

log = get_logger(__name__)

SESSION_KIND = "ami_session"
USER_EVENT = "UserEvent"

#: ``async def on_login(server_name, ami) -> Iterable[Record]`` (the feature's hook with ctx bound)
LoginHook = Callable[[str, AmiActions], Awaitable[Iterable[Record]]]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class Router:
    """Event name → the features' handlers; ``"*"`` handlers see every event.

    Per event: one dict lookup (the handler tuple per name is cached), then the handlers. A handler that
    raises is logged with the event name and skipped; the other handlers and events go on.

    :meth:`message_handler`: an event's only handler (no ``"*"`` handler either) may read the raw message
    itself (its ``message`` attribute, :data:`~pbx_sla.pipeline.MessageHandler`): the collector offers it the
    message before any dict is built, and routes the message as usual when it declines.
    """

    def __init__(self, tables: Sequence[Mapping[str, EventHandler]], submit: Callable[[Record], None]) -> None:
        self._named: dict[str, list[EventHandler]] = {}
        self._star: list[EventHandler] = []
        for table in tables:
            for name, handler in table.items():
                if name == "*":
                    self._star.append(handler)
                else:
                    self._named.setdefault(name, []).append(handler)
        self._cache: dict[str, tuple[EventHandler, ...]] = {}
        self._submit = submit
        self.errors = 0

    def message_handler(self, name: str) -> MessageHandler | None:
        """The raw-message reader of ``name``'s only handler, None when it has none or is not the only one."""
        handlers = self._named.get(name, [])
        if len(handlers) != 1 or self._star:
            return None
        found = getattr(handlers[0], "message", None)
        return found if callable(found) else None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._named)

    def handlers_for(self, name: str) -> tuple[EventHandler, ...]:
        found = self._cache.get(name)
        if found is None:
            found = self._cache[name] = (*self._named.get(name, ()), *self._star)
        return found

    def route(self, server: str, event: Mapping[str, str]) -> None:
        handlers = self._cache.get(event.get("Event", ""))
        if handlers is None:
            handlers = self.handlers_for(event.get("Event", ""))
        if not handlers:
            return
        submit = self._submit
        for handler in handlers:
            try:
                for record in handler(server, event):
                    submit(record)
            except Exception:
                self.errors += 1
                warn_input(
                    log,
                    "handler-error",
                    "event handler failed; event skipped",
                    exception=True,
                    server=server,
                    ami_event=event.get("Event"),
                    handler=getattr(handler, "__qualname__", repr(handler)),
                )


@dataclass
class ServerStatus:
    """What ``status.json`` says about one server."""

    name: str
    host: str
    port: int
    state: str = "connecting"  # connecting | connected | auth-failed | stopped
    connected_since: float | None = None
    last_event_at: float | None = None
    reconnects: int = 0
    logins: int = 0
    login_attempts: int = 0
    events: int = 0
    pauses: int = 0
    #: reading paused until the writer can take records again (see Collector._resume_when_relieved)
    held: bool = False
    last_error: str | None = None
    session_id: str | None = None
    resynced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: events read per event name the features handle (``other`` for the rest: a bounded label set)
    event_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "state": self.state,
            "connected_since": iso(self.connected_since) if self.connected_since else None,
            "last_event_at": iso(self.last_event_at) if self.last_event_at else None,
            "reconnects": self.reconnects,
            "logins": self.logins,
            "login_attempts": self.login_attempts,
            "events": self.events,
            "backpressure_pauses": self.pauses,
            "reading_paused": self.held,
            "session_id": self.session_id,
            "resynced": self.resynced,
            "last_error": self.last_error,
        }


class Congestion(Protocol):
    """What the collector asks the writer for back-pressure (see DurableWriter.congested)."""

    @property
    def congested(self) -> bool: ...

    @property
    def relieved(self) -> bool: ...

    @property
    def full(self) -> bool: ...


class Backoff:
    """Exponential backoff with jitter: ``base`` doubling to ``cap``, each delay scaled by 0.75..1.25."""

    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay: float = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return delay * random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not cryptography

    def reset(self) -> None:
        self.attempt = 0


class Collector:
    """Keeps one AMI session alive for one server until :meth:`stop`."""

    #: a session that lasted this long resets the backoff (a flapping link still backs off)
    STABLE_AFTER = 30.0
    #: longest single pause of reading under back-pressure, seconds
    MAX_PAUSE = 1.0

    def __init__(
        self,
        server: AsteriskServer,
        router: Router,
        submit: Callable[[Record], None],
        login_hooks: Sequence[LoginHook] = (),
        *,
        backoff: Backoff | None = None,
        resync_timeout: float = 120.0,
        congestion: Congestion | None = None,
    ) -> None:
        self.server = server
        self.router = router
        self.submit = submit
        self.login_hooks = tuple(login_hooks)
        self.backoff = backoff or Backoff()
        self.resync_timeout = resync_timeout
        self.status = ServerStatus(server.name, server.host, server.port)
        self._stopping = asyncio.Event()
        self._manager: AmiManager | None = None
        self._session: dict[str, Any] | None = None
        self.congestion = congestion
        self._check_every = 1000 if congestion is not None else 0
        self._until_check = self._check_every
        self._paused = False
        self._routed = router.names
        self._user_message = router.message_handler(USER_EVENT)

    # -- the event path: runs once per AMI event, keep it tiny ------------------------------------
    def _on_event(self, event: dict[str, str]) -> None:
        status = self.status
        status.events += 1
        status.last_event_at = time.time()
        name = event.get("Event", "")
        key = name if name in self._routed else "other"
        counts = status.event_counts
        counts[key] = counts.get(key, 0) + 1
        if "Timestamp" not in event:
            event["Timestamp"] = now_stamp()
        self.router.route(self.server.name, event)
        if self._check_every:
            self._until_check -= 1
            if self._until_check <= 0:
                self._until_check = self._check_every
                if not self._paused and self.congestion is not None and self.congestion.congested:
                    self._pause_reading()

    def _on_user_event_message(self, message: str) -> bool:
        """A raw ``UserEvent`` message offered to its handler's reader (:meth:`Router.message_handler`): True when
        that took it (its records submitted, the event counted as :meth:`_on_event` counts one), False when the
        reader declined (the message is then parsed and routed as usual)."""
        reader = self._user_message
        if reader is None:
            return False
        try:
            records = reader(self.server.name, message)
        except Exception:  # a bug in the reader: the general path reads the message (and names any fault)
            warn_input(log, "handler-error", "raw message reader failed; message parsed instead", exception=True,
                       server=self.server.name, ami_event=USER_EVENT)  # fmt: skip
            return False
        if records is None:
            return False
        status = self.status
        status.events += 1
        status.last_event_at = time.time()
        counts = status.event_counts
        counts[USER_EVENT] = counts.get(USER_EVENT, 0) + 1
        submit = self.submit
        for record in records:
            submit(record)
        if self._check_every:
            self._until_check -= 1
            if self._until_check <= 0:
                self._until_check = self._check_every
                if not self._paused and self.congestion is not None and self.congestion.congested:
                    self._pause_reading()
        return True

    def reading_paused(self) -> bool:
        """Reading is paused for back-pressure (an unanswered Ping then proves nothing about the link)."""
        return self._paused

    def _pause_reading(self) -> None:
        """Back-pressure: stop reading AMI while the writer catches up, at most ``MAX_PAUSE`` at a time
        (a reader that stalls for long makes Asterisk drop it: manager.conf ``writetimeout``)."""
        manager = self._manager
        if manager is None or manager.protocol is None or manager.protocol.closed:
            return
        manager.protocol.transport.pause_reading()
        self._paused = True
        self.status.pauses += 1
        asyncio.get_running_loop().create_task(self._resume_when_relieved(manager))

    async def _resume_when_relieved(self, manager: AmiManager) -> None:
        """Resume after ``MAX_PAUSE`` at most - unless the writer is :attr:`full` (memory at ``max_memory``
        and the spool unwritable): then reading stays paused until it is not, whatever Asterisk does about
        a reader that stalls (it may drop us; the session is then recorded as lost, nothing queued is)."""
        deadline = time.monotonic() + self.MAX_PAUSE
        congestion = self.congestion
        try:
            # polls the writer (it has no event for this); 20 ms is well under the pause limit
            while congestion is not None and not congestion.relieved:
                if congestion.full:
                    if not self.status.held:
                        self.status.held = True
                        log.warning("AMI reading paused: write backlog full (back-pressure)", server=self.server.name)
                elif time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.02)
        finally:
            if self.status.held:
                self.status.held = False
                log.info("AMI reading resumed", server=self.server.name)
            self._paused = False
            protocol = manager.protocol
            if protocol is not None and not protocol.closed:
                protocol.transport.resume_reading()

    # -- sessions ----------------------------------------------------------------------------------
    def _record_session(self, **fields: Any) -> None:
        assert self._session is not None
        self._session.update(fields)
        self.submit(Record(SESSION_KIND, dict(self._session)))

    async def run(self) -> None:
        """Connect/login/resync/collect until :meth:`stop`; never raises for network or login trouble."""
        server, status = self.server, self.status
        while not self._stopping.is_set():
            status.state = "connecting" if status.state != "auth-failed" else status.state
            status.login_attempts += 1
            manager = AmiManager(
                server, self._on_event, self._on_user_event_message if self._user_message is not None else None
            )
            self._manager = manager
            started = time.monotonic()
            try:
                await manager.open()
            except AuthenticationError as exc:
                status.state, status.last_error = "auth-failed", str(exc)
                log.error("AMI login refused; check username and secret", server=server.name, error=str(exc))
            except (OSError, TimeoutError) as exc:
                status.state = "connecting"
                reason = str(exc) or type(exc).__name__  # str(TimeoutError()) is empty
                if isinstance(exc, TimeoutError) or "AMI" in reason:
                    status.last_error = f"{server.host}:{server.port}: {reason}"
                else:
                    status.last_error = f"cannot reach {server.host}:{server.port}: {reason}"
                log.warning("AMI connection failed", server=server.name, error=status.last_error)
            else:
                await self._serve(manager)
                if time.monotonic() - started >= self.STABLE_AFTER:
                    self.backoff.reset()
            finally:
                self._manager = None
            if self._stopping.is_set():
                break
            delay = self.backoff.next()
            log.info("AMI reconnect scheduled", server=server.name, in_seconds=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            status.reconnects += 1
        status.state = "stopped"

    async def _serve(self, manager: AmiManager) -> None:
        server, status = self.server, self.status
        now = time.time()
        status.state, status.connected_since, status.last_error = "connected", now, None
        status.logins += 1
        status.resynced = False
        status.session_id = uuid.uuid4().hex
        self._session = {"server": server.name, "session_id": status.session_id, "login_at": iso(now)}
        self._record_session()
        log.info("AMI connected", server=server.name, host=server.host, port=server.port, session=status.session_id)
        ami = AmiActions(manager, server.action_timeout)
        watchdog = asyncio.create_task(self._watchdog(manager, ami), name=f"ami-ping-{server.name}")
        resync = asyncio.create_task(self._resync(manager, ami), name=f"ami-resync-{server.name}")
        stop = asyncio.create_task(self._stopping.wait())
        try:
            ended: set[asyncio.Future[Any]] = {manager.lost, stop}
            await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watchdog, resync, stop):
                task.cancel()
            await asyncio.gather(watchdog, resync, stop, return_exceptions=True)
            stopping = self._stopping.is_set()
            manager.close()
            lost_at = time.time()
            self._record_session(lost_at=iso(lost_at), lost_reason="stopped" if stopping else "connection-lost")
            status.connected_since = None
            status.resynced = False
            if not stopping:
                status.state = "connecting"
                status.last_error = status.last_error or "connection lost"
                log.warning("AMI connection lost", server=server.name, session=status.session_id)
            self._session = None

    async def _resync(self, manager: AmiManager, ami: AmiActions) -> None:
        """Run every feature's ``on_login``; stamp ``resynced_at`` only if all of them succeeded."""
        server = self.server.name
        ok = True
        for hook in self.login_hooks:
            name = getattr(hook, "__qualname__", repr(hook))
            try:
                records = await asyncio.wait_for(hook(server, ami), self.resync_timeout)
                for record in records:
                    self.submit(record)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, ConnectionError) as exc:
                # the link is not healthy enough to resync: start over with a fresh session
                log.warning("AMI resync failed; reconnecting", server=server, hook=name, error=str(exc))
                self.status.last_error = f"resync failed: {exc}"
                manager.abort()
                return
            except Exception as exc:
                ok = False
                self.status.last_error = f"resync hook {name} failed: {exc}"
                log.exception("AMI resync hook failed; session stays unresynced", server=server, hook=name)
        if ok:
            self.status.resynced = True
            self._record_session(resynced_at=iso(time.time()))
            log.info("AMI resync done", server=server, session=self.status.session_id)

    async def _watchdog(self, manager: AmiManager, ami: AmiActions) -> None:
        """Our own ``Ping`` every ``ping_interval``: no answer in ``action_timeout`` → drop the connection."""
        server = self.server
        while True:
            await asyncio.sleep(server.ping_interval)
            if self._paused:
                continue  # we stopped reading (back-pressure): no answer could arrive, the link is not at fault
            try:
                await ami.send({"Action": "Ping"})
            except TimeoutError:
                if self.reading_paused():
                    continue  # reading was paused meanwhile
                self.status.last_error = f"no answer to Ping within {server.action_timeout:g} s"
                log.warning("AMI ping timed out; dropping the connection", server=server.name)
                manager.abort()
                return
            except ConnectionError:
                return
            except Exception as exc:  # a RemoteError to Ping is odd but proves the link is alive
                log.warning("AMI ping answered with an error", server=server.name, error=str(exc))
            if self._session is not None:
                self._record_session(last_seen_at=iso(time.time()))

    def stop(self) -> None:
        """Ask :meth:`run` to end; the open session is recorded as lost at the stop time."""
        self._stopping.set()
