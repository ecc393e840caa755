"""The ``statement_closes`` and ``statements`` tables (sql/1601_statements.sql): append-only, one close per month."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Close:
    period: str
    closed_at: datetime
    catalogue_revision: int | None
    code_version: str
    tenants: int


@dataclass(frozen=True)
class StatementRow:
    tenant: str
    figures: dict[str, Any]
    adjustments: list[dict[str, Any]]
    amount_due: Decimal
    currency: str


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def find_close(conn: asyncpg.Connection, period: str) -> Close | None:
    row = await conn.fetchrow(
        "SELECT period, closed_at, catalogue_revision, code_version, tenants FROM statement_closes WHERE period = $1",
        period,
    )
    return None if row is None else Close(**dict(row))


async def closed_before(conn: asyncpg.Connection, period: str) -> list[str]:
    """Closed months before ``period`` that may still change, oldest first (``YYYY-MM`` sorts as text).

    A closed month that overlaps a history partition retention dropped (``history_dropped``, sql/1704) is
    final and left out: its rows are gone, so recomputing it would state their loss as an adjustment."""
    rows = await conn.fetch(
        """
        SELECT s.period FROM statement_closes s
        CROSS JOIN (SELECT coalesce((SELECT timezone FROM catalogue_settings), 'UTC') AS tz) z
        WHERE s.period < $1
          AND NOT EXISTS (
              SELECT 1 FROM history_dropped d
              WHERE d.from_at < ((to_date(s.period, 'YYYY-MM') + interval '1 month')::timestamp AT TIME ZONE z.tz)
                AND d.to_at > (to_date(s.period, 'YYYY-MM')::timestamp AT TIME ZONE z.tz))
        ORDER BY s.period
        """,
        period,
    )
    return [r["period"] for r in rows]


async def statements_of(conn: asyncpg.Connection, period: str, tenant: str | None = None) -> list[StatementRow]:
    rows = await conn.fetch(
        """SELECT tenant_id, figures, adjustments, amount_due, currency FROM statements
           WHERE period = $1 AND ($2::text IS NULL OR tenant_id = $2) ORDER BY tenant_id""",
        period,
        tenant,
    )
    return [
        StatementRow(r["tenant_id"], _json(r["figures"]), _json(r["adjustments"]), r["amount_due"], r["currency"])
        for r in rows
    ]


async def stated_adjustments(
    conn: asyncpg.Connection, months: Sequence[str]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(tenant, adjusted month) → the adjustments stated for it so far, oldest statement first."""
    rows = await conn.fetch(
        """SELECT s.tenant_id, a.value AS adj
             FROM statements s, jsonb_array_elements(s.adjustments) WITH ORDINALITY AS a(value, n)
            WHERE a.value->>'period' = ANY($1::text[])
            ORDER BY s.period, s.tenant_id, a.n""",
        list(months),
    )
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        adj = _json(r["adj"])
        out.setdefault((r["tenant_id"], adj["period"]), []).append(adj)
    return out


async def insert_close(
    conn: asyncpg.Connection,
    close: Close,
    rows: Sequence[StatementRow],
) -> bool:
    """Write one month's close and statements in the caller's transaction; False (nothing written) when the
    month is closed already — also when another close of it committed first (the primary key waits for it)."""
    inserted = await conn.fetchval(
        """INSERT INTO statement_closes (period, closed_at, catalogue_revision, code_version, tenants)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (period) DO NOTHING RETURNING true""",
        close.period,
        close.closed_at,
        close.catalogue_revision,
        close.code_version,
        close.tenants,
    )
    if not inserted:
        return False
    await conn.executemany(
        """INSERT INTO statements (period, tenant_id, figures, adjustments, amount_due, currency)
           VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6)""",
        [
            (close.period, r.tenant, json.dumps(r.figures), json.dumps(r.adjustments), r.amount_due, r.currency)
            for r in rows
        ],
    )
    return True
