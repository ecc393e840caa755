"""The classic AGI script as Asterisk runs it: a process per call, AGI on stdin/stdout. Same decisions
as the FastAGI server; records stored in PostgreSQL, or spooled while it is away and stored by a later
call; the PIN path and hostile caller text."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tomllib
from pathlib import Path

import pytest
from polling import eventually

from pbx_sla.domain.catalogue_document import to_document
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.pins import seal_pins
from pbx_sla.store.catalogue import apply_catalogue
from pbx_sla.store.catalogue_cache import dsn_fingerprint

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "agi_scripts" / "support_route.py"
#: the console script pip installed beside this Python (pyproject [project.scripts])
ENTRY_POINT = Path(sys.executable).with_name("pbx-sla-support-route")
EXAMPLE = ROOT / "examples" / "contracts.toml"
ACME_DID = "+420221000111"


def write_cache(data_dir: Path, dsn: str, *, bound: bool = True) -> None:
    cat = seal_pins(parse_catalogue(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")), "x"), {})
    data_dir.mkdir(parents=True, exist_ok=True)
    database = {"dsn": dsn_fingerprint(dsn)} if bound else None
    (data_dir / "catalogue-cache.json").write_text(
        json.dumps({"revision": 1, "sha256": "x", "database": database, "document": to_document(cat)}),
        encoding="utf-8",
    )


def head(caller: str, dialled: str, uniqueid: str, name: str = "Jana") -> bytes:
    lines = ["agi_request: support_route.py", "agi_channel: PJSIP/caller-1", f"agi_callerid: {caller}",
             f"agi_calleridname: {name}", f"agi_uniqueid: {uniqueid}", "agi_extension: s", f"agi_arg_1: {dialled}",
             "agi_arg_2: pbx1"]  # fmt: skip
    return ("\n".join(lines) + "\n\n").encode()


async def run_script(env: dict[str, str], headers: bytes, answer=None, command=None) -> tuple[list[str], int]:
    proc = await asyncio.create_subprocess_exec(
        *(command or [sys.executable, str(SCRIPT)]), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdin and proc.stdout
    proc.stdin.write(headers)
    await proc.stdin.drain()
    commands = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        if not line:
            break
        cmd = line.decode().rstrip("\n")
        commands.append(cmd)
        reply = answer(cmd) if answer else None
        if reply is None:
            reply = "200 result=1 (1732.0)" if cmd.startswith("GET FULL VARIABLE") else "200 result=1"
        try:
            proc.stdin.write(reply.encode() + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            break
    code = await asyncio.wait_for(proc.wait(), 30)
    return commands, code


def variables(commands: list[str]) -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from test_agi_protocol import parse_args  # the independent port of res_agi's argument parser

    out = {}
    for c in commands:
        a = parse_args(c)
        if a[:2] == ["SET", "VARIABLE"]:
            assert len(a) == 4, c
            out[a[2]] = a[3]
    return out


@pytest.fixture
async def env(db, db_dsn, tmp_path):
    cat = parse_catalogue(tomllib.loads(EXAMPLE.read_text(encoding="utf-8")), "x")
    await apply_catalogue(db, cat, "x")
    data_dir = tmp_path / "data"
    write_cache(data_dir, db_dsn)
    e = {k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_")}
    e.update(PBX_SLA_DATA_DIR=str(data_dir), PBX_SLA_DSN=db_dsn, PBX_SLA_AGI_NO_DETACH="1",
             PBX_SLA_CONFIG=str(tmp_path / "none.toml"))  # fmt: skip
    (tmp_path / "none.toml").write_text("", encoding="utf-8")
    return e


async def test_authorised_caller(env, db):
    cmds, code = await run_script(env, head("777000001", ACME_DID, "c1"))
    assert code == 0
    v = variables(cmds)
    assert (v["SUPPORT_TENANT"], v["SUPPORT_ACTION"], v["SUPPORT_REASON"], v["SUPPORT_AUTHORISED"]) in {
        ("acme", "queue", "authorised-number", "1")}  # fmt: skip
    assert v["SUPPORT_QUEUE"] == "support-premium" and v["QUEUE_PRIO"] == "5"
    row = await db.fetchrow("SELECT * FROM support_calls WHERE uniqueid = 'c1'")
    assert (row["server"], row["linkedid"], row["tenant_id"], row["via"], row["action"]) == (
        "pbx1", "1732.0", "acme", "classic", "queue")  # fmt: skip


async def test_the_installed_entry_point_routes_the_same(env, db):
    """``pbx-sla-support-route`` (what a wheel installs) is the same script: same variables, same record."""
    assert ENTRY_POINT.is_file(), "pip install -e . installs the console script"
    by_file, _ = await run_script(env, head("777000001", ACME_DID, "e1"))
    cmds, code = await run_script(env, head("777000001", ACME_DID, "e2"), command=[str(ENTRY_POINT)])
    assert code == 0
    assert variables(cmds) == variables(by_file)
    assert variables(cmds)["SUPPORT_REASON"] == "authorised-number"
    rows = await db.fetch("SELECT uniqueid, tenant_id, via, action FROM support_calls ORDER BY uniqueid")
    assert [tuple(r) for r in rows] == [("e1", "acme", "classic", "queue"), ("e2", "acme", "classic", "queue")]


async def test_pin_path_and_lock_file(env, db):
    def wrong(cmd):
        return "200 result=1111" if cmd.startswith("GET DATA") else None

    cmds, _ = await run_script(env, head("+420600111222", ACME_DID, "p1"), wrong)
    assert sum(c.startswith("GET DATA") for c in cmds) == 3
    assert variables(cmds)["SUPPORT_REASON"] == "pin-failed"
    path = Path(env["PBX_SLA_DATA_DIR"]) / "pin-failures.json"
    failures = json.loads(path.read_text())
    assert len(failures["caller:+420600111222"]) == 3 and "1111" not in json.dumps(failures)
    assert len(failures["tenant:acme"]) == 3 and len(failures["global"]) == 3
    assert path.stat().st_mode & 0o777 == 0o600

    def right(cmd):
        return "200 result=4711" if cmd.startswith("GET DATA") else None

    cmds, _ = await run_script(env, head("+420600111222", ACME_DID, "p2"), right)
    assert variables(cmds)["SUPPORT_REASON"] == "pin-ok"
    row = await db.fetchrow("SELECT requester, pin_attempts FROM support_calls WHERE uniqueid = 'p2'")
    assert (row["requester"], row["pin_attempts"]) == ("Petr Svoboda", 1)
    # the right PIN cleared the caller's count and gave its guess back to the tenant and global counts
    failures = json.loads(path.read_text())
    assert "caller:+420600111222" not in failures and len(failures["tenant:acme"]) == 3


async def test_classic_limits_are_shared_per_tenant_and_by_unnumbered_callers(env, db, tmp_path):
    """Same semantics as the daemon: a new caller number per call still spends the tenant's guesses, and
    anonymous / restricted / empty caller ids are one caller. Failed before: each got its own count."""
    config = tmp_path / "limits.toml"
    config.write_text("[agi]\npin_caller_limit = 2\npin_tenant_limit = 4\n")
    env = {**env, "PBX_SLA_CONFIG": str(config)}

    def wrong(cmd):
        return "200 result=1111" if cmd.startswith("GET DATA") else None

    asked = []
    for i, caller in enumerate(["anonymous", "restricted", "", "+420600000001", "+420600000002"]):
        cmds, _ = await run_script(env, head(caller, ACME_DID, f"t{i}"), wrong)
        asked.append(sum(c.startswith("GET DATA") for c in cmds))
    # the unnumbered callers share 2 guesses; two numbered callers then fill the tenant's 4 and the last is
    # not asked at all
    assert asked == [2, 0, 0, 2, 0]


async def test_hangup_during_pin(env, db):
    cmds, code = await run_script(env, head("+420600111222", ACME_DID, "h1"),
                                  lambda c: "HANGUP" if c.startswith("GET DATA") else None)  # fmt: skip
    assert code == 0 and variables(cmds) == {}
    assert await db.fetchval("SELECT action FROM support_calls WHERE uniqueid = 'h1'") == "hangup"


async def test_hostile_caller_text(env, db):
    raw = head("+420777000001", ACME_DID, "x1", name='Evil" \\ "x').replace(b"Evil", b"Ev\xffil")
    cmds, code = await run_script(env, raw)
    assert code == 0 and set(variables(cmds)) >= {"SUPPORT_TENANT", "SUPPORT_REASON"}
    assert "\ufffd" in await db.fetchval("SELECT caller_name FROM support_calls WHERE uniqueid = 'x1'")


@pytest.mark.parametrize("other", ["postgresql://postgres@127.0.0.1:5432/another_db", None])
async def test_cache_of_another_database_is_fallback(env, other):
    # issue 12: the classic script trusted any cache left in the data directory
    data_dir = Path(env["PBX_SLA_DATA_DIR"])
    if other is None:
        write_cache(data_dir, "", bound=False)  # a cache naming no database (older versions wrote these)
    else:
        write_cache(data_dir, other)
    cmds, _ = await run_script(env, head("777000001", ACME_DID, "o1"))
    assert (variables(cmds)["SUPPORT_ACTION"], variables(cmds)["SUPPORT_REASON"]) == ("fallback", "no-catalogue")


async def test_no_cache_is_fallback(env, tmp_path):
    (Path(env["PBX_SLA_DATA_DIR"]) / "catalogue-cache.json").unlink()
    cmds, _ = await run_script(env, head("777000001", ACME_DID, "f1"))
    assert variables(cmds)["SUPPORT_ACTION"] == "fallback"


async def test_database_down_spools_then_a_later_call_stores_both(env, db):
    down = {**env, "PBX_SLA_DSN": "postgresql://nobody@127.0.0.1:1/none"}
    write_cache(Path(env["PBX_SLA_DATA_DIR"]), down["PBX_SLA_DSN"])  # the cache of that (unreachable) database
    cmds, code = await run_script(down, head("777000001", ACME_DID, "s1"))
    assert code == 0 and variables(cmds)["SUPPORT_ACTION"] == "queue"  # same decision without the database
    spool = Path(env["PBX_SLA_DATA_DIR"]) / "classic-agi-spool"
    assert len(list(spool.glob("*.json"))) == 1
    assert await db.fetchval("SELECT count(*) FROM support_calls") == 0
    await run_script(env, head("777000001", ACME_DID, "s2"))
    assert sorted(r["uniqueid"] for r in await db.fetch("SELECT uniqueid FROM support_calls")) == ["s1", "s2"]
    assert list(spool.glob("*.json")) == []


async def test_detached_store(env, db):
    e = {k: v for k, v in env.items() if k != "PBX_SLA_AGI_NO_DETACH"}
    cmds, code = await run_script(e, head("777000001", ACME_DID, "d1"))
    assert code == 0 and variables(cmds)["SUPPORT_ACTION"] == "queue"
    await eventually(lambda: db.fetchval("SELECT count(*) FROM support_calls WHERE uniqueid = 'd1'"), interval=0.1)
    assert await db.fetchval("SELECT via FROM support_calls WHERE uniqueid = 'd1'") == "classic"
