"""Each tenant's settled support requests, kept (tables ``support_kept_*``, sql/1720).

A kept tenant has a cut: an instant at which it had no open request (:func:`pbx_sla.domain.requests.idle_cut`).
Its requests opened before the cut are stored assessed (all are reacted, so their deadline, business seconds
and met/breached status never change for a catalogue revision), with its support time used before the cut per
local day; the report functions derive only the facts from the cut on
(:func:`pbx_sla.reports.requests.support_figures`). Statement triggers delete a kept tenant when a change to
the facts can reach one before its cut (sql/repeatable/support_kept_invalidate.sql); rows are stored under an
exclusive advisory lock the triggers take shared, so rows derived without a concurrent change are deleted
after they are stored, never kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from pbx_sla.domain.requests import Assessed, Reacted
from pbx_sla.domain.support_hours import Use

KEPT_REQUEST_COLUMNS = (
    *("tenant_id", "opened_at", "server", "calls", "reacted_at", "reacted_by", "deadline"),
    *("business_seconds", "status"),
)
#: the advisory lock of the kept requests (sql/repeatable/support_kept_invalidate.sql takes it shared)
LOCK = "pbx-sla support_kept"


@dataclass(frozen=True)
class KeptTenant:
    """What a tenant's kept rows were derived with."""

    cut: datetime
    revision_id: int  # the catalogue revision the rows were derived (or last moved on) under
    digest: str  # the tenant's :func:`pbx_sla.domain.requests.derivation_digests` then: usable while unchanged
    staff: frozenset[str]
    legs_from: datetime
    checked: datetime | None  # the ``now`` of the report that last tried to move the cut on


@dataclass(frozen=True)
class Advance:
    """A tenant's kept rows moved on to ``cut``: the requests opened, the support time used and the
    AGI-failure channels met between its previous cut (None: none kept) and ``cut``."""

    tenant: str
    digest: str  # the tenant's :func:`pbx_sla.domain.requests.derivation_digests` in the catalogue derived with
    previous: datetime | None
    cut: datetime
    legs_from: datetime  # the earliest start of a staff leg answered at or after ``cut`` (``cut`` when none)
    requests: Sequence[tuple[Assessed, str]]  # reacted requests and their opening call's server
    uses: Mapping[date, int]  # local day -> seconds
    agi_channels: Sequence[str]  # uniqueids


async def lock(conn: asyncpg.Connection) -> None:
    """Take the kept requests' exclusive lock until the end of the current transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", LOCK)


async def kept_tenants(conn: asyncpg.Connection, tenants: Sequence[str]) -> dict[str, KeptTenant]:
    rows = await conn.fetch(
        "SELECT tenant_id, cut, revision_id, catalogue_digest, staff, legs_from, checked FROM support_kept_tenants "
        "WHERE tenant_id = ANY($1::text[])",
        list(tenants),
    )
    return {
        r["tenant_id"]: KeptTenant(
            r["cut"], r["revision_id"], r["catalogue_digest"], frozenset(r["staff"]), r["legs_from"], r["checked"]
        )
        for r in rows
    }


async def checked(conn: asyncpg.Connection, tenants: Sequence[str], now: datetime) -> None:
    """Record that a report judged as of ``now`` tried to move ``tenants`` on (their cuts could not move)."""
    await conn.execute(
        "UPDATE support_kept_tenants SET checked = $2 WHERE tenant_id = ANY($1::text[])", list(tenants), now
    )


async def reacted(
    conn: asyncpg.Connection, tenants: Sequence[str], start: datetime, end: datetime, servers: Sequence[str] | None
) -> dict[str, Reacted]:
    """Per kept tenant, its kept requests opened in ``[start, end)`` (by a call to ``servers``, or any)."""
    rows = await conn.fetch(
        """SELECT tenant_id, count(*) FILTER (WHERE status = 'met') AS met,
                  count(*) FILTER (WHERE status = 'breached') AS breached,
                  array_agg(business_seconds) AS seconds
             FROM support_kept_requests
            WHERE tenant_id = ANY($1::text[]) AND opened_at >= $2 AND opened_at < $3
              AND ($4::text[] IS NULL OR server = ANY($4::text[]))
            GROUP BY tenant_id""",
        list(tenants),
        start,
        end,
        None if servers is None else list(servers),
    )
    return {r["tenant_id"]: Reacted(r["met"], r["breached"], tuple(r["seconds"])) for r in rows}


async def uses(conn: asyncpg.Connection, tenants: Sequence[str], last_day: date) -> dict[str, list[Use]]:
    """Per kept tenant, its support time used before its cut, per local day up to ``last_day``."""
    rows = await conn.fetch(
        """SELECT tenant_id, array_agg(day ORDER BY day) AS days, array_agg(seconds ORDER BY day) AS seconds
             FROM support_kept_uses WHERE tenant_id = ANY($1::text[]) AND day <= $2 GROUP BY tenant_id""",
        list(tenants),
        last_day,
    )
    return {r["tenant_id"]: list(map(Use, r["days"], r["seconds"])) for r in rows}


async def store(
    conn: asyncpg.Connection,
    revision_id: int,
    staff: Sequence[str],
    line_contexts: Sequence[str],
    advances: Sequence[Advance],
    now: datetime,
) -> None:
    """Store ``advances`` (under :func:`lock`, in the caller's transaction): a tenant without a previous cut
    replaces whatever was kept for it; one with a previous cut (the one kept now) appends."""
    if not advances:
        return
    fresh = [a.tenant for a in advances if a.previous is None]
    await conn.execute("DELETE FROM support_kept_tenants WHERE tenant_id = ANY($1::text[])", fresh)
    await conn.execute(
        """INSERT INTO support_kept_tenants
                  (tenant_id, revision_id, catalogue_digest, cut, staff, line_contexts, legs_from, checked)
           SELECT t, $2, d, c, $4::text[], $5::text[], f, $7
             FROM unnest($1::text[], $3::timestamptz[], $6::timestamptz[], $8::text[]) AS u(t, c, f, d)
           ON CONFLICT (tenant_id) DO UPDATE SET cut = excluded.cut, revision_id = excluded.revision_id,
                  catalogue_digest = excluded.catalogue_digest, staff = excluded.staff,
                  line_contexts = excluded.line_contexts, legs_from = excluded.legs_from,
                  checked = excluded.checked, computed_at = now()""",
        [a.tenant for a in advances],
        revision_id,
        [a.cut for a in advances],
        sorted(staff),
        sorted(line_contexts),
        [a.legs_from for a in advances],
        now,
        [a.digest for a in advances],
    )
    await conn.copy_records_to_table(
        "support_kept_requests",
        records=[
            (
                a.tenant,
                x.request.opened_at,
                server,
                len(x.request.calls),
                x.request.reacted_at,
                x.request.reacted_by,
                x.deadline,
                x.business_seconds,
                x.status,
            )
            for a in advances
            for x, server in a.requests
        ],
        columns=KEPT_REQUEST_COLUMNS,
    )
    await conn.execute(
        """INSERT INTO support_kept_uses (tenant_id, day, seconds)
           SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[])
           ON CONFLICT (tenant_id, day) DO UPDATE SET seconds = support_kept_uses.seconds + excluded.seconds""",
        [a.tenant for a in advances for _ in a.uses],
        [d for a in advances for d in a.uses],
        [s for a in advances for s in a.uses.values()],
    )
    await conn.copy_records_to_table(
        "support_kept_agi_channels",
        records=[(a.tenant, u) for a in advances for u in a.agi_channels],
        columns=["tenant_id", "uniqueid"],
    )
