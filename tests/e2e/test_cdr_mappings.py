"""End to end: cdr_manager.conf's ``[mappings]`` spelt another way (``linkedid => Linkedid``, ``sequence =>
sequence``) still group a real call's legs into one call; without the linkedid mapping the daemon warns once.

The shipped asterisk_conf/ is rendered into a temporary directory with only cdr_manager.conf changed
(``scripts/asterisk-sandbox render``, the sandbox's one substitution step), that file is put in the running
sandbox and cdr_manager reloaded; the shipped file is put back and reloaded at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import eventually_sync

from . import harness
from .daemon import Daemon, daemon_env, pbx_sla, wait_for, write_config

pytestmark = pytest.mark.e2e

ACME_DID = "+420221000111"
ACME_REQUESTER = "+420777000001"
SHIPPED = harness.REPO / "asterisk_conf" / "cdr_manager.conf"


def render_variant(tmp: Path, mappings: str) -> Path:
    """asterisk_conf/ rendered as the sandbox renders it, with cdr_manager.conf's [mappings] replaced."""
    source = tmp / "conf-src"
    shutil.copytree(harness.REPO / "asterisk_conf", source)
    text = SHIPPED.read_text()
    (source / "cdr_manager.conf").write_text(text[: text.index("[mappings]")] + "[mappings]\n" + mappings)
    rendered = tmp / "conf-rendered"
    subprocess.run([str(harness.SANDBOX), "render", str(source), str(rendered)], check=True, capture_output=True)
    return rendered / "cdr_manager.conf"


@pytest.fixture
def cdr_manager_conf(asterisk: harness.AsteriskTarget) -> Iterator[Path]:
    """The running sandbox's cdr_manager.conf; the shipped one (rendered) is back in place afterwards."""
    if not asterisk.sandbox:
        pytest.skip("changes the Asterisk configuration: sandbox only")
    s = harness.sandbox_settings()
    live = Path(s["ROOT"] + s["CONF_DIR"]) / "cdr_manager.conf"
    original = live.read_bytes()
    try:
        yield live
    finally:
        live.write_bytes(original)
        asterisk.cli("module reload cdr_manager.so")


def install(asterisk: harness.AsteriskTarget, live: Path, variant: Path) -> None:
    live.write_bytes(variant.read_bytes())
    asterisk.cli("module reload cdr_manager.so")


def queue_call(ami: harness.AmiClient, sipp: harness.Sipp) -> list[dict[str, str]]:
    """A requester of acme calls acme's DID; the support queue rings the agents, one answers: several legs.
    Returns the call's Cdr events (all of them: the caller's and the agents')."""
    mark = ami.mark()
    result = sipp.call(ACME_REQUESTER, ACME_DID, hold_seconds=3)
    assert result.ok, result.stderr[-3000:]
    ami.wait_event("Cdr", Destination=ACME_DID, Disposition="ANSWERED", start=mark, timeout=20)
    ami.wait_event("Hangup", start=mark, timeout=20)

    def cdrs() -> list[dict[str, str]]:
        return [e for e in ami.events[mark:] if e.get("Event") == "Cdr"]

    # Asterisk dispatches each leg's Cdr when that leg's record is finalised: the agents' can come after the
    # caller's and after the first Hangup. Wait for at least two, then until none has come for a second.
    eventually_sync(lambda: len(cdrs()) >= 2, timeout=20, what="the caller's Cdr and an agent's")
    seen = [len(cdrs()), time.monotonic()]

    def settled() -> bool:
        if len(cdrs()) != seen[0]:
            seen[:] = [len(cdrs()), time.monotonic()]
        return time.monotonic() - seen[1] >= 1.0

    eventually_sync(settled, timeout=20, what="no further Cdr for a second")
    return cdrs()


async def test_remapped_linkedid_header_groups_the_legs(
    asterisk: harness.AsteriskTarget,
    ami: harness.AmiClient,
    sipp: harness.Sipp,
    db,
    db_dsn: str,
    tmp_path: Path,
    cdr_manager_conf: Path,
) -> None:
    server = asterisk.server_name
    env = daemon_env(db_dsn, tmp_path / "data")
    applied = pbx_sla(env, "contracts", "apply", str(harness.REPO / "examples" / "contracts.toml"))
    assert applied.returncode == 0, applied.stderr
    config = write_config(tmp_path / "pbx-sla.toml", asterisk, agi_listen=f"{asterisk.agi_host}:{asterisk.agi_port}")
    for name in ("agent1", "agent2", "trunk-a"):
        sipp.agent(name).start() if name.startswith("agent") else sipp.trunk_peer(name).start()
    for name in ("agent1", "agent2", "trunk-a"):
        harness.wait_contact_status(ami, name, "Reachable", timeout=asterisk.qualify_frequency + 10)

    install(
        asterisk,
        cdr_manager_conf,
        render_variant(tmp_path / "remapped", "linkedid => Linkedid\nsequence => sequence\n"),
    )
    daemon = Daemon(config, env, tmp_path / "daemon.log").start()
    try:
        await wait_for(db, "SELECT resynced_at FROM ami_sessions WHERE server = $1", server)
        events = queue_call(ami, sipp)
        assert len(events) >= 2, events  # the caller's leg and at least one agent's
        # the remapping is live: Asterisk sends the headers as spelt in the mapping, not as shipped
        assert all("Linkedid" in e and "LinkedID" not in e and "sequence" in e for e in events), events
        linkedids = {e["Linkedid"] for e in events}
        assert len(linkedids) == 1  # Asterisk's own view: one call
        await wait_for(db, "SELECT count(*) >= $1 FROM cdr_legs WHERE server = $2", len(events), server)
    finally:
        assert daemon.stop() == 0, daemon.log_tail()

    (linkedid,) = linkedids
    legs = await db.fetch("SELECT call_key, linkedid, sequence FROM cdr_legs WHERE server = $1", server)
    assert len(legs) == len(events)
    assert {(r["call_key"], r["linkedid"]) for r in legs} == {(linkedid, linkedid)}
    assert sorted(r["sequence"] for r in legs) == sorted(int(e["sequence"]) for e in events)
    (call,) = await db.fetch("SELECT legs, tenant_id, disposition FROM calls WHERE server = $1", server)
    assert (call["legs"], call["tenant_id"], call["disposition"]) == (len(events), "acme", "ANSWERED")
    assert "carry no linkedid" not in daemon.log_tail(200_000)


async def test_cdr_events_without_linkedid_are_warned_about_once(
    asterisk: harness.AsteriskTarget,
    ami: harness.AmiClient,
    sipp: harness.Sipp,
    db,
    db_dsn: str,
    tmp_path: Path,
    cdr_manager_conf: Path,
) -> None:
    server = asterisk.server_name
    env = daemon_env(db_dsn, tmp_path / "data")
    assert pbx_sla(env, "contracts", "apply", str(harness.REPO / "examples" / "contracts.toml")).returncode == 0
    config = write_config(tmp_path / "pbx-sla.toml", asterisk, agi_listen=f"{asterisk.agi_host}:{asterisk.agi_port}")
    for name in ("agent1", "agent2", "trunk-a"):
        sipp.agent(name).start() if name.startswith("agent") else sipp.trunk_peer(name).start()
    for name in ("agent1", "agent2", "trunk-a"):
        harness.wait_contact_status(ami, name, "Reachable", timeout=asterisk.qualify_frequency + 10)

    install(asterisk, cdr_manager_conf, render_variant(tmp_path / "unmapped", "sequence => Sequence\n"))
    daemon = Daemon(config, env, tmp_path / "daemon.log").start()
    try:
        await wait_for(db, "SELECT resynced_at FROM ami_sessions WHERE server = $1", server)
        events = queue_call(ami, sipp) + queue_call(ami, sipp)
        assert events and not any(k.lower() == "linkedid" for e in events for k in e)
        await wait_for(db, "SELECT count(*) >= $1 FROM cdr_legs WHERE server = $2", len(events), server)
    finally:
        assert daemon.stop() == 0, daemon.log_tail()
    log = daemon.log_tail(200_000)
    assert log.count("carry no linkedid") == 1, log[-4000:]
    assert await db.fetchval("SELECT count(*) FROM cdr_legs WHERE server = $1 AND linkedid <> ''", server) == 0
