"""``--server NAME`` (repeatable) of the ``trunks``, ``usage``, ``sla``, ``qos`` and ``requests`` reports.

Without ``--server`` a report covers the whole fleet: every row whatever server it came from. With it, the
report's figures count only the rows of the named servers (:class:`ServerScope`); a name the database does
not know is a usage error naming it and listing the known ones. A tenant's contract spans servers, so the
figures that bill it (fee, credit, tier by usage, over-tier days, prepaid support hours) belong to the fleet
view only: a per-server view prints them as null (docs/figures.md, "Per-server views").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from pbx_sla.errors import ConfigError
from pbx_sla.store.servers import known_servers


@dataclass(frozen=True)
class ServerScope:
    """Which servers a report covers. ``only``: the ``--server`` names (sorted, unique), None for the fleet;
    ``servers``: the names the figures include (``only``, else every known server)."""

    only: tuple[str, ...] | None
    servers: tuple[str, ...]

    @property
    def fleet(self) -> bool:
        """No ``--server``: contract (billing) figures are computed."""
        return self.only is None

    def includes(self, server: str) -> bool:
        return self.only is None or server in self.only

    @property
    def sql(self) -> list[str] | None:
        """The ``$n::text[]`` parameter of ``($n::text[] IS NULL OR server = ANY($n::text[]))``."""
        return None if self.only is None else list(self.only)

    def as_json(self) -> dict[str, Any]:
        return {"servers": list(self.servers), "scope": "fleet" if self.fleet else "servers"}


def footer(report: Mapping[str, Any], withheld: str = "") -> list[str]:
    """The table view's last line for a per-server report (none for the fleet): which servers it covers and,
    ``withheld``, which contract figures it leaves out."""
    if report.get("scope") != "servers":
        return []
    line = f"servers: {', '.join(report['servers'])} only"
    if withheld:
        line += f" (per-server view: the contract's {withheld} are in the report without --server only)"
    return [line]


def requested(names: Iterable[str] | None) -> tuple[str, ...] | None:
    """The ``--server`` values as given (repeated, or none): sorted, each once; None when none was given.
    An empty or blank name is a usage error."""
    if names is None:
        return None
    out = sorted(set(names))
    if not out:
        return None
    for name in out:
        if not name.strip():
            raise ConfigError("--server: empty server name")
    return tuple(out)


def check_known(only: Sequence[str] | None, known: Sequence[str]) -> ServerScope:
    """The scope of ``only`` (None: the fleet) against the known server names; an unknown name is a
    :class:`ConfigError` (exit status 2) naming every unknown one and listing the known ones."""
    if only is None:
        return ServerScope(None, tuple(known))
    unknown = [name for name in only if name not in known]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        listing = ", ".join(known) if known else "none: nothing has been recorded yet"
        raise ConfigError(f"--server: unknown server {names} (known servers: {listing})")
    return ServerScope(tuple(only), tuple(only))


async def server_scope(conn: asyncpg.Connection, names: Iterable[str] | None = None) -> ServerScope:
    """The scope of the ``--server`` values ``names`` (None or empty: the fleet), checked against the database."""
    return check_known(requested(names), await known_servers(conn))
