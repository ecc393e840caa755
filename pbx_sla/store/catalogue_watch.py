"""The daemon's catalogue holder: the last good catalogue, kept current by LISTEN/NOTIFY, surviving
database outages and daemon restarts.

:meth:`CatalogueWatch.start` first reads ``<data_dir>/catalogue-cache.json`` (so a daemon started while
PostgreSQL is down still routes with the last catalogue; only a cache naming this database counts, see
:mod:`pbx_sla.store.catalogue_cache`), then connects on a dedicated connection (LISTEN
does not survive a pool), loads the latest revision and listens on ``pbx_sla_catalogue``. A notification
or a reconnect reloads; a lost connection is retried with exponential backoff while :attr:`current` keeps
the last good catalogue. Every newly loaded revision is written to the cache file atomically. A reachable
database that holds no catalogue means ``fallback``: the catalogue held is dropped and the cache removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from pbx_sla.domain.catalogue import Catalogue
from pbx_sla.domain.catalogue_document import from_document
from pbx_sla.log import get_logger
from pbx_sla.store import catalogue_cache
from pbx_sla.store.catalogue import CHANNEL, latest_revision
from pbx_sla.store.catalogue_cache import CACHE_NAME

log = get_logger(__name__)

__all__ = ["CACHE_NAME", "CatalogueWatch"]


class CatalogueWatch:
    """Implements :class:`pbx_sla.pipeline.CatalogueSource`; ``current`` never waits on PostgreSQL."""

    def __init__(
        self,
        data_dir: Path | None,
        *,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        health_interval: float = 5.0,
        connect_timeout: float = 5.0,
        dsn_key: str | None = None,
    ) -> None:
        self.cache_file = Path(data_dir) / CACHE_NAME if data_dir is not None else None
        #: the DSN fingerprint caches are bound to (:func:`catalogue_cache.dsn_fingerprint`); None: the DSN's
        self.dsn_key = dsn_key
        self._identity: dict[str, str | None] | None = None
        self._cached: dict[str, Any] | None = None
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.health_interval, self.connect_timeout = health_interval, connect_timeout
        self._current: Catalogue | None = None
        self._revision: int | None = None
        self._sha256: str | None = None
        self._dsn: str | None = None
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # a notification arrived or the connection was lost
        self._listeners: list[Callable[[Catalogue], None]] = []
        self.connected = False

    @property
    def current(self) -> Catalogue | None:
        """The last catalogue successfully loaded (database or cache file), or None."""
        return self._current

    @property
    def revision(self) -> int | None:
        """Id of the catalogue revision held, or None."""
        return self._revision

    def add_listener(self, callback: Callable[[Catalogue], None]) -> None:
        """Call ``callback(catalogue)`` (synchronously, errors logged) whenever a new revision is loaded."""
        self._listeners.append(callback)

    async def start(self, dsn: str) -> None:
        """Load the cache, then try the database once; keep trying in the background. Never raises for
        an unreachable database."""
        self._dsn = dsn
        if self.dsn_key is None:
            self.dsn_key = catalogue_cache.dsn_fingerprint(dsn)
        self._cached = self._read_cache()
        try:
            await self._connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self._use_cache(None)
            log.warning("catalogue database unreachable; using the cached catalogue", error=str(exc),
                        revision=self._revision)  # fmt: skip
        self._cached = None
        self._task = asyncio.create_task(self._run(), name="catalogue-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drop_connection()

    async def reload(self) -> bool:
        """Fetch a newer revision if there is one; True when one was loaded."""
        if self._conn is None or self._conn.is_closed():
            return False
        try:
            head = await self._conn.fetchrow("SELECT id, sha256 FROM catalogue_revisions ORDER BY id DESC LIMIT 1")
        except asyncpg.UndefinedTableError:
            head = None  # schema not migrated yet: no catalogue
        if head is None:
            self._drop_catalogue()
            return False
        # compared for equality, not "newer": a restored or rebuilt database may have lower ids
        if (head["id"], head["sha256"]) == (self._revision, self._sha256):
            return False
        revision = await latest_revision(self._conn)
        if revision is None:
            return False
        catalogue = from_document(revision.document)
        self._set(revision.id, revision.sha256, catalogue)
        self._write_cache(revision.id, revision.sha256, revision.document)
        log.info("catalogue loaded", revision=revision.id, source=revision.source)
        return True

    # --- internals ---------------------------------------------------------------------------------

    def _drop_catalogue(self) -> None:
        """The database holds no catalogue: route ``fallback``, and let no cache say otherwise."""
        removed = self.cache_file is not None and catalogue_cache.remove(self.cache_file)
        if self._current is not None or removed:
            log.warning("the database holds no catalogue: routing falls back (pbx-sla contracts apply)",
                        dropped_revision=self._revision, cache_removed=removed)  # fmt: skip
        self._revision, self._sha256, self._current = None, None, None

    def _set(self, revision: int, sha256: str | None, catalogue: Catalogue) -> None:
        self._revision, self._sha256, self._current = revision, sha256, catalogue
        for callback in self._listeners:
            try:
                callback(catalogue)
            except Exception:
                log.exception("catalogue listener failed")

    async def _connect(self) -> None:
        assert self._dsn is not None
        conn = await asyncpg.connect(self._dsn, timeout=self.connect_timeout)
        try:
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        try:
            identity = await catalogue_cache.database_identity(conn)
        except BaseException:
            await conn.close()
            raise
        if self._identity is not None and identity != self._identity:
            log.warning("the catalogue database is another one than before; reloading", was=self._identity,
                        now=identity)  # fmt: skip
            self._revision = self._sha256 = None
        self._identity = identity
        self._use_cache(identity)
        self._conn = conn
        self.connected = True
        log.info("catalogue watch connected")
        # anything applied while we were away arrives now, notifications or not
        try:
            await self.reload()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            raise
        except Exception:  # e.g. a document this version cannot read: keep routing with what we have
            log.exception("catalogue revision unreadable; keeping the last catalogue")

    async def _drop_connection(self) -> None:
        conn, self._conn, self.connected = self._conn, None, False
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._wake.set()

    def _on_terminated(self, conn: Any) -> None:
        self.connected = False
        self._wake.set()

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            if self._conn is None or self._conn.is_closed():
                await self._drop_connection()
                try:
                    await self._connect()
                    backoff = self.min_backoff
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                    log.warning("catalogue watch reconnect failed", error=str(exc), retry_in=round(backoff, 2))
                    await asyncio.sleep(backoff * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not crypto
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.health_interval)
            try:
                if self._wake.is_set():
                    await self.reload()
                else:  # quiet: prove the connection is alive (a half-open TCP connection never says so)
                    await self._conn.fetchval("SELECT 1", timeout=self.connect_timeout)  # type: ignore[union-attr]
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("catalogue watch lost the database; keeping the last catalogue", error=str(exc))
                await self._drop_connection()
            except Exception:
                log.exception("catalogue reload failed; keeping the last catalogue")

    def _read_cache(self) -> dict[str, Any] | None:
        if self.cache_file is None or not self.cache_file.exists():
            return None
        try:
            return catalogue_cache.read(self.cache_file)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("catalogue cache unreadable; ignored", file=str(self.cache_file), error=str(exc))
            return None

    def _use_cache(self, identity: dict[str, str | None] | None) -> None:
        """Take the cache read at start if it names this database (by ``identity`` when connected, else by
        the DSN fingerprint); once only."""
        data, self._cached = self._cached, None
        if data is None or self._current is not None:
            return
        if not catalogue_cache.bound_to(data, identity=identity, dsn=self.dsn_key):
            log.warning("catalogue cache is from another database (or names none); ignored",
                        file=str(self.cache_file), cache_database=data.get("database"), database=identity)  # fmt: skip
            return
        try:
            catalogue = from_document(data["document"])
            revision = int(data["revision"])
            sha256 = data.get("sha256")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("catalogue cache unreadable; ignored", file=str(self.cache_file), error=str(exc))
            return
        self._set(revision, sha256, catalogue)
        log.info("catalogue loaded from cache", file=str(self.cache_file), revision=revision)

    def _write_cache(self, revision: int, sha256: str, document: dict[str, Any]) -> None:
        if self.cache_file is None:
            return
        database = {**(self._identity or {}), "dsn": self.dsn_key}
        try:
            catalogue_cache.write(self.cache_file, revision, sha256, document, database)
        except OSError as exc:
            log.warning("catalogue cache not written", file=str(self.cache_file), error=str(exc))
