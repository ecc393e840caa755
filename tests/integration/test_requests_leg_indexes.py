"""The support-request reads of cdr_legs by sql/1740's partial indexes (pbx_sla/store/requests.py:
``queue_member_endpoints``, ``agi_failure_facts``, ``staff_calls``) give what the statements they replace gave
(kept here verbatim), on PostgreSQL: hand-made legs over several month partitions and the DEFAULT partition,
with empty and NULL endpoints, numbers and channel ids, unanswered and other-application legs, legs with and
without a support-call record, and rows retention pseudonymised; and the planner can use the indexes.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pbx_sla.store import requests as store_requests

OLD_QUEUE_MEMBERS = """
SELECT DISTINCT dst_endpoint FROM cdr_legs
WHERE lastapp = 'Queue' AND disposition = 'ANSWERED' AND dst_endpoint IS NOT NULL AND dst_endpoint <> ''
"""
OLD_AGI_LEGS = """
SELECT f.server, f.uniqueid, f.start_at, f.caller_e164
FROM (
    SELECT DISTINCT ON (l.server, l.uniqueid) l.server, l.uniqueid, l.start_at, l.caller_e164
    FROM cdr_legs l
    WHERE l.dcontext = ANY($1::text[]) AND l.uniqueid <> '' AND l.caller_e164 = ANY($2::text[])
      AND l.start_at < $3
      AND NOT EXISTS (SELECT 1 FROM support_calls s WHERE s.uniqueid = l.uniqueid)
    ORDER BY l.server, l.uniqueid, l.start_at
) f
WHERE $4::timestamptz IS NULL OR f.start_at >= $4
ORDER BY f.start_at, f.server, f.uniqueid
"""
OLD_STAFF_CALLS = """
SELECT server, fingerprint, src_endpoint, dst, dialled_e164, start_at, answer_at, end_at, billsec
FROM cdr_legs
WHERE src_endpoint = ANY($1::text[]) AND disposition = 'ANSWERED' AND start_at < $2
  AND ($3::timestamptz IS NULL OR COALESCE(answer_at, end_at - billsec * interval '1 second') >= $3)
  AND start_at >= COALESCE($4::timestamptz, '-infinity')
ORDER BY start_at, fingerprint
"""

ENDPOINTS = ["agent1", "agent2", "Agent1", "staff", "trunk-a", "", None, "agent 3", "ägent"]
CONTEXTS = ["support-line", "support-line-classic", "staff", "from-trunk", ""]
NUMBERS = ["+420777000001", "+420603000003", "+420600111222", None, ""]
APPS = ["Queue", "Dial", "queue", "AGI", ""]
DISPOSITIONS = ["ANSWERED", "ANSWERED", "NO ANSWER", "BUSY", "FAILED"]
START = datetime(2026, 5, 1, tzinfo=UTC)


async def store_legs(db, n: int, seed: int) -> None:
    """``n`` random legs from May to mid-August 2026 (month partitions for May-July only: August's
    go to the DEFAULT partition), some channels with several legs, then a tenth of them pseudonymised as retention
    does (numbers and endpoints replaced, the row marked)."""
    rng = random.Random(seed)
    await db.execute("SELECT history_partitions_ensure('cdr_legs', $1, $2)", START, START + timedelta(days=80))
    rows = []
    for i in range(n):
        start = START + timedelta(seconds=rng.randrange(0, 110 * 86400))
        billsec = rng.choice([0, 10, 25, 300])
        answer = start + timedelta(seconds=5) if rng.random() < 0.8 else None
        rows.append(
            (
                rng.choice(["pbx1", "pbx2"]),
                uuid.UUID(int=rng.getrandbits(128)),
                f"c{i}",
                rng.choice(CONTEXTS),
                rng.choice(APPS),
                start,
                answer,
                start + timedelta(seconds=billsec + 7),
                billsec,
                rng.choice(DISPOSITIONS),
                rng.choice(["", f"u{rng.randrange(n // 2)}", f"u{rng.randrange(n // 2)}"]),
                rng.choice(NUMBERS),
                rng.choice(["+420221000111", None]),
                rng.choice(ENDPOINTS),
                rng.choice(ENDPOINTS),
            )
        )
    await db.executemany(
        """INSERT INTO cdr_legs (server, fingerprint, call_key, source, dst, dcontext, lastapp, start_at, answer_at,
                                 end_at, duration, billsec, disposition, uniqueid, caller_e164, dialled_e164,
                                 src_endpoint, dst_endpoint)
           VALUES ($1, $2, $3, 'csv', '101', $4, $5, $6, $7, $8, $9 + 7, $9, $10, $11, $12, $13, $14, $15)""",
        rows,
    )
    # a support-call record for some channels: their support-line legs are no AGI failure
    await db.execute(
        """INSERT INTO support_calls (server, uniqueid, decided_at, authorised, in_hours, action, reason)
           SELECT 'pbx1', uniqueid, min(start_at), true, true, 'queue', 'authorised-number' FROM cdr_legs
            WHERE uniqueid <> '' AND hashtext(uniqueid) % 3 = 0 GROUP BY uniqueid"""
    )
    await db.execute(
        """UPDATE cdr_legs SET caller_e164 = pseudonym(caller_e164), src_endpoint = pseudonym(src_endpoint),
                               dst_endpoint = pseudonym(dst_endpoint), pseudonymised = true
            WHERE hashtext(fingerprint::text) % 10 = 0"""
    )
    await db.execute("ANALYZE cdr_legs")


@pytest.mark.parametrize("seed", [1, 2])
async def test_same_results_as_the_whole_history_reads(db, seed):
    await store_legs(db, 3000, seed)
    assert await db.fetchval("SELECT count(*) FROM cdr_legs_default") > 0
    assert await db.fetchval("SELECT count(*) FROM cdr_legs WHERE pseudonymised") > 0

    old = {r[0] for r in await db.fetch(OLD_QUEUE_MEMBERS)}
    assert {"agent1", "Agent1", "agent 3", "ägent"} <= old
    assert await store_requests.queue_member_endpoints(db) == old

    pseudonymised = "SELECT DISTINCT src_endpoint FROM cdr_legs WHERE pseudonymised AND src_endpoint IS NOT NULL"
    pseudonyms = [r[0] for r in await db.fetch(pseudonymised)]
    numbers = [n for n in NUMBERS if n is not None]
    numbers += [r[0] for r in await db.fetch("SELECT DISTINCT caller_e164 FROM cdr_legs WHERE pseudonymised")]
    requesters = {n: ("acme", "Jana") for n in numbers if n is not None}
    contexts_list = [["support-line", "support-line-classic"], ["staff", ""], ["from-trunk"]]
    staffs = [["agent1", "staff"], ["Agent1", "", "trunk-a", *pseudonyms[:3]], ["nobody"]]
    instants = [None, START + timedelta(days=30), START + timedelta(days=95)]
    befores = [START + timedelta(days=200), START + timedelta(days=61), START + timedelta(days=100)]
    compared = {"agi": 0, "staff": 0}
    for before in befores:
        for since in instants:
            for contexts in contexts_list:
                want = [
                    (r["server"], r["uniqueid"], r["start_at"], r["caller_e164"])
                    for r in await db.fetch(OLD_AGI_LEGS, contexts, sorted(requesters), before, since)
                ]
                got = await store_requests.agi_failure_facts(db, before, contexts, requesters, since)
                assert [(f.contact.key, f.contact.at, f.contact.caller) for f in got] == [
                    (f"{s}/{u}", at, c) for s, u, at, c in want
                ]
                compared["agi"] += len(want)
            for staff in staffs:
                for started_from in (None, START + timedelta(days=20)):
                    want_rows = await db.fetch(OLD_STAFF_CALLS, sorted(set(staff)), before, since, started_from)
                    got_calls = await store_requests.staff_calls(db, staff, before, since, started_from)
                    assert [(c.key, c.endpoint, c.start_at, c.billsec) for c in got_calls] == [
                        (f"{r['server']}/{r['fingerprint']}", r["src_endpoint"], r["start_at"], r["billsec"])
                        for r in want_rows
                    ]
                    compared["staff"] += len(want_rows)
    assert compared["agi"] > 20 and compared["staff"] > 100, compared


async def test_no_queue_leg_no_member(db):
    await db.execute("SELECT history_partitions_ensure('cdr_legs', $1, $1)", START)
    assert await store_requests.queue_member_endpoints(db) == set()
    await db.execute(
        """INSERT INTO cdr_legs (server, fingerprint, call_key, source, lastapp, start_at, end_at, duration, billsec,
                                 disposition, dst_endpoint)
           VALUES ('pbx1', gen_random_uuid(), 'k1', 'csv', 'Queue', $1, $1, 0, 0, 'ANSWERED', ''),
                  ('pbx1', gen_random_uuid(), 'k2', 'csv', 'Queue', $1, $1, 0, 0, 'ANSWERED', NULL),
                  ('pbx1', gen_random_uuid(), 'k3', 'csv', 'Queue', $1, $1, 0, 0, 'NO ANSWER', 'agent9')""",
        START,
    )
    assert await store_requests.queue_member_endpoints(db) == set()


async def test_the_planner_can_use_the_indexes(db):
    """Each statement can be run by its sql/1740 index (sequential scans priced out): the index predicates are
    implied by the statements' conditions, also in a generic plan of the prepared statement."""
    await store_legs(db, 3000, 3)
    await db.execute("SET enable_seqscan = off")
    await db.execute("SET plan_cache_mode = force_generic_plan")
    statements = {
        # the partitions' indexes are named after their columns
        "_dst_endpoint_idx": (store_requests.QUEUE_MEMBERS, ""),
        "_dcontext_caller_e164_idx": (
            store_requests.AGI_FAILURE_LEGS,
            "('{support-line}', '{+420777000001}', '2026-07-01Z', NULL)",
        ),
        "_src_endpoint_start_at_idx": (store_requests.STAFF_CALLS, "('{agent1}', '2026-07-01Z', NULL, NULL)"),
    }
    for index, (sql, args) in statements.items():
        await db.execute(f"PREPARE q AS {sql}")
        plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN EXECUTE q{args}"))
        await db.execute("DEALLOCATE q")
        assert index in plan, plan
        assert "Seq Scan" not in plan, plan
