"""``pbx-sla retention apply``: personal fields of old rows replaced by pseudonyms, figures unchanged.

An old month (January) and a recent one (November, within the age) are imported; the test checks from
the rows it reads back, with the cutoff computed here, that every old row's personal fields are tokens
(SHA-256 with the database's key, computed here), that recent rows are untouched, and that `usage` for
both months, the rollup and every counted field of every call are identical before and after.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta

from test_cdr_import import TENANTS, run_cli, seed_catalogue
from test_usage import generate

from pbx_sla.config import Retention
from pbx_sla.features import retention as feature

LEGS_DAYS, SUPPORT_DAYS = 60, 30
DIDS = {v[3] for v in TENANTS.values()}
COUNTED = "server, call_key, tenant_id, day, disposition, billsec, legs, direction, trunk, attributed_by"


async def usage(capsys, period: str) -> dict:
    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "usage", "--period", period, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


async def test_retention_pseudonymises_old_rows_only_and_keeps_figures(db, cli_env, tmp_path, capsys):
    await seed_catalogue(db)
    rows = generate(2026, 1, 21, 60)[0] + generate(2026, 11, 22, 40)[0]
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    for uid, at in (("old", "2026-01-10 10:00Z"), ("new", datetime.now(UTC) - timedelta(days=1))):
        await db.execute(
            """INSERT INTO support_calls (server, uniqueid, decided_at, caller, caller_e164, caller_name, channel,
                                          requester, authorised, in_hours, action, reason)
               VALUES ('pbx1', $1, $2::text::timestamptz, '602111222', '+420602111222', 'Jana',
                       'PJSIP/trunk-a-1', 'jana', true, true, 'queue', 'x')""",
            uid,
            str(at),
        )
    (tmp_path / "pbx-sla.toml").write_text(
        f"[retention]\nlegs_days = {LEGS_DAYS}\nsupport_days = {SUPPORT_DAYS}\n", encoding="utf-8"
    )
    key = await db.fetchval("SELECT key FROM pseudonym_key")

    def token(value):
        if value in (None, ""):
            return value
        return "erased:" + hashlib.sha256(key + value.encode()).hexdigest()[:24]

    jan, nov = await usage(capsys, "2026-01"), await usage(capsys, "2026-11")
    rollup = [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")]
    calls = sorted(tuple(r) for r in await db.fetch(f"SELECT {COUNTED} FROM calls"))
    legs_before = {r["fingerprint"]: r for r in await db.fetch("SELECT * FROM cdr_legs")}
    cutoff = datetime.now(UTC) - timedelta(days=LEGS_DAYS)
    old = {f for f, r in legs_before.items() if r["start_at"] < cutoff}
    assert 0 < len(old) < len(legs_before)

    capsys.readouterr()
    assert await asyncio.to_thread(run_cli, "retention", "apply", "--dry-run", "--format", "json") == 0
    dry = {t["table"]: t for t in json.loads(capsys.readouterr().out)["tables"]}
    assert dry["cdr_legs"]["rows"] == len(old) and dry["support_calls"]["rows"] == 1
    assert dry["qos_legs"]["days"] is None and dry["qos_legs"]["rows"] == 0
    assert {r["fingerprint"]: r for r in await db.fetch("SELECT * FROM cdr_legs")} == legs_before

    assert await asyncio.to_thread(run_cli, "retention", "apply", "--format", "json") == 0
    done = {t["table"]: t["rows"] for t in json.loads(capsys.readouterr().out)["tables"]}
    old_calls = await db.fetchval("SELECT count(*) FROM calls WHERE started_at < $1", cutoff)
    assert done == {"cdr_legs": len(old), "calls": old_calls, "support_calls": 1, "queue_events": 0, "qos_legs": 0}

    legs_after = {r["fingerprint"]: r for r in await db.fetch("SELECT * FROM cdr_legs")}
    for f, before in legs_before.items():
        after = legs_after[f]
        if f not in old:
            assert dict(after) == dict(before)
            continue
        for col in ("src", "clid", "caller_e164", "lastdata", "userfield"):
            assert after[col] == token(before[col]), col
        kept = before["dialled_e164"] in DIDS
        assert after["dialled_e164"] == (before["dialled_e164"] if kept else token(before["dialled_e164"]))
        assert after["dst"] == (before["dst"] if kept else token(before["dst"]))
        trunk = before["src_endpoint"] == "trunk-a"  # the only catalogue trunk
        assert after["channel"] == (before["channel"] if trunk else token(before["channel"]))
        assert after["dst_endpoint"] == token(before["dst_endpoint"])  # the agent's phone
    support = {r["uniqueid"]: r for r in await db.fetch("SELECT * FROM support_calls")}
    assert support["old"]["caller"] == token("602111222") and support["old"]["caller_name"] == token("Jana")
    assert support["old"]["requester"] == token("jana") and support["old"]["caller_e164"] == token("+420602111222")
    assert support["new"]["caller_name"] == "Jana"

    # figures unchanged
    assert await usage(capsys, "2026-01") == jan and await usage(capsys, "2026-11") == nov
    assert [tuple(r) for r in await db.fetch("SELECT * FROM usage_daily ORDER BY tenant_id, day")] == rollup
    assert sorted(tuple(r) for r in await db.fetch(f"SELECT {COUNTED} FROM calls")) == calls

    # a second run (the daemon's task) finds nothing left
    again = await feature.run_once(cli_env["PBX_SLA_DSN"], Retention(legs_days=LEGS_DAYS, support_days=SUPPORT_DAYS))
    assert all(t["rows"] == 0 for t in again)


async def test_retention_apply_without_keys_is_a_configuration_error(db, cli_env, capsys):
    assert await asyncio.to_thread(run_cli, "retention", "apply") == 2
    assert "no [retention] legs_days" in capsys.readouterr().err
