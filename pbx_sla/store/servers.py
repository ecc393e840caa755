"""The Asterisk servers the database knows: the names a report's ``--server`` may give."""

from __future__ import annotations

import asyncpg

#: the label of support calls whose AGI run could not tell its server (sql/0030_support.sql)
UNKNOWN = "unknown"


async def known_servers(conn: asyncpg.Connection) -> list[str]:
    """Sorted names from ``servers`` (CDR writers and imports, catalogue trunks and maintenance windows), the
    daemons' AMI sessions and the trunks table: every server a daemon, an import or the catalogue named; and
    ``unknown`` when support calls are stored under it. Each is a small table or one index probe: ``unknown``
    is looked up in ``support_call_results`` (sql/1602: one row per support call, under its runs' server),
    not in ``support_calls``, whose key probe would visit every month partition."""
    rows = await conn.fetch(
        """
        SELECT name FROM servers
        UNION SELECT server FROM ami_sessions
        UNION SELECT server FROM trunks
        UNION SELECT $1::text WHERE EXISTS (SELECT 1 FROM support_call_results WHERE server = $1)
        ORDER BY 1
        """,
        UNKNOWN,
    )
    return [r[0] for r in rows]
