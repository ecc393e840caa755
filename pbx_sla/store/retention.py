"""``pbx-sla retention apply``: personal fields of rows past the retention age replaced by pseudonyms.

Rows are kept and only the fields that say *who* (numbers, caller IDs, names, phone endpoints, free text)
are replaced with ``pseudonym()`` (the same tokens as ``erase``), so every counted field and the
``usage_daily`` rollup stay as they were and reports of old periods do not move. Kept as they are: the
catalogue's DIDs (a company's number, used to attribute calls) and the catalogue's trunks' endpoints and
channels (a carrier, used for direction, trunk and voice-quality figures). Each table is done in one
statement under the call locks (calls and legs are recomputed together by the writers) and marked
``pseudonymised`` so the next run skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from pbx_sla.config import Retention
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


async def apply_retention(
    conn: asyncpg.Connection, policy: Retention, now: datetime, *, dry_run: bool = False
) -> list[dict[str, Any]]:
    """Pseudonymise every unmarked row older than its table's age; per table: cutoff and rows (to be) done."""
    report: list[dict[str, Any]] = []
    async with conn.transaction():
        if not dry_run:
            servers = [r["server"] for r in await conn.fetch("SELECT DISTINCT server FROM calls")]
            await lock_calls(conn, servers)
        for rule in RULES:
            days = getattr(policy, rule.days_key)
            if days is None:
                report.append({"table": rule.table, "days": None, "before": None, "rows": 0})
                continue
            cutoff = now - timedelta(days=days)
            where = f"WHERE NOT t.pseudonymised AND t.{rule.date_column} < $1"
            if dry_run:
                rows = await conn.fetchval(f"SELECT count(*) FROM {rule.table} t {where}", cutoff)
            else:
                status = await conn.execute(
                    f"UPDATE {rule.table} AS t SET {rule.sets}, pseudonymised = true {where}", cutoff
                )
                rows = int(status.rsplit(" ", 1)[1])
            report.append({"table": rule.table, "days": days, "before": cutoff.isoformat(), "rows": rows})
    return report
