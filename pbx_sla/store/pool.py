"""Connections: resolve the DSN (configured or embedded) and open asyncpg pools and connections.

Advisory locks and LISTEN need a dedicated connection (a pooled one runs ``pg_advisory_unlock_all()``
and ``UNLISTEN *`` when released), hence :func:`connect` beside the durable writer's pool.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from pbx_sla.config import Settings
from pbx_sla.store.embedded import ensure_embedded

#: embedded DSN per data directory, so a process starts or finds its server once
_embedded: dict[Path, str] = {}


async def resolve_dsn(settings: Settings) -> str:
    """The DSN to use: configured/env DSN, else the embedded default (started on first use)."""
    if settings.dsn is not None:
        return settings.dsn.reveal()
    key = settings.data_dir.resolve()
    if key not in _embedded:
        _embedded[key] = await asyncio.to_thread(ensure_embedded, settings.data_dir)
    return _embedded[key]


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """A dedicated connection (``kwargs`` as for :func:`asyncpg.connect`, e.g. ``timeout``)."""
    return await asyncpg.connect(dsn, **kwargs)
