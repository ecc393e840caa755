"""Each trunk's known states per UTC day, kept once the day is over (table ``trunk_known_days``, sql/1705).

:func:`load_known` gives, per reported trunk, the known-state segments over a period and its maintenance
windows: what :func:`pbx_sla.domain.trunks.summarize` needs, the same segments that
:func:`pbx_sla.domain.trunks.known_segments` gives from :func:`pbx_sla.store.trunks.load_timeline` (a test
holds the two to the same summaries). Days that are over come from the table, computed and stored on first
use; the rest of the period (today, the future) is replayed from the observations as before. A day's row
is the replay over ``[day, day + 1)`` UTC, which equals the same instants of a replay over any longer span:
each session's state at a span's start is replayed from the latest observation per contact, peer and
registration since its login (:func:`pbx_sla.store.trunks.timelines`), the state the full replay reaches.

Statement triggers delete every kept day a later change to ``trunk_observations`` or ``ami_sessions`` can
affect (sql/repeatable/trunk_known_days_invalidate.sql); days are computed and stored under an exclusive
advisory lock the triggers take shared, so a day computed without a concurrent change is deleted after it
is stored, never kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from pbx_sla.domain.trunks import (
    Interval,
    Segment,
    by_utc_day,
    clip,
    known_segments,
    utc_day,
    utc_midnight,
)
from pbx_sla.store.trunks import PeriodLike, TrunkInfo, maintenance_of, timelines, trunk_rows

#: the advisory lock of the kept days (sql/repeatable/trunk_known_days_invalidate.sql takes it shared)
LOCK = "pbx-sla trunk_known_days"
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Known:
    """One trunk over a period: its known states (sorted, non-overlapping, clipped to the period's UTC days)
    and its maintenance windows in the period."""

    info: TrunkInfo
    segments: tuple[Segment, ...]
    maintenance: tuple[Interval, ...]


def closed_days(period: PeriodLike, now: datetime) -> tuple[date, date] | None:
    """The UTC days touching ``period`` that ended by ``now`` (first, last), or None."""
    first = utc_day(period.start)
    last = min(utc_day(now) - ONE_DAY, utc_day(period.end - timedelta(microseconds=1)))
    return (first, last) if period.start < period.end and first <= last else None


async def _read(
    conn: asyncpg.Connection, pairs: Sequence[tuple[str, str]], first: date, last: date
) -> dict[tuple[str, str], tuple[set[date], list[Segment]]]:
    """Per trunk: the kept days of ``first..last`` and their segments in time order (one row per trunk:
    the days' arrays are concatenated by PostgreSQL, not row by row here)."""
    rows = await conn.fetch(
        """
        SELECT k.server, k.trunk, array_agg(DISTINCT k.day) AS days,
               array_agg(u.start_at ORDER BY u.start_at) FILTER (WHERE u.start_at IS NOT NULL) AS starts,
               array_agg(u.end_at ORDER BY u.start_at) FILTER (WHERE u.start_at IS NOT NULL) AS ends,
               array_agg(u.state ORDER BY u.start_at) FILTER (WHERE u.start_at IS NOT NULL) AS states
          FROM trunk_known_days k
          JOIN unnest($1::text[], $2::text[]) AS w(server, trunk) USING (server, trunk)
          LEFT JOIN LATERAL unnest(k.starts, k.ends, k.states) AS u(start_at, end_at, state) ON true
         WHERE k.day BETWEEN $3 AND $4
         GROUP BY k.server, k.trunk
        """,
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        first,
        last,
    )
    return {
        (r["server"], r["trunk"]): (
            set(r["days"]),
            list(map(Segment, r["starts"], r["ends"], r["states"])) if r["starts"] else [],
        )
        for r in rows
    }


async def _compute(
    conn: asyncpg.Connection, infos: Sequence[TrunkInfo], first: date, last: date
) -> dict[tuple[str, str], list[Segment]]:
    """Replay ``infos`` over the UTC days ``first..last`` and store each day, under the lock; returns each
    trunk's segments of those days."""
    out: dict[tuple[str, str], list[Segment]] = {}
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", LOCK)
        span = Interval(utc_midnight(first), utc_midnight(last + ONE_DAY))
        rows = []
        for t in await timelines(conn, infos, span):
            days = by_utc_day(known_segments(t.sessions, t.observations), first, last)
            out[(t.info.server, t.info.trunk)] = [s for day in sorted(days) for s in days[day]]
            for day, segs in days.items():
                rows.append(
                    (
                        t.info.server,
                        t.info.trunk,
                        day,
                        [s.start for s in segs],
                        [s.end for s in segs],
                        [s.value for s in segs],
                    )
                )
        # under the lock no other writer stores days: replace the range's rows by one COPY
        await conn.execute(
            """
            DELETE FROM trunk_known_days k
             USING unnest($1::text[], $2::text[]) AS w(server, trunk)
             WHERE k.server = w.server AND k.trunk = w.trunk AND k.day BETWEEN $3 AND $4
            """,
            [i.server for i in infos],
            [i.trunk for i in infos],
            first,
            last,
        )
        await conn.copy_records_to_table(
            "trunk_known_days", records=rows, columns=["server", "trunk", "day", "starts", "ends", "states"]
        )
    return out


async def load_known(
    conn: asyncpg.Connection,
    period: PeriodLike,
    servers: Sequence[str] | None = None,
    trunks: Sequence[tuple[str, str]] | None = None,
    *,
    now: datetime | None = None,
) -> list[Known]:
    """The trunks :func:`pbx_sla.store.trunks.load_timeline` reports, each with its known states over
    ``period`` (days over by ``now``, default the current time, kept; the rest replayed)."""
    infos = await trunk_rows(conn, period, servers, trunks)
    if not infos:
        return []
    now = now or datetime.now(UTC)
    pairs = [(i.server, i.trunk) for i in infos]
    days = closed_days(period, now)
    kept: dict[tuple[str, str], tuple[set[date], list[Segment]]] = {}
    live_from = period.start
    if days is not None:
        first, last = days
        live_from = max(period.start, utc_midnight(last + ONE_DAY))
        kept = await _read(conn, pairs, first, last)
        count = (last - first).days + 1
        missing = [i for i in infos if len(kept.get((i.server, i.trunk), ((), []))[0]) < count]
        if missing:
            # the days missing for any of these trunks, from the first to the last one, replayed together
            wanted = [first + timedelta(days=n) for n in range(count)]
            gaps = [d for i in missing for d in wanted if d not in kept.get((i.server, i.trunk), (set(), []))[0]]
            # days are stored only where each statement sees what committed before it: in a transaction
            # with one snapshot (``statement close``) a change committed since could be missing from them
            # for good (its trigger ran before they existed), so there the days are replayed, not kept
            fresh = await conn.fetchval("SHOW transaction_isolation") == "read committed"
            computed = await _compute(conn, missing, min(gaps), max(gaps)) if fresh else {}
            if not fresh:
                pass  # all of them replayed below
            elif min(gaps) == first and max(gaps) == last:  # every day replayed (the month's first view)
                kept.update({key: (set(wanted), segments) for key, segments in computed.items()})
            else:  # kept days around the replayed ones: read them all back in order
                kept.update(await _read(conn, [(i.server, i.trunk) for i in missing], first, last))
            still = [i for i in missing if len(kept.get((i.server, i.trunk), ((), []))[0]) < count]
            if still:  # not kept, or a change deleted some again meanwhile: replay those trunks' days here
                start, end = utc_midnight(first), utc_midnight(last + ONE_DAY)
                for t in await timelines(conn, still, Interval(start, end)):
                    segments = clip(known_segments(t.sessions, t.observations), start, end)
                    kept[(t.info.server, t.info.trunk)] = (set(wanted), segments)
    live: dict[tuple[str, str], list[Segment]] = {}
    if live_from < period.end:
        for t in await timelines(conn, infos, Interval(live_from, period.end)):
            live[(t.info.server, t.info.trunk)] = clip(
                known_segments(t.sessions, t.observations), live_from, period.end
            )
    windows = await maintenance_of(conn, infos, period)
    out = []
    for info in infos:
        key = (info.server, info.trunk)
        segments = kept.get(key, (set(), []))[1] + live.get(key, [])
        out.append(Known(info, tuple(segments), windows.get(key, ())))
    return out
