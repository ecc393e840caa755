"""``pbx-sla retention apply``: history past the retention age dropped by month partition where its figures
are kept elsewhere, and personal fields of the other rows past the age replaced by pseudonyms.

**Partitions.** A month partition of a history table (sql/1703) is dropped whole when its month ends
before the table's cutoff and every month (in the catalogue's zone) it overlaps has a closed statement:
the figures it fed are then kept by ``usage_daily`` (never dropped) and the statements. The drop is
recorded in ``history_dropped`` (sql/1704): a later ``statement close`` no longer recomputes those months,
and the leg writer does not store again a leg older than the newest dropped month of ``cdr_legs``.

**Rows.** In the partitions kept (a month partly past the age, a month not closed, the DEFAULT partition)
rows are kept and only the fields that say *who* (numbers, caller IDs, names, phone endpoints, free text)
are replaced with ``pseudonym()`` (the same tokens as ``erase``), so every counted field and the
``usage_daily`` rollup stay as they were and reports of old periods do not move. Kept as they are: the
catalogue's DIDs (a company's number, used to attribute calls) and the catalogue's trunks' endpoints and
channels (a carrier, used for direction, trunk and voice-quality figures). Each table is done in one
statement under the call locks (calls and legs are recomputed together by the writers) and marked
``pseudonymised`` so the next run skips it; the unmarked rows are found by sql/1760's partial indexes (by UTC
day), so a run reads the rows that passed the age since the last one, not the history already done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from pbx_sla.config import Retention
from pbx_sla.store import kept_requests, partitions
from pbx_sla.store.calls import lock_calls

_DID = "(SELECT did FROM tenant_dids)"
_TRUNK = "(SELECT name FROM trunks WHERE in_catalogue AND server = t.server)"


@dataclass(frozen=True)
class RetentionRule:
    """One table: which policy key sets its age, which column dates a row, and what replaces what."""

    table: str
    days_key: str
    date_column: str
    sets: str


RULES = (
    RetentionRule(
        "cdr_legs",
        "legs_days",
        "start_at",
        f"""src = pseudonym(src), clid = pseudonym(clid),
            dst = CASE WHEN dialled_e164 IN {_DID} THEN dst ELSE pseudonym(dst) END,
            caller_e164 = pseudonym(caller_e164),
            dialled_e164 = CASE WHEN dialled_e164 IN {_DID} THEN dialled_e164 ELSE pseudonym(dialled_e164) END,
            lastdata = pseudonym(lastdata), userfield = pseudonym(userfield),
            channel = CASE WHEN src_endpoint IN {_TRUNK} THEN channel ELSE pseudonym(channel) END,
            dstchannel = CASE WHEN dst_endpoint IN {_TRUNK} THEN dstchannel ELSE pseudonym(dstchannel) END,
            src_endpoint = CASE WHEN src_endpoint IN {_TRUNK} THEN src_endpoint ELSE pseudonym(src_endpoint) END,
            dst_endpoint = CASE WHEN dst_endpoint IN {_TRUNK} THEN dst_endpoint ELSE pseudonym(dst_endpoint) END""",
    ),
    RetentionRule(
        "calls",
        "legs_days",
        "started_at",
        f"""caller_e164 = pseudonym(caller_e164),
            dialled_e164 = CASE WHEN dialled_e164 IN {_DID} THEN dialled_e164 ELSE pseudonym(dialled_e164) END""",
    ),
    RetentionRule(
        "support_calls",
        "support_days",
        "decided_at",
        f"""caller = pseudonym(caller), caller_e164 = pseudonym(caller_e164), caller_name = pseudonym(caller_name),
            channel = pseudonym(channel), requester = pseudonym(requester),
            dialled = CASE WHEN dialled IN {_DID} THEN dialled ELSE pseudonym(dialled) END""",
    ),
    RetentionRule("queue_events", "support_days", "at", "member = pseudonym(member)"),
    RetentionRule(
        "qos_legs",
        "qos_days",
        "at",
        f"""channel = CASE WHEN endpoint IN {_TRUNK} THEN channel ELSE pseudonym(channel) END,
            endpoint = CASE WHEN endpoint IN {_TRUNK} THEN endpoint ELSE pseudonym(endpoint) END""",
    ),
)


#: month partitions (``$2``-``$4``: names, starts, ends) that end at or before the cutoff ``$1`` and whose
#: every overlapping month in the catalogue's zone has a closed statement
_DROPPABLE = """
SELECT p.name, p.lo, p.hi
FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS p(name, lo, hi)
CROSS JOIN (SELECT coalesce((SELECT timezone FROM catalogue_settings), 'UTC') AS tz) z
WHERE p.hi <= $1
  AND NOT EXISTS (
      SELECT 1 FROM generate_series(date_trunc('month', p.lo AT TIME ZONE z.tz),
                                    date_trunc('month', (p.hi - interval '1 microsecond') AT TIME ZONE z.tz),
                                    interval '1 month') AS m
      WHERE NOT EXISTS (SELECT 1 FROM statement_closes c WHERE c.period = to_char(m, 'YYYY-MM')))
ORDER BY p.lo
"""


async def _refresh_support_results(conn: asyncpg.Connection, ranges: list[tuple[datetime, datetime]]) -> None:
    """Recompute the kept support calls whose runs or queue events the dropped ranges held (calls decided in
    them, and in the day before: a call's queue events follow its decision within the call), under the
    triggers' lock: a call with nothing left goes, so ``sla`` counts what is left like the other reports.

    Done once after every table's partitions are dropped (a call's runs and queue events go in the same run
    when both tables share ``support_days``). A call none of whose runs is left has no row in the view: its
    row is deleted in one statement (its runs were all decided at or after its first run's ``decided_at``,
    so only the partitions from that month on are looked in); only the calls with runs left (a call across
    the range's edge) are recomputed through the view, one by one as the triggers do."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('pbx-sla support_call_results', 0))")
        for lo, hi in ranges:
            await conn.execute(
                """DELETE FROM support_call_results r
                   WHERE r.decided_at >= $1::timestamptz - interval '1 day' AND r.decided_at < $2::timestamptz
                     AND NOT EXISTS (SELECT 1 FROM support_calls s
                                     WHERE s.server = r.server AND COALESCE(s.linkedid, s.uniqueid) = r.call_key
                                       AND s.decided_at >= r.decided_at)""",
                lo,
                hi,
            )
            await conn.execute(
                """SELECT support_call_results_refresh(array_agg(server), array_agg(call_key))
                   FROM support_call_results
                   WHERE decided_at >= $1::timestamptz - interval '1 day' AND decided_at < $2::timestamptz""",
                lo,
                hi,
            )


async def droppable(conn: asyncpg.Connection, table: str, cutoff: datetime) -> list[asyncpg.Record]:
    """The month partitions of ``table`` retention may drop at ``cutoff`` (name, lo, hi), oldest first."""
    parts = await partitions.months(conn, table)
    if not parts:
        return []
    names, los, his = (list(c) for c in zip(*parts, strict=True))
    return await conn.fetch(_DROPPABLE, cutoff, names, los, his)


#: the tables ``support_call_results`` (sql/1602) is kept from: dropping a partition fires no DELETE trigger
SUPPORT_RESULT_SOURCES = ("support_calls", "queue_events")
#: the facts the kept support requests are derived from (sql/1720): dropping a partition of one forgets them
KEPT_REQUEST_SOURCES = ("support_calls", "queue_events", "cdr_legs")


async def count_rows(conn: asyncpg.Connection, partition: str) -> int:
    """The exact number of rows in ``partition`` (the report's ``rows_dropped``: an audit figure)."""
    return int(await conn.fetchval(f'SELECT count(*) FROM "{partition}"'))


async def _drop(conn: asyncpg.Connection, table: str, part: asyncpg.Record, *, dry_run: bool) -> int:
    rows = await count_rows(conn, part["name"])
    if not dry_run:
        await conn.execute(f'DROP TABLE "{part["name"]}"')
        if table in KEPT_REQUEST_SOURCES:  # no statement trigger sees a dropped partition's facts go
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))", kept_requests.LOCK)
                await conn.execute("DELETE FROM support_kept_tenants")
        await conn.execute(
            "INSERT INTO history_dropped (partition, parent, from_at, to_at, rows) VALUES ($1, $2, $3, $4, $5)",
            part["name"],
            table,
            part["lo"],
            part["hi"],
            rows,
        )
    return rows


async def apply_retention(
    conn: asyncpg.Connection, policy: Retention, now: datetime, *, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Drop the month partitions past the age whose figures are kept, then pseudonymise every unmarked row
    older than its table's age; per table: cutoff, rows (to be) pseudonymised, partitions (to be) dropped
    and their rows."""
    report: list[dict[str, Any]] = []
    support_ranges: set[tuple[datetime, datetime]] = set()
    async with conn.transaction():
        if not dry_run:
            # every server a call was ever stored for (the leg writer registers it first): no scan of calls
            servers = [r["name"] for r in await conn.fetch("SELECT name FROM servers")]
            await lock_calls(conn, servers)
        for rule in RULES:
            days = getattr(policy, rule.days_key)
            if days is None:
                report.append(
                    {
                        "table": rule.table,
                        "days": None,
                        "before": None,
                        "rows": 0,
                        "partitions_dropped": [],
                        "rows_dropped": 0,
                    }
                )
                continue
            cutoff = now - timedelta(days=days)
            dropped, rows_dropped = [], 0
            args: list[Any] = [cutoff]
            # the day term lets sql/1760's partial index (unmarked rows by UTC day) find the rows; the exact
            # test is the instant's
            where = (
                f"WHERE NOT t.pseudonymised AND t.{rule.date_column} < $1"
                f" AND (t.{rule.date_column} AT TIME ZONE 'UTC')::date <= ($1::timestamptz AT TIME ZONE 'UTC')::date"
            )
            for part in await droppable(conn, rule.table, cutoff):
                rows_dropped += await _drop(conn, rule.table, part, dry_run=dry_run)
                dropped.append(part["name"])
                if rule.table in SUPPORT_RESULT_SOURCES and not dry_run:
                    support_ranges.add((part["lo"], part["hi"]))
                # (dry run) its rows are counted as dropped, not as pseudonymised: its range is left out by
                # the partition key, so its partition is not read again (pruned)
                where += f" AND (t.{rule.date_column} < ${len(args) + 1} OR t.{rule.date_column} >= ${len(args) + 2})"
                args += [part["lo"], part["hi"]]
            if dry_run:
                rows = await conn.fetchval(f"SELECT count(*) FROM {rule.table} t {where}", *args)
            else:
                status = await conn.execute(
                    f"UPDATE {rule.table} AS t SET {rule.sets}, pseudonymised = true {where}", *args
                )
                rows = int(status.rsplit(" ", 1)[1])
            report.append(
                {
                    "table": rule.table,
                    "days": days,
                    "before": cutoff.isoformat(),
                    "rows": rows,
                    "partitions_dropped": dropped,
                    "rows_dropped": rows_dropped,
                }
            )
        if support_ranges:
            await _refresh_support_results(conn, sorted(support_ranges))
    return report
