"""Storage of trunk observations (sql/0010_ami_trunks.sql) and the reads that feed the pure core.

The sink stores ``trunk_observation`` records idempotently and registers endpoints that reported a qualify
result as trunks (``in_catalogue = false`` unless the catalogue already has them). :func:`load_timeline`
reads, per trunk, exactly what :func:`pbx_sla.domain.trunks.trunk_summary` needs for a period: the AMI
sessions overlapping it, the observations inside it plus the latest one per contact/registration before it
(enough to know the state at the period's start), and the maintenance windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from pbx_sla.domain.trunks import (
    QUALIFIED_STATUSES,
    SOURCES,
    Interval,
    Observation,
    Session,
    State,
    current_state,
)
from pbx_sla.pipeline import DbConnection, record_instant

KIND = "trunk_observation"


class PeriodLike(Protocol):
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...


class TrunkObservationSink:
    """Inserts ``trunk_observation`` records; a replayed batch changes nothing."""

    kind = KIND

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        if not items:
            return
        rows = []
        for item in items:
            source = str(item["source"])
            if source not in SOURCES:
                raise ValueError(f"trunk_observation: unknown source {source!r}")
            rtt = item.get("rtt_usec")
            rows.append(
                (
                    str(item["server"]),
                    str(item["trunk"]),
                    record_instant(item["at"], KIND, "at"),
                    source,
                    str(item.get("key") or ""),
                    str(item["status"]),
                    str(item.get("aor") or ""),
                    None if rtt is None else int(rtt),
                    bool(item.get("polled", False)),
                )
            )
        columns = list(zip(*rows, strict=True))
        await conn.execute(
            """
            INSERT INTO trunk_observations (server, trunk, at, source, key, status, aor, rtt_usec, polled)
            SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::bigint[], $9::boolean[])
            ON CONFLICT DO NOTHING
            """,
            *[list(c) for c in columns],
        )
        qualified = sorted({(r[0], r[1]) for r in rows if r[5] in QUALIFIED_STATUSES})
        if qualified:
            await conn.execute(
                """
                INSERT INTO trunks (server, name, in_catalogue)
                SELECT s, n, false FROM unnest($1::text[], $2::text[]) AS u(s, n)
                ON CONFLICT (server, name) DO NOTHING
                """,
                [q[0] for q in qualified],
                [q[1] for q in qualified],
            )


def sinks() -> Sequence[TrunkObservationSink]:
    return (TrunkObservationSink(),)


# -- reads ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrunkInfo:
    server: str
    trunk: str
    target: Decimal | None
    in_catalogue: bool
    active: bool


@dataclass(frozen=True)
class Timeline:
    """Everything the core needs to summarise one trunk over one period."""

    info: TrunkInfo
    sessions: tuple[Session, ...]
    observations: tuple[Observation, ...]
    maintenance: tuple[Interval, ...]


def _obs(row: asyncpg.Record) -> Observation:
    return Observation(row["at"], row["source"], row["key"], row["status"], row["rtt_usec"])


async def trunk_rows(
    conn: asyncpg.Connection,
    period: PeriodLike,
    servers: Sequence[str] | None = None,
    trunks: Sequence[tuple[str, str]] | None = None,
) -> list[TrunkInfo]:
    """The trunks :func:`load_timeline` reports, without their timelines."""
    if trunks is not None:
        if not trunks:
            return []
        rows = await conn.fetch(
            """
            SELECT t.server, t.name, t.availability_target, t.in_catalogue, t.active
              FROM trunks t
              JOIN unnest($1::text[], $2::text[]) AS w(server, name) USING (server, name)
             WHERE ($3::text[] IS NULL OR t.server = ANY($3::text[]))
             ORDER BY t.server, t.name
            """,
            [t[0] for t in trunks],
            [t[1] for t in trunks],
            None if servers is None else list(servers),
        )
    else:
        # catalogue trunks always; PBX-only trunks once seen; any trunk with observations in the period
        rows = await conn.fetch(
            """
            SELECT t.server, t.name, t.availability_target, t.in_catalogue, t.active
              FROM trunks t
             WHERE ($1::text[] IS NULL OR t.server = ANY($1::text[]))
               AND ((t.active AND (t.in_catalogue OR t.first_seen < $3))
                    OR EXISTS (SELECT 1 FROM trunk_observations o
                                WHERE o.server = t.server AND o.trunk = t.name AND o.at >= $2 AND o.at < $3))
             ORDER BY t.server, t.name
            """,
            None if servers is None else list(servers),
            period.start,
            period.end,
        )
    return [TrunkInfo(r["server"], r["name"], r["availability_target"], r["in_catalogue"], r["active"]) for r in rows]


async def _sessions(conn: asyncpg.Connection, servers: list[str], period: PeriodLike) -> dict[str, list[Session]]:
    """Sessions overlapping the period. A live session ends at its last sign of life (view ``ami_coverage``)."""
    rows = await conn.fetch(
        """
        SELECT server, login_at, resynced_at,
               GREATEST(login_at, COALESCE(lost_at, last_seen_at, resynced_at, login_at)) AS ended
          FROM ami_sessions
         WHERE server = ANY($1::text[]) AND login_at < $3
           AND GREATEST(login_at, COALESCE(lost_at, last_seen_at, resynced_at, login_at)) > $2
         ORDER BY server, login_at
        """,
        servers,
        period.start,
        period.end,
    )
    out: dict[str, list[Session]] = {s: [] for s in servers}
    for r in rows:
        known_from = r["resynced_at"]
        if known_from is not None and known_from < r["login_at"]:
            known_from = r["login_at"]
        out[r["server"]].append(Session(r["login_at"], known_from, r["ended"]))
    return out


async def _observations(
    conn: asyncpg.Connection, server: str, names: list[str], sessions: list[Session], period: PeriodLike
) -> dict[str, list[Observation]]:
    out: dict[str, list[Observation]] = {n: [] for n in names}
    # the state at the period's start: the latest row per (trunk, source, key) since each covering session's
    # login replays to the same state as all of them (docs/trunks.md), and stays small over a busy year; of
    # two rows of one key at one instant the replay applies the greater status last, so that one is taken
    for session in sessions:
        if session.start >= period.start:
            continue
        rows = await conn.fetch(
            """
            SELECT DISTINCT ON (trunk, source, key) trunk, at, source, key, status, rtt_usec
              FROM trunk_observations
             WHERE server = $1 AND trunk = ANY($2::text[]) AND at >= $3 AND at < $4
             ORDER BY trunk, source, key, at DESC, status DESC
            """,
            server,
            names,
            session.start,
            min(period.start, session.end),
        )
        for r in rows:
            out[r["trunk"]].append(_obs(r))
    if sessions:
        rows = await conn.fetch(
            """
            SELECT trunk, at, source, key, status, rtt_usec
              FROM trunk_observations
             WHERE server = $1 AND trunk = ANY($2::text[]) AND at >= $3 AND at < $4
            """,
            server,
            names,
            period.start,
            min(period.end, max(s.end for s in sessions)),
        )
        for r in rows:
            out[r["trunk"]].append(_obs(r))
    return out


async def _maintenance(conn: asyncpg.Connection, servers: list[str], period: PeriodLike) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT server, trunk,
               GREATEST(COALESCE(lower(during), $1), $1) AS start_at,
               LEAST(COALESCE(upper(during), $2), $2) AS end_at
          FROM maintenance_windows
         WHERE active AND during && tstzrange($1, $2)
           AND (server IS NULL OR server = ANY($3::text[]))
        """,
        period.start,
        period.end,
        servers,
    )
    return [dict(r) for r in rows]


async def load_timeline(
    conn: asyncpg.Connection,
    period: PeriodLike,
    servers: Sequence[str] | None = None,
    trunks: Sequence[tuple[str, str]] | None = None,
) -> list[Timeline]:
    """One :class:`Timeline` per reported trunk (ordered by server, trunk), of ``servers`` only (None: all).

    ``trunks``: only these (server, name) pairs (the SLA report's tenant trunks); otherwise the catalogue's
    active trunks, PBX-only trunks seen before the period's end, and any trunk observed in the period.
    """
    return await timelines(conn, await trunk_rows(conn, period, servers, trunks), period)


async def timelines(conn: asyncpg.Connection, infos: Sequence[TrunkInfo], period: PeriodLike) -> list[Timeline]:
    """:func:`load_timeline` of the given trunks (in their order) over ``period``."""
    if not infos:
        return []
    servers = sorted({i.server for i in infos})
    sessions = await _sessions(conn, servers, period)
    windows = await maintenance_of(conn, infos, period)
    observations: dict[tuple[str, str], list[Observation]] = {}
    for srv in servers:
        names = [i.trunk for i in infos if i.server == srv]
        for name, obs in (await _observations(conn, srv, names, sessions[srv], period)).items():
            observations[(srv, name)] = obs
    return [
        Timeline(
            info,
            tuple(sessions[info.server]),
            tuple(observations.get((info.server, info.trunk), ())),
            windows.get((info.server, info.trunk), ()),
        )
        for info in infos
    ]


async def maintenance_of(
    conn: asyncpg.Connection, infos: Sequence[TrunkInfo], period: PeriodLike
) -> dict[tuple[str, str], tuple[Interval, ...]]:
    """Each trunk's active maintenance windows clipped to ``period`` (trunks without any left out)."""
    if not infos:
        return {}
    windows = await _maintenance(conn, sorted({i.server for i in infos}), period)
    out: dict[tuple[str, str], tuple[Interval, ...]] = {}
    for info in infos:
        maint = tuple(
            Interval(w["start_at"], w["end_at"])
            for w in windows
            if (w["server"] is None or w["server"] == info.server)
            and (w["trunk"] is None or w["trunk"] == info.trunk)
            and w["start_at"] < w["end_at"]
        )
        if maint:
            out[(info.server, info.trunk)] = maint
    return out


async def current_states(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Each known trunk's state now, for ``pbx-sla status``: server, trunk, state, since, rtt_ms, in_catalogue.

    The state comes from the server's live AMI session only (the latest one without ``lost_at``); without a
    live, resynced session it is ``unknown`` since the last session ended (or ``None`` when never watched).
    """
    trunk_rows = await conn.fetch(
        "SELECT server, name, in_catalogue FROM trunks WHERE active OR NOT in_catalogue ORDER BY server, name"
    )
    if not trunk_rows:
        return []
    servers = sorted({r["server"] for r in trunk_rows})
    session_rows = await conn.fetch(
        """
        SELECT DISTINCT ON (server) server, login_at, resynced_at, lost_at, last_seen_at
          FROM ami_sessions WHERE server = ANY($1::text[])
         ORDER BY server, login_at DESC
        """,
        servers,
    )
    latest = {r["server"]: r for r in session_rows}
    by_trunk: dict[tuple[str, str], list[Observation]] = {}
    for srv, live in latest.items():
        if live["lost_at"] is not None or live["resynced_at"] is None:
            continue
        rows = await conn.fetch(
            """
            SELECT trunk, at, source, key, status, rtt_usec FROM trunk_observations
             WHERE server = $1 AND at >= $2
            """,
            srv,
            live["login_at"],
        )
        for r in rows:
            by_trunk.setdefault((srv, r["trunk"]), []).append(_obs(r))
    out = []
    for r in trunk_rows:
        s = latest.get(r["server"])
        state, since, rtt = State.UNKNOWN, None, None
        if s is not None and s["lost_at"] is None and s["resynced_at"] is not None:
            state, since, rtt = current_state(by_trunk.get((r["server"], r["name"]), ()))
            since = max(since, s["login_at"]) if since is not None else s["resynced_at"]
        elif s is not None:
            since = s["lost_at"] or s["login_at"]
        out.append(
            {
                "server": r["server"],
                "trunk": r["name"],
                "state": state.value,
                "since": since,
                "rtt_ms": None if rtt is None else rtt / 1000,
                "in_catalogue": r["in_catalogue"],
            }
        )
    return out


def observation_record_data(
    *,
    server: str,
    trunk: str,
    at: datetime,
    source: str,
    status: str,
    key: str = "",
    aor: str = "",
    rtt_usec: int | None = None,
    polled: bool = False,
) -> dict[str, Any]:
    """The JSON-serialisable ``data`` of a ``trunk_observation`` record."""
    return {
        "server": server,
        "trunk": trunk,
        "at": at.isoformat(),
        "source": source,
        "key": key,
        "status": status,
        "aor": aor,
        "rtt_usec": rtt_usec,
        "polled": polled,
    }
