"""The contracts between collectors and storage, shared by the daemon and the batch commands.

Wazo's call-logd chain, made explicit, in three jobs: *collecting* (a collector, the AMI connection,
hands each raw event on), *interpreting* (pure handlers turn it into :class:`Record` values), *storing*
(the durable writer batches records by ``kind`` and hands each batch to the *sink* of that kind, which
stores it idempotently).

The daemon runs this chain. ``cdr import`` shares its interpreting and storing code for CDR legs but
not the Record/writer transport: its collector is the file reader (:mod:`pbx_sla.ingest.csv_reader`), it
interprets each record with the same :func:`pbx_sla.domain.cdr.read_leg` as the daemon's ``Cdr``
handler, and stores batches through the same staging table and SQL statement as the daemon's sink
(:mod:`pbx_sla.store.calls`), as COPY text on two connections. It needs no spool: the file is its own
durable source, and running the import again completes an interrupted one.

Beside the chain's types (:class:`Record`, :data:`EventHandler`, :class:`Sink`) this module holds what the
adapters share without importing each other or the wiring above them: :data:`DbConnection`,
:class:`CatalogueSource`, and the readers of a record's values (:func:`record_instant`, ``optional_*``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeAlias

import asyncpg
import asyncpg.pool

from pbx_sla.domain.catalogue import Catalogue

#: a connection of its own, or one borrowed from a pool (``pool.acquire()``): sinks take either
DbConnection: TypeAlias = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


@dataclass(slots=True)
class Record:
    """One unit of storage work. ``data`` must be JSON-serialisable (it may be spooled to disk). Not changed once
    made (not frozen: one is made per event kept, and a frozen dataclass's ``__init__`` costs about 2.5 times as
    much: bench/ami_ingest_qos.py)."""

    kind: str
    data: Mapping[str, Any]


def record_instant(value: Any, kind: str, field: str) -> datetime:
    """An instant read back from a record's data, where it travels as ISO 8601 with its UTC offset (the
    data may have been spooled as JSON). A value without an offset raises ValueError naming the record
    kind and field: the writer then retries the batch record by record and dead-letters this one."""
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if stamp.tzinfo is None:
        raise ValueError(f"{kind}: {field} has no UTC offset: {value!r}")
    return stamp


def optional_int(value: Any) -> int | None:
    """A record's optional integer (None stays None)."""
    return None if value is None else int(value)


def optional_float(value: Any) -> float | None:
    """A record's optional number (None stays None)."""
    return None if value is None else float(value)


def optional_text(value: Any) -> str | None:
    """A record's optional text: None or the empty string are None."""
    return None if value is None or value == "" else str(value)


#: (server name, AMI event as a plain str→str mapping) → records to store. Pure, never raises for bad
#: input it can name (it logs and returns nothing instead).
EventHandler = Callable[[str, Mapping[str, str]], Iterable[Record]]
#: (server name, one raw AMI message: its ``Key: Value`` lines joined by CRLF) → records, or None when the
#: handler does not read that message itself (it is then parsed into a dict and routed as usual). An
#: :data:`EventHandler` may offer one as its ``message`` attribute, for an event that comes once per call leg:
#: :class:`pbx_sla.ami.collector.Router` uses it when that handler is the event's only one.
MessageHandler = Callable[[str, str], Sequence[Record] | None]


class CatalogueSource(Protocol):
    """Where the daemon's parts (AGI routing, trunk polling) read the catalogue without waiting on
    PostgreSQL; :class:`pbx_sla.store.catalogue_watch.CatalogueWatch` is the daemon's."""

    @property
    def current(self) -> Catalogue | None:
        """The last catalogue successfully loaded, or None when none ever was."""
        ...


class Sink(Protocol):
    """Stores one batch of records of one kind, idempotently (a replayed batch changes nothing)."""

    kind: str

    async def write(self, conn: DbConnection, items: Sequence[Mapping[str, Any]]) -> None:
        """Called inside a transaction; raise to have the whole batch retried later."""
        ...
