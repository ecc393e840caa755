"""The contracts between collectors and storage, shared by the daemon and the batch commands.

Wazo's call-logd chain, made explicit: a collector (AMI connection, CSV reader) hands each raw event
to pure *handlers* that turn it into :class:`Record` values; the durable writer batches records by
``kind`` and hands each batch to the *sink* of that kind, which stores it idempotently. The daemon
and ``cdr import`` build the same chain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg


@dataclass(frozen=True)
class Record:
    """One unit of storage work. ``data`` must be JSON-serialisable (it may be spooled to disk)."""

    kind: str
    data: Mapping[str, Any]


#: (server name, AMI event as a plain str→str mapping) → records to store. Pure, never raises for bad
#: input it can name (it logs and returns nothing instead).
EventHandler = Callable[[str, Mapping[str, str]], Iterable[Record]]


class Sink(Protocol):
    """Stores one batch of records of one kind, idempotently (a replayed batch changes nothing)."""

    kind: str

    async def write(self, conn: asyncpg.Connection, items: Sequence[Mapping[str, Any]]) -> None:
        """Called inside a transaction; raise to have the whole batch retried later."""
        ...
