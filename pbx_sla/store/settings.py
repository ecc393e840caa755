"""Catalogue-wide settings the reports need before anything else (time zone, country code)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import asyncpg


async def catalogue_timezone(conn: asyncpg.Connection) -> ZoneInfo:
    """The catalogue's time zone; UTC while no catalogue was applied."""
    tz = await conn.fetchval("SELECT timezone FROM catalogue_settings")
    return ZoneInfo(tz or "UTC")
