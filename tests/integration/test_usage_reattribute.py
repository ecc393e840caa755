"""``contracts apply`` re-attributes the calls stored without a tenant once the catalogue names them
(a dry run does not), and ``usage`` then shows them under the tenant."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_cdr_import import csv_line, fields, run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"


def usage_json(capsys, period: str) -> dict:
    capsys.readouterr()
    assert run_cli("usage", "--period", period, "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


async def test_contracts_apply_reattributes_unattributed_calls(db, cli_env, tmp_path, capsys):
    full = EXAMPLE.read_text(encoding="utf-8")
    assert 'dids = ["+420221000111"]' in full
    without_did = tmp_path / "without-did.toml"
    without_did.write_text(full.replace('dids = ["+420221000111"]', "dids = []"), encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "contracts", "apply", str(without_did)) == 0

    t0 = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)
    rows = [fields(t0 + timedelta(minutes=i), dst="221000111", uid=f"{i}.1", linked=f"{i}.1") for i in range(3)]
    rows[2] = fields(t0 + timedelta(minutes=2), dst="221000111", uid="2.1", linked="2.1", disp="BUSY")
    path = tmp_path / "Master.csv"
    path.write_text("".join(csv_line(r) for r in rows), encoding="utf-8")
    assert await asyncio.to_thread(run_cli, "cdr", "import", str(path), "--server", "pbx1") == 0
    assert await db.fetchval("SELECT count(*) FROM calls WHERE tenant_id IS NULL") == 3

    def by_tenant(report: dict) -> dict:
        return {t["tenant"]: (t["calls"], t["answered"]) for t in report["tenants"]}

    before = await asyncio.to_thread(usage_json, capsys, "2026-03")
    assert by_tenant(before)[None] == (3, 2) and by_tenant(before)["acme"] == (0, 0)

    # a dry run of the full catalogue changes nothing, calls included
    assert await asyncio.to_thread(run_cli, "contracts", "apply", str(EXAMPLE), "--dry-run") == 0
    assert await db.fetchval("SELECT count(*) FROM calls WHERE tenant_id IS NULL") == 3

    assert await asyncio.to_thread(run_cli, "contracts", "apply", str(EXAMPLE)) == 0
    calls = await db.fetch("SELECT tenant_id, attributed_by FROM calls")
    assert [tuple(c) for c in calls] == [("acme", "did")] * 3
    after = await asyncio.to_thread(usage_json, capsys, "2026-03")
    assert by_tenant(after)["acme"] == (3, 2)
    assert by_tenant(after).get(None, (0, 0)) == (0, 0)
