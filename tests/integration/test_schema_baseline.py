"""The baseline (sql/NNNN_*.sql + sql/repeatable/) builds the schema the pre-squash history built.

The history (sql/0001-0040 up to commit 76ee29e: seven migrations rewriting the call computation) is not
kept as SQL; tests/schema_shape.py generated the description of what it built, once, into
schema_before_squash.json (the command is in that module's docstring). This test describes a database
the current runner migrated and compares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
from schema_shape import describe

from pbx_sla.store import migrate

EXPECTED = Path(__file__).with_name("schema_before_squash.json")

#: differences from the history that are intended: {(section, object): reason}: the tables of later issues'
#: migrations (sql/12NN..17NN) and the rules they changed; every other table, index, constraint, view, function
#: body, role and grant is as the history left it.
INTENDED: dict[tuple[str, str], str] = {
    ("tables", "qos_legs"): "issue 14: voice quality per call leg, sql/1401_qos_legs.sql (after the squash)",
    ("functions", "calls_compute_sql()"): "issue 12: billable seconds count only ANSWERED legs",
}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    found = []
    for section in sorted(set(old) | set(new)):
        before, after = old.get(section), new.get(section)
        if isinstance(before, dict) and isinstance(after, dict):
            for name in sorted(set(before) | set(after)):
                if before.get(name) != after.get(name) and (section, name) not in INTENDED:
                    found.append(f"{section} {name}:\n  history:  {before.get(name)}\n  baseline: {after.get(name)}")
        elif before != after:
            found.append(f"{section}:\n  history:  {before}\n  baseline: {after}")
    return found


async def test_the_baseline_builds_what_the_history_built(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate.upgrade(conn)
        shape = json.loads(json.dumps(await describe(conn)))  # tuples and such as the fixture holds them
    finally:
        await conn.close()
    differences = _differences(json.loads(EXPECTED.read_text()), shape)
    assert not differences, "\n".join(differences)


def test_the_comparison_sees_a_difference() -> None:
    """A changed function body, a missing index or an extra column each count."""
    old = json.loads(EXPECTED.read_text())
    changed = json.loads(EXPECTED.read_text())
    changed["functions"]["calls_refresh(p_servers text[], p_keys text[])"]["body_sha256"] = "0" * 64
    changed["tables"]["calls"]["indexes"].pop("calls_unattributed")
    changed["tables"]["cdr_legs"]["columns"].append({"name": "x", "type": "text", "default": None})
    assert [d.split(":")[0] for d in _differences(old, changed)] == [
        "functions calls_refresh(p_servers text[], p_keys text[])",
        "tables calls",
        "tables cdr_legs",
    ]
