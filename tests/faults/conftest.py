"""The fault suite: the daemon as a real process (``pbx-sla run``) against a fake AMI server and a private
PostgreSQL that the tests stop and start, killed with SIGKILL, or given a full disk. Every test prints the
records it expected and the records it found stored (run with ``-s`` to see them; they are also in the
assertion messages). Every test here is marked ``faults`` (skip with ``-m "not faults"``); each is bounded
to well under a minute.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the daemon as a real process under faults (tests/faults)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
