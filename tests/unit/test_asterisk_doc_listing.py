"""The voice-quality hangup handler printed in docs/asterisk.md (what an administrator copies into a PBX) is
exactly the one asterisk_conf/extensions.conf ships and the e2e suite runs: the same lines of both contexts."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTEXTS = ("pbx-sla-qos-push", "pbx-sla-qos")


def _contexts(text: str) -> dict[str, list[str]]:
    """The dialplan lines (comments and blank lines dropped) of each of :data:`CONTEXTS` in ``text``."""
    out: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.rstrip()
        header = re.fullmatch(r"\[([\w-]+)\]", line)
        if header:
            current = header.group(1) if header.group(1) in CONTEXTS else None
            if current:
                out[current] = []
        elif line.startswith("```"):
            current = None
        elif current and line.strip() and not line.lstrip().startswith(";"):
            out[current].append(line.strip())
    return out


def test_docs_listing_is_the_shipped_handler() -> None:
    shipped = _contexts((ROOT / "asterisk_conf" / "extensions.conf").read_text(encoding="utf-8"))
    documented = _contexts((ROOT / "docs" / "asterisk.md").read_text(encoding="utf-8"))
    assert set(shipped) == set(CONTEXTS)
    assert all(shipped.values())
    assert documented == shipped
