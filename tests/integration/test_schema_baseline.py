"""The baseline (sql/0001-0099 + sql/repeatable/) builds the schema the pre-squash history built.

The history (sql/0001-0040 up to commit 76ee29e: seven migrations rewriting the call computation) is not
kept as SQL; tests/schema_shape.py generated the description of what it built, once, into
schema_before_squash.json (the command is in that module's docstring). These tests describe a database
the current runner migrated and compare:

* the tables (columns, constraints, indexes), sequences, types, extensions and roles built by the baseline's
  versioned files alone (versions below 100): later issues add their own files (12NN, 13NN, ...) on top, and
  the baseline files themselves are never edited;
* every function and view whose repeatable file is still as it was at the squash (commit 2069022,
  checksums below): after the squash a rule is changed by editing its file, so an edited file's objects
  are no longer the history's and are not compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
from schema_shape import describe

from pbx_sla.store import migrate

EXPECTED = Path(__file__).with_name("schema_before_squash.json")
#: the versioned files of the baseline: 0001-0099
BASELINE_BELOW = 100
#: the sections the versioned files build, and those the repeatable files build
TABLE_SECTIONS = ("tables", "sequences", "types", "extensions", "roles")
RULE_SECTIONS = ("views", "functions")

#: sha256 of each sql/repeatable/ file when the squash landed (its body was compared with the history then)
SQUASHED_RULES = {
    "ami_coverage": "751f456fe7ca3dccc504735c85e4fd166f458a726ac08eb56c8eb32453ce726f",
    "billing_daily_calls": "c6954924d1cd65ffefd599593d896799d9102e79021b270fa8dc3a8908dee425",
    "billing_tier_usage_monthly": "721dfed88d1436457cc284326f37ad98896f4f846edfafd2eb94df801aa25e94",
    "calls_compute_sql": "11b29c2fda1ca2ed47bafe951f818a082ecb1882c6db9e8f99e6438e0afbc925",
    "calls_reattribute_unattributed": "7bf4c7940246d3f3782fa8d9105452c1bc02644d75bd1e99bcb2c690817e2807",
    "calls_refresh": "51903233a82d6be71f601f284f7ac30265069acc0335c8e03ff72528bcbeca10",
    "cdr_disposition_rank": "d9309f5f0dfabdf6945d81cd164bcb3ffda9aa84b7529528df8bbc469a68a4f2",
    "cdr_store_stage": "1fc997c9ddba38204d12d9b4dc4c114ee1ddb05f5057919257845f2de91a0a72",
    "support_call_outcomes": "8b44955ba9b71d664d1239d134c38ddb1359e9c2dba75942e3ebcf14da654705",
}

#: differences from the history that are intended: {(section, object): reason}. None: every baseline table,
#: index, constraint, sequence and role is as the history left it.
INTENDED: dict[tuple[str, str], str] = {}


def _differences(old: dict[str, Any], new: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    found = []
    for section in sections:
        before, after = old.get(section), new.get(section)
        if isinstance(before, dict) and isinstance(after, dict):
            for name in sorted(set(before) | set(after)):
                if before.get(name) != after.get(name) and (section, name) not in INTENDED:
                    found.append(f"{section} {name}:\n  history:  {before.get(name)}\n  baseline: {after.get(name)}")
        elif before != after:
            found.append(f"{section}:\n  history:  {before}\n  baseline: {after}")
    return found


def _rule_file(section: str, key: str) -> str:
    """The repeatable file that defines an object: it is named after it ('calls_refresh(p_servers ...)')."""
    return key.split("(")[0]


def _expected() -> dict[str, Any]:
    return json.loads(EXPECTED.read_text())


async def _shape(conn: asyncpg.Connection) -> dict[str, Any]:
    return json.loads(json.dumps(await describe(conn)))  # as the fixture holds it


async def test_the_baseline_files_build_the_historys_tables(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        baseline = [m for m in migrate.discover() if m.version < BASELINE_BELOW]
        await migrate.upgrade(conn, migrate.Schema(baseline, []))
        shape = await _shape(conn)
    finally:
        await conn.close()
    differences = _differences(_expected(), shape, TABLE_SECTIONS)
    assert not differences, "\n".join(differences)


async def test_the_rules_unchanged_since_the_squash_are_the_historys(db: asyncpg.Connection) -> None:
    """On the whole schema (every versioned file, every repeatable), the history's functions and views whose
    file is unchanged since the squash are identical: definition, signature, body hash, comment, grants."""
    current = {r.name: r.checksum for r in migrate.discover_repeatables()}
    unchanged = {name for name, checksum in SQUASHED_RULES.items() if current.get(name) == checksum}
    expected, shape = _expected(), await _shape(db)
    for section in RULE_SECTIONS:
        assert {_rule_file(section, k) for k in expected[section]} <= set(SQUASHED_RULES), section
        expected[section] = {k: v for k, v in expected[section].items() if _rule_file(section, k) in unchanged}
        shape[section] = {k: v for k, v in shape[section].items() if k in expected[section]}
    differences = _differences(expected, shape, RULE_SECTIONS)
    assert not differences, "\n".join(differences)


def test_the_comparison_sees_a_difference() -> None:
    """A changed function body, a missing index or an extra column each count."""
    old = _expected()
    changed = _expected()
    changed["functions"]["calls_refresh(p_servers text[], p_keys text[])"]["body_sha256"] = "0" * 64
    changed["tables"]["calls"]["indexes"].pop("calls_unattributed")
    changed["tables"]["cdr_legs"]["columns"].append({"name": "x", "type": "text", "default": None})
    assert [d.split(":")[0] for d in _differences(old, changed, TABLE_SECTIONS + RULE_SECTIONS)] == [
        "tables calls",
        "tables cdr_legs",
        "functions calls_refresh(p_servers text[], p_keys text[])",
    ]
