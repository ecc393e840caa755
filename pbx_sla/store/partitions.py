"""Month partitions of the history tables (sql/1703_partitioned_history.sql, docs/scale.md).

:func:`maintain` makes, for every partitioned history table, the partitions of the current month and the
:data:`MONTHS_AHEAD` next ones, and the partitions of every month that has rows waiting in the table's
DEFAULT partition (a row stored before its month had a partition: an old ``cdr import``, a clock far
off), moving those rows into it. It runs after every ``db upgrade`` (the migration runner), from the
daemon once a day (feature ``partitions``), after ``cdr import``, and on demand (``pbx-sla db
partitions``). Each table is done in its own transaction: creating a partition locks its parent table
briefly, and one table at a time cannot deadlock with a writer that holds another.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

#: months after the current one that get their partitions ahead of time
MONTHS_AHEAD = 3


async def partitioned(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(parent table, partition key column) of every partitioned history table; none before sql/1703."""
    if not await conn.fetchval("SELECT to_regclass('history_partitioning') IS NOT NULL"):
        return []
    rows = await conn.fetch("SELECT parent, key_column FROM history_partitioning ORDER BY parent")
    return [(r["parent"], r["key_column"]) for r in rows]


async def maintain(
    conn: asyncpg.Connection, *, now: datetime | None = None, ahead: int = MONTHS_AHEAD
) -> dict[str, int]:
    """Make the missing month partitions; per table, how many were made."""
    now = datetime.now(UTC) if now is None else now
    made: dict[str, int] = {}
    for parent, key in await partitioned(conn):
        async with conn.transaction():
            waiting = int(
                await conn.fetchval(
                    f"""SELECT coalesce(sum(history_partitions_ensure($1::text, m, m)), 0)
                        FROM (SELECT DISTINCT date_trunc('month', {key} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m
                              FROM {parent}_default) w""",
                    parent,
                )
            )
            ahead_made = int(
                await conn.fetchval(
                    """SELECT history_partitions_ensure($1::text, $2::timestamptz,
                                                        $2::timestamptz + make_interval(months => $3::int))""",
                    parent,
                    now,
                    ahead,
                )
            )
        made[parent] = waiting + ahead_made
    return made


async def months(conn: asyncpg.Connection, parent: str) -> list[tuple[str, datetime, datetime]]:
    """The month partitions of ``parent``: (name, from, to) in time order (the DEFAULT partition left out)."""
    rows = await conn.fetch(
        """
        SELECT name, b[1]::timestamptz AS lo, b[2]::timestamptz AS hi
        FROM (SELECT c.relname AS name,
                     regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                  'FROM \\(''([^'']*)''\\) TO \\(''([^'']*)''\\)') AS b
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = $1::regclass) p
        WHERE b IS NOT NULL
        ORDER BY lo
        """,
        parent,
    )
    return [(r["name"], r["lo"], r["hi"]) for r in rows]
