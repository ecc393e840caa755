"""The daemon (``pbx-sla run``): AMI collectors, the features' servers and the durable writer, until SIGTERM.

Start-up never waits for PostgreSQL: the catalogue comes from its cache file when the database is down,
records queue (then spool to disk) and migrations run as soon as the database answers. SIGTERM/SIGINT:
collectors stop (their sessions are recorded as lost at the stop time), feature tasks are cancelled, the
writer flushes to PostgreSQL or to the spool, exit 0. A status snapshot is written atomically to
``<data_dir>/status.json`` every ``STATUS_INTERVAL`` seconds for ``pbx-sla status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from pbx_sla import __version__, fd_limit, features
from pbx_sla.ami.collector import Collector, Router, ServerStatus, iso
from pbx_sla.ami.sessions import AmiSessionSink, close_dangling
from pbx_sla.config import Settings
from pbx_sla.errors import ConfigError
from pbx_sla.features import ServiceContext
from pbx_sla.input_warnings import INPUT_WARNINGS
from pbx_sla.log import get_logger
from pbx_sla.pipeline import Record
from pbx_sla.private_files import ensure_private_dir, tighten_data_dir, write_private_text
from pbx_sla.store import migrate
from pbx_sla.store.pool import connect, resolve_dsn
from pbx_sla.store.writer import DurableWriter

if TYPE_CHECKING:
    from pbx_sla.web.metrics import DatabaseFigures
    from pbx_sla.web.server import HttpServer

log = get_logger(__name__)

STATUS_FILE = "status.json"
STATUS_INTERVAL = 2.0
SPOOL_DIR = "spool"
STOP_TIMEOUT = 15.0
#: the metrics refresh's connection: like the dashboard's, without JIT (it compiled the report queries for
#: longer than they run) and planning each statement for its parameters, not with a generic plan after five
#: runs (pbx_sla.web.dashboard.SERVER_SETTINGS)
FIGURES_SETTINGS = {"jit": "off", "plan_cache_mode": "force_custom_plan", "application_name": "pbx-sla metrics"}


def load_features(names: Sequence[str] | None = None) -> list[ModuleType]:
    """Import the feature modules (``features.FEATURES``; a dotted name is imported as written)."""
    modules = []
    for name in features.FEATURES if names is None else names:
        module_name = name if "." in name else f"pbx_sla.features.{name}"
        module = importlib.import_module(module_name)
        for required in ("event_handlers", "sinks"):
            if not callable(getattr(module, required, None)):
                raise ConfigError(f"feature module {module_name} has no {required}(ctx)")
        modules.append(module)
    return modules


#: status.json is padded with spaces to a multiple of this (with this much room at least), so that it can
#: be rewritten in place when the disk is full
STATUS_BLOCK = 4096


def write_status(path: Path, snapshot: dict[str, Any]) -> None:
    """Atomic replace: a reader sees the previous snapshot or this one, never half of one.

    The disk full (no block for a new file): the existing file is overwritten in place instead - it is
    padded with spaces (valid JSON whitespace) to whole blocks with room to spare, so this needs no new
    block - and ``status`` keeps showing a live daemon rather than a stale snapshot.
    """
    text = json.dumps(snapshot, indent=2, sort_keys=True) + "\n"
    size = -(-(len(text.encode("utf-8")) + STATUS_BLOCK // 4) // STATUS_BLOCK) * STATUS_BLOCK
    text += " " * (size - len(text.encode("utf-8")) - 1) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_private_text(tmp, text)
        os.replace(tmp, path)
        return
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written temporary file behind
        error = exc
    try:
        old = path.stat().st_size
        data = text.rstrip().encode("utf-8") + b"\n"
        if len(data) >= old:
            raise error
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, data + b" " * (old - len(data) - 1) + b"\n", 0)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise error from None


class Daemon:
    """The wiring of one ``pbx-sla run``; :func:`run_daemon` is its entry point."""

    def __init__(self, settings: Settings, *, writer_options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.writer_options = writer_options or {}
        self.started_at = time.time()
        self.stop_event = asyncio.Event()
        self.collectors: list[Collector] = []
        self.writer: DurableWriter | None = None
        self.status_path = settings.data_dir / STATUS_FILE
        self.state = "starting"
        #: feature name → its ``status(ctx)`` (optional part of the feature contract)
        self.feature_status: dict[str, Callable[[], dict[str, Any]]] = {}
        self.database_figures: DatabaseFigures | None = None
        self.http: HttpServer | None = None

    # -- what /metrics reads (web.metrics.DaemonState) ---------------------------------------------
    @property
    def server_statuses(self) -> list[ServerStatus]:
        return [c.status for c in self.collectors]

    @property
    def writer_figures(self) -> dict[str, Any]:
        writer = self.writer
        backlog = writer.backlog if writer else None
        return {
            "memory": backlog.memory if backlog else 0,
            "spooled": backlog.spooled if backlog else 0,
            "written": writer.written if writer else 0,
            "dead_letters": writer.dead_letters if writer else 0,
            "database": {None: "unknown", True: "up", False: "down"}[writer.db_ok if writer else None],
            "last_error": writer.last_error if writer else None,
            # ok | spooling | full: max_memory in memory, spool unwritable, AMI reading paused
            "state": writer.state if writer else "ok",
            "spool_error": writer.spool_error if writer else None,
            "backpressure_episodes": writer.backpressure_episodes if writer else 0,
            "torn_segments_repaired": writer.torn_repaired if writer else 0,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "state": self.state,
            "started_at": iso(self.started_at),
            "updated_at": iso(time.time()),
            "status_interval": STATUS_INTERVAL,
            "data_dir": str(self.settings.data_dir),
            "servers": [c.status.as_dict() for c in self.collectors],
            "features": {name: report() for name, report in self.feature_status.items()},
            "input_warnings": INPUT_WARNINGS.snapshot(),
            "writer": self.writer_figures,
            "http": None if self.http is None else f"{self.http.host}:{self.http.port}",
        }

    def _write_status(self) -> None:
        try:
            write_status(self.status_path, self.snapshot())
        except OSError:
            log.exception("cannot write the status file", path=str(self.status_path))

    async def _status_loop(self) -> None:
        while True:
            INPUT_WARNINGS.flush(log)
            self._write_status()
            await asyncio.sleep(STATUS_INTERVAL)

    async def _figures_loop(self, dsn: str) -> None:
        """Refresh the database-derived metrics every ``[http] refresh_seconds`` (errors logged, retried)."""
        from pbx_sla.web.metrics import database_figures

        pool: asyncpg.Pool | None = None
        failing = False
        try:
            while True:
                try:
                    if pool is None:
                        pool = await asyncpg.create_pool(
                            dsn, min_size=0, max_size=1, timeout=10, server_settings=FIGURES_SETTINGS
                        )
                    async with pool.acquire(timeout=10) as proxy:
                        figures = await database_figures(cast(asyncpg.Connection, proxy))
                    figures.exposition  # noqa: B018  (rendered here, in the background, not by a scrape)
                    self.database_figures = figures
                    if failing:
                        log.info("metrics figures refreshed again")
                    failing = False
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    if not failing:
                        log.warning("cannot refresh the metrics figures", error=f"{type(exc).__name__}: {exc}")
                    failing = True
                await asyncio.sleep(self.settings.http.refresh_seconds)
        finally:
            if pool is not None:
                await pool.close()

    async def _start_http(self, dsn: str, ctx: ServiceContext) -> list[asyncio.Task[Any]]:
        """``/metrics`` and the dashboard on ``[http] listen``. A bind failure is logged, not fatal: the
        collection matters more than its view."""
        listen = self.settings.http.listen
        if listen is None:
            return []
        from pbx_sla.web.dashboard import Dashboard
        from pbx_sla.web.metrics import DaemonMetrics
        from pbx_sla.web.server import HttpServer, build_app

        metrics = DaemonMetrics(self)
        ctx.agi_metrics = metrics.agi
        dashboard = Dashboard(dsn)
        server = HttpServer(build_app(self.settings.http, metrics=metrics.render, dashboard=dashboard.install), *listen)
        try:
            await server.start()
        except OSError as exc:
            log.error("HTTP server cannot listen; no /metrics nor dashboard", listen=f"{listen[0]}:{listen[1]}",
                      error=str(exc))  # fmt: skip
            await dashboard.close()
            return [asyncio.create_task(self._figures_loop(dsn), name="metrics-figures")]
        self.http = server

        async def serve() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                await server.close()
                await dashboard.close()

        return [
            asyncio.create_task(serve(), name="http"),
            asyncio.create_task(self._figures_loop(dsn), name="metrics-figures"),
        ]

    async def run(self) -> int:
        settings = self.settings
        ensure_private_dir(settings.data_dir)
        fd_before, fd_after = fd_limit.raise_soft_limit()
        dsn = await resolve_dsn(settings)
        tightened = tighten_data_dir(settings.data_dir)
        if tightened:
            log.warning(
                "modes of the data directory tightened (only the daemon's user may read its files)",
                changed=[f"{path} {old}->{new}" for path, old, new in tightened[:50]],
                count=len(tightened),
            )
        log.info(
            "pbx-sla daemon starting",
            version=__version__,
            pid=os.getpid(),
            data_dir=str(settings.data_dir),
            database="embedded" if settings.embedded else "configured",
            embedded_pgdata=str(settings.data_dir / "postgres") if settings.embedded else None,
            servers=[f"{s.name}={s.username}@{s.host}:{s.port}" for s in settings.asterisk],
            agi_listen=f"{settings.agi_host}:{settings.agi_port}",
            open_file_limit=fd_after,
            open_file_limit_raised_from=fd_before if fd_after != fd_before else None,
        )
        if not settings.asterisk:
            log.warning("no [[asterisk]] server configured: no AMI collection")

        from pbx_sla.store.catalogue_watch import CatalogueWatch

        servers = [s.name for s in settings.asterisk]

        async def prepare() -> None:
            conn = await connect(dsn, timeout=10)
            try:
                applied = await migrate.upgrade(conn)
                closed = await close_dangling(conn, servers)
            finally:
                await conn.close()
            log.info("database ready", migrations_applied=len(applied), crashed_sessions_closed=closed)

        writer: DurableWriter | None = None

        def submit(record: Record) -> None:
            assert writer is not None
            writer.submit(record)

        # build everything first: a broken feature module stops us before anything runs
        from pbx_sla.store.catalogue_cache import dsn_fingerprint

        dsn_key = dsn_fingerprint(settings.dsn.reveal() if settings.dsn is not None else None)
        catalogue = CatalogueWatch(data_dir=settings.data_dir, dsn_key=dsn_key)
        ctx = ServiceContext(settings=settings, dsn=dsn, submit=submit, catalogue=catalogue)
        try:
            modules = load_features()
            sinks: list[Any] = [AmiSessionSink()]
            for module in modules:
                sinks.extend(module.sinks(ctx))
            options = {"max_memory": settings.max_memory, **self.writer_options}
            writer = self.writer = DurableWriter(dsn, sinks, settings.data_dir / SPOOL_DIR, prepare=prepare, **options)
            ctx.submit = writer.submit
            router = Router([module.event_handlers(ctx) for module in modules], writer.submit)
        except (ImportError, ConfigError, ValueError) as exc:
            log.error("daemon cannot start: a feature module is broken", error=f"{type(exc).__name__}: {exc}")
            return 2
        self.feature_status = {
            module.__name__.rpartition(".")[2]: functools.partial(module.status, ctx)
            for module in modules
            if callable(getattr(module, "status", None))
        }
        hooks = [
            functools.partial(module.on_login, ctx) for module in modules if callable(getattr(module, "on_login", None))
        ]
        self.collectors = [
            Collector(server, router, writer.submit, hooks, congestion=writer) for server in settings.asterisk
        ]

        feature_tasks: list[asyncio.Task[Any]] = []
        collector_tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        status_task = asyncio.create_task(self._status_loop(), name="status")
        exit_code = 0
        try:
            await catalogue.start(dsn)
            writer.start()
            feature_tasks.extend(await self._start_http(dsn, ctx))
            for module in modules:
                start = getattr(module, "start", None)
                if callable(start):
                    feature_tasks.extend(await start(ctx) or ())
            collector_tasks = [asyncio.create_task(c.run(), name=f"collector-{c.server.name}") for c in self.collectors]
            self.state = "running"
            self._write_status()
            log.info("pbx-sla daemon running", features=[m.__name__.rsplit(".", 1)[-1] for m in modules])
            await self._wait(feature_tasks)
        except (ConfigError, OSError) as exc:
            log.error("daemon cannot start", error=str(exc))
            exit_code = 2
        finally:
            self.state = "stopping"
            log.info("pbx-sla daemon stopping")
            for collector in self.collectors:
                collector.stop()
            if collector_tasks:
                _, pending = await asyncio.wait(collector_tasks, timeout=STOP_TIMEOUT)
                for task in pending:
                    task.cancel()
            for task in feature_tasks:
                task.cancel()
            await asyncio.gather(*feature_tasks, return_exceptions=True)
            await writer.close(timeout=STOP_TIMEOUT)
            await catalogue.close()
            status_task.cancel()
            await asyncio.gather(status_task, return_exceptions=True)
            self.state = "stopped"
            self._write_status()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            log.info("pbx-sla daemon stopped", backlog_spooled=writer.backlog.spooled, exit_code=exit_code)
        return exit_code

    async def _wait(self, feature_tasks: list[asyncio.Task[Any]]) -> None:
        """Until SIGTERM; a feature task that dies is logged (the rest of the daemon keeps running)."""
        stop = asyncio.create_task(self.stop_event.wait())
        watched = set(feature_tasks)
        try:
            while True:
                done, _ = await asyncio.wait({stop, *watched}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    return
                for task in done:
                    watched.discard(task)
                    if not task.cancelled() and task.exception() is not None:
                        log.error("feature task failed", task=task.get_name(), error=repr(task.exception()))
        finally:
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop


async def run_daemon(settings: Settings, *, writer_options: dict[str, Any] | None = None) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop."""
    return await Daemon(settings, writer_options=writer_options).run()
