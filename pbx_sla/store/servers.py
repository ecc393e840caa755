"""The Asterisk servers the database knows: the names a report's ``--server`` may give."""

from __future__ import annotations

import asyncpg


async def known_servers(conn: asyncpg.Connection) -> list[str]:
    """Sorted names from ``servers`` (CDR writers and imports, catalogue trunks and maintenance windows), the
    daemons' AMI sessions and the trunks table: every server a daemon, an import or the catalogue named.
    All three tables are small (one row per server, session or trunk)."""
    rows = await conn.fetch(
        """
        SELECT name FROM servers
        UNION SELECT server FROM ami_sessions
        UNION SELECT server FROM trunks
        ORDER BY 1
        """
    )
    return [r[0] for r in rows]
