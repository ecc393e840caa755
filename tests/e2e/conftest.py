"""Fixtures for the end-to-end suite (real Asterisk 22, sipp peers).

* ``asterisk`` (session): the Asterisk under test, see ``harness.AsteriskTarget``. The local chroot
  sandbox (scripts/asterisk-sandbox, built once and cached under .cache/) unless PBX_SLA_E2E_AMI and
  friends name an external one (docs/docker.md).
* ``sipp`` (function): ``trunk_peer(name)``, ``agent(name)``, ``call(...)``, ``start_call(...)``;
  every sipp process is killed when the test ends.
* ``ami`` (function): a logged-in ``harness.AmiClient`` as user pbx-sla.
* ``agi_listener`` (function): factory ``agi_listener(variables=None, script=None)`` starting a
  ``harness.FastAgiListener`` where the target's dialplan sends FastAGI.

Every test in this directory is marked ``e2e`` (select with ``-m e2e``, skip with ``-m "not e2e"``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import harness


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives a real Asterisk (sandbox or PBX_SLA_E2E_* target)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def asterisk() -> Iterator[harness.AsteriskTarget]:
    """The Asterisk under test (sandbox started for the session, or the PBX_SLA_E2E_* target)."""
    external = harness.external_target()
    if external is not None:
        yield external
        return
    if os.geteuid() != 0:
        pytest.skip("the Asterisk sandbox needs root (chroot, mount); or set PBX_SLA_E2E_* (docs/docker.md)")
    sandbox = harness.Sandbox()
    try:
        target = sandbox.start()
    except Exception:
        sandbox.stop()
        raise
    try:
        yield target
    finally:
        sandbox.stop()


@pytest.fixture
def sipp(asterisk: harness.AsteriskTarget, tmp_path: Path) -> Iterator[harness.Sipp]:
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    s = harness.Sipp(asterisk, workdir)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def ami(asterisk: harness.AsteriskTarget) -> Iterator[harness.AmiClient]:
    client = asterisk.ami()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def agi_listener(asterisk: harness.AsteriskTarget):
    started: list[harness.FastAgiListener] = []

    def start(variables=None, script=None) -> harness.FastAgiListener:
        listener = harness.FastAgiListener(asterisk.agi_host, asterisk.agi_port, variables, script)
        started.append(listener)
        return listener

    try:
        yield start
    finally:
        for listener in started:
            listener.close()
