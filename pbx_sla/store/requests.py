"""The stored facts support requests are derived from (docs/requests.md): support calls of identified
tenants with their queue outcome, answer time and talk time, and the answered calls support staff placed.

Nothing about requests is stored: they are computed when a report asks, from the records the durable
writer keeps (support_calls, queue_events, cdr_legs). A late CDR leg or queue event is therefore part of
the next report without any re-evaluation step, and a replayed record changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from pbx_sla.domain.requests import SupportContact, why


@dataclass(frozen=True)
class ContactFact:
    """A support call of an identified tenant as stored, with what the queue made of it."""

    contact: SupportContact
    talk_seconds: int  # AgentComplete TalkTime, 0 when not answered or not (yet) known
    server: str  # the PBX the call reached (the AGI run's server, or the CDR leg's)


@dataclass(frozen=True)
class StaffCall:
    """An answered call placed by an endpoint (a candidate callback, before number matching)."""

    key: str
    endpoint: str
    dialled: str
    answered_at: datetime
    billsec: int
    start_at: datetime


def _queue_outcome(alias: str) -> str:
    """One lateral aggregate over the queue events of ``alias``'s channel (``alias.server`` ``'unknown'``
    matches the uniqueid on any server): its first join, answer and abandon, its last leave, and the talk
    time of its first AgentComplete; one index look-up per call."""
    match = f"q.uniqueid = {alias}.uniqueid AND (q.server = {alias}.server OR {alias}.server = 'unknown')"
    return f"""
        LEFT JOIN LATERAL (
            SELECT min(q.at) FILTER (WHERE q.event = 'QueueCallerJoin') AS joined_at,
                   min(q.at) FILTER (WHERE q.event = 'AgentConnect') AS answered_at,
                   min(q.at) FILTER (WHERE q.event = 'QueueCallerAbandon') AS abandoned_at,
                   max(q.at) FILTER (WHERE q.event = 'QueueCallerLeave') AS left_at,
                   (array_agg(q.talk_time ORDER BY q.at) FILTER (WHERE q.event = 'AgentComplete'))[1] AS talk_time
            FROM queue_events q WHERE {match}) o ON true"""


_OUTCOME_COLUMNS = "o.joined_at, o.answered_at, o.abandoned_at, o.left_at, o.talk_time"
#: the support-call columns a contact fact is made of
_CALL_COLUMNS = ("server", "uniqueid", "decided_at", "tenant_id", "requester", "caller_e164", "action", "reason")


def _with_outcomes(calls: str, many: bool) -> str:
    """The rows of ``calls`` (a query giving :data:`_CALL_COLUMNS`, one row per channel) with their queue
    outcome (:func:`_queue_outcome`'s columns), oldest first. For ``many`` channels (a whole history) one join
    of the channels to every queue event, grouped per channel: the queue events are read and hashed once,
    where the lateral probes every month partition's index once per channel (46,000 channels and 26 month
    partitions of ``queue_events``: 2.5 s of the ``sla`` report with nothing kept, most of it in the probes);
    for a few (after kept cuts) the lateral, which reads only their events."""
    if not many:
        return f"""
        SELECT f.*, {_OUTCOME_COLUMNS}
        FROM ({calls}) f {_queue_outcome("f")}
        ORDER BY f.decided_at, f.server, f.uniqueid
        """
    key = ("decided_at", "server", "uniqueid")  # (server, uniqueid) is unique: the others are the group's one value
    columns = ", ".join(f"f.{c}" if c in key else f"min(f.{c}) AS {c}" for c in _CALL_COLUMNS)
    return f"""
        SELECT {columns},
               min(q.at) FILTER (WHERE q.event = 'QueueCallerJoin') AS joined_at,
               min(q.at) FILTER (WHERE q.event = 'AgentConnect') AS answered_at,
               min(q.at) FILTER (WHERE q.event = 'QueueCallerAbandon') AS abandoned_at,
               max(q.at) FILTER (WHERE q.event = 'QueueCallerLeave') AS left_at,
               (array_agg(q.talk_time ORDER BY q.at) FILTER (WHERE q.event = 'AgentComplete'))[1] AS talk_time
        FROM ({calls}) f
        LEFT JOIN queue_events q ON q.uniqueid = f.uniqueid AND (q.server = f.server OR f.server = 'unknown')
        GROUP BY f.decided_at, f.server, f.uniqueid
        ORDER BY f.decided_at, f.server, f.uniqueid
        """


#: agi_failure_facts' statement (by sql/1740's cdr_legs_support_line)
AGI_FAILURE_LEGS = f"""
        SELECT f.server, f.uniqueid, f.start_at, f.caller_e164, {_OUTCOME_COLUMNS}
        FROM (
            SELECT DISTINCT ON (l.server, l.uniqueid) l.server, l.uniqueid, l.start_at, l.caller_e164
            FROM cdr_legs l
            WHERE l.dcontext = ANY($1::text[]) AND l.uniqueid <> '' AND l.caller_e164 = ANY($2::text[])
              AND l.caller_e164 IS NOT NULL AND l.start_at < $3
              AND NOT EXISTS (SELECT 1 FROM support_calls s WHERE s.uniqueid = l.uniqueid)
            ORDER BY l.server, l.uniqueid, l.start_at
        ) f {_queue_outcome("f")}
        WHERE $4::timestamptz IS NULL OR f.start_at >= $4
        ORDER BY f.start_at, f.server, f.uniqueid
        """

#: queue_member_endpoints' statement: a skip scan of sql/1740's cdr_legs_queue_members
QUEUE_MEMBERS = """
        WITH RECURSIVE e (endpoint) AS (
            (SELECT dst_endpoint FROM cdr_legs
              WHERE lastapp = 'Queue' AND disposition = 'ANSWERED' AND dst_endpoint <> ''
              ORDER BY dst_endpoint LIMIT 1)
            UNION ALL
            SELECT (SELECT l.dst_endpoint FROM cdr_legs l
                     WHERE l.lastapp = 'Queue' AND l.disposition = 'ANSWERED' AND l.dst_endpoint <> ''
                       AND l.dst_endpoint > e.endpoint
                     ORDER BY l.dst_endpoint LIMIT 1)
            FROM e WHERE e.endpoint IS NOT NULL
        )
        SELECT endpoint FROM e WHERE endpoint IS NOT NULL
        """

#: staff_calls' statement (by sql/1740's cdr_legs_staff_answered)
STAFF_CALLS = """
        SELECT server, fingerprint, src_endpoint, dst, dialled_e164, start_at, answer_at, end_at, billsec
        FROM cdr_legs
        WHERE src_endpoint = ANY($1::text[]) AND src_endpoint IS NOT NULL AND disposition = 'ANSWERED' AND start_at < $2
          AND ($3::timestamptz IS NULL OR COALESCE(answer_at, end_at - billsec * interval '1 second') >= $3)
          AND start_at >= COALESCE($4::timestamptz, '-infinity')
        ORDER BY start_at, fingerprint
        """


def _outcome(r: asyncpg.Record) -> str:
    if r["answered_at"] is not None:
        return "answered"
    if r["abandoned_at"] is not None or (r["left_at"] is not None and r["joined_at"] is not None):
        return "abandoned"
    return "waiting" if r["joined_at"] is not None else "not-queued"


def _talk(r: asyncpg.Record) -> int:
    return int(r["talk_time"]) if r["answered_at"] is not None and r["talk_time"] is not None else 0


async def contact_facts(
    conn: asyncpg.Connection, before: datetime, tenants: Iterable[str] | None, since: datetime | None = None
) -> list[ContactFact]:
    """Authorised support calls of the given tenants (None: all) decided before ``before`` (and, with
    ``since``, not before it: the contact's first run, as below), oldest first.

    A channel is one contact however many times it ran the support AGI (a caller sent back to the support
    line runs it again on the same channel, and every run is stored): its first authorised run opens it, and
    the channel's queue events give its outcome once, so its talk time is not counted twice. The first run
    of any tenant's: a channel whose first run identified another tenant is that tenant's contact, whichever
    tenants a report asks about (:func:`contact_facts_from`)."""
    if tenants is not None:
        return await contact_facts_from(conn, before, dict.fromkeys(tenants, since))
    # with ``since``: the runs from then on of channels without an earlier run (the probe is an index look-up
    # per run; the whole history is not sorted for its first runs)
    recent = (
        """AND c.decided_at >= $3 AND NOT EXISTS (
                   SELECT 1 FROM support_calls e
                   WHERE e.uniqueid = c.uniqueid AND e.server = c.server AND e.decided_at < $3
                     AND e.authorised AND e.tenant_id IS NOT NULL
                     AND ($2::text[] IS NULL OR e.tenant_id = ANY($2::text[])))"""
        if since is not None
        else ""
    )
    calls = ", ".join(f"s.{c}" for c in _CALL_COLUMNS)
    first_runs = f"""
        SELECT {calls}
        FROM (
            SELECT DISTINCT ON (c.server, c.uniqueid) c.*
            FROM support_calls c
            WHERE c.authorised AND c.tenant_id IS NOT NULL AND c.decided_at < $1
              AND ($2::text[] IS NULL OR c.tenant_id = ANY($2::text[])) {recent}
            ORDER BY c.server, c.uniqueid, c.decided_at
        ) s"""
    rows = await conn.fetch(
        _with_outcomes(first_runs, True),  # every tenant's channels: many
        before,
        None if tenants is None else list(tenants),
        *([since] if since is not None else []),
    )
    return [_contact_fact(r) for r in rows]


#: :func:`contact_facts_from` reads every channel in one pass when more tenants than this are read whole
WHOLE_CHANNELS = 50


async def contact_facts_from(
    conn: asyncpg.Connection, before: datetime, since: Mapping[str, datetime | None]
) -> list[ContactFact]:
    """The contacts of the tenants of ``since`` (its keys) decided before ``before``, each from its own instant
    on (None: its whole history), oldest first: a channel's contact is its first authorised run of any
    tenant, kept when that run's tenant is one of these and the run is not before its instant. Only the
    channels with a run of theirs from their instants on are read (few after kept cuts)."""
    tenants = list(since)
    many = sum(v is None for v in since.values()) > WHOLE_CHANNELS
    # every run of the channels with a run of theirs since their instants, by index (few after kept cuts, or
    # for a few tenants); every channel when many tenants are read whole (one pass over the runs is cheaper)
    channels = (
        ""
        if all(v is None for v in since.values()) and len(tenants) > WHOLE_CHANNELS
        else """AND c.uniqueid = ANY(ARRAY(
                   SELECT r.uniqueid FROM support_calls r JOIN k ON r.tenant_id = k.tenant
                   WHERE r.authorised AND r.decided_at < $1 AND r.decided_at >= COALESCE(k.since, '-infinity')))"""
    )
    calls = ", ".join(f"s.{c}" for c in _CALL_COLUMNS)
    first_runs = f"""
        SELECT {calls}
        FROM (
            SELECT DISTINCT ON (c.server, c.uniqueid) c.*
            FROM support_calls c
            WHERE c.authorised AND c.tenant_id IS NOT NULL AND c.decided_at < $1
              {channels}
            ORDER BY c.server, c.uniqueid, c.decided_at
        ) s JOIN k ON s.tenant_id = k.tenant
        WHERE s.decided_at >= COALESCE(k.since, '-infinity')"""
    rows = await conn.fetch(
        f"""
        WITH k AS (SELECT * FROM unnest($2::text[], $3::timestamptz[]) AS k(tenant, since))
        {_with_outcomes(first_runs, many)}
        """,
        before,
        tenants,
        [since[t] for t in tenants],
    )
    return [_contact_fact(r) for r in rows]


def _contact_fact(r: asyncpg.Record) -> ContactFact:
    contact = SupportContact(
        key=f"{r['server']}/{r['uniqueid']}",
        tenant=r["tenant_id"],
        requester=r["requester"],
        caller=r["caller_e164"],
        at=r["decided_at"],
        why=why(r["action"], r["reason"], _outcome(r)),
        answered_at=r["answered_at"],
    )
    return ContactFact(contact, _talk(r), r["server"])


async def agi_failure_facts(
    conn: asyncpg.Connection,
    before: datetime,
    contexts: Sequence[str],
    requesters: Mapping[str, tuple[str, str]],
    since: datetime | None = None,
) -> list[ContactFact]:
    """Calls of requester numbers (``requesters``: E.164 → (tenant, requester name)) that reached the support
    line's dialplan ``contexts`` but have no support-call record: the AGI failed (pbx-sla's AGI server down
    or unreachable) and the dialplan's failure route took them. Found by their CDR legs (the caller's
    channel, first leg), with their queue outcome; oldest first; with ``since``, those whose first leg started
    at or after it."""
    if not contexts or not requesters:
        return []
    rows = await conn.fetch(
        AGI_FAILURE_LEGS,
        list(contexts),
        sorted(requesters),
        before,
        since,
    )
    out = []
    for r in rows:
        tenant, requester = requesters[r["caller_e164"]]
        contact = SupportContact(
            key=f"{r['server']}/{r['uniqueid']}",
            tenant=tenant,
            requester=requester,
            caller=r["caller_e164"],
            at=r["start_at"],
            why=why("fallback", "agi-failure", _outcome(r)),
            answered_at=r["answered_at"],
        )
        out.append(ContactFact(contact, _talk(r), r["server"]))
    return out


async def queue_member_endpoints(conn: asyncpg.Connection) -> set[str]:
    """Endpoints that answered a call a queue offered them (CDR legs of the Queue application): the queues'
    members as the PBX itself reports them. The distinct endpoints of sql/1740's partial index, one after the
    other (one index descent per endpoint and month partition, not a read of every answered queue leg)."""
    rows = await conn.fetch(QUEUE_MEMBERS)
    return {r["endpoint"] for r in rows}


async def staff_calls(
    conn: asyncpg.Connection,
    endpoints: Iterable[str],
    before: datetime,
    since: datetime | None = None,
    started_from: datetime | None = None,
) -> list[StaffCall]:
    """Answered CDR legs placed by ``endpoints`` that started before ``before``, oldest first; with ``since``,
    only those answered (:attr:`StaffCall.answered_at`) at or after it; with ``started_from``, only those
    that started at or after it (the caller knows no leg answered from ``since`` on started earlier: only the
    month partitions from then on are read)."""
    rows = await conn.fetch(
        STAFF_CALLS,
        sorted(set(endpoints)),
        before,
        since,
        started_from,
    )
    out = []
    for r in rows:
        answered = r["answer_at"]
        if answered is None:  # legs without an answer time: the end minus the billable seconds
            answered = r["end_at"] - timedelta(seconds=r["billsec"])
        out.append(
            StaffCall(
                key=f"{r['server']}/{r['fingerprint']}",
                endpoint=r["src_endpoint"],
                dialled=r["dialled_e164"] or r["dst"],
                answered_at=answered,
                billsec=int(r["billsec"]),
                start_at=r["start_at"],
            )
        )
    return out
