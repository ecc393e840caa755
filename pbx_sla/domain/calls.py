"""What makes legs one call, and how calls are spread over writers.

A call is all legs of one server with the same :func:`call_key`. Everything else about a call (its
disposition, day, billable seconds, tenant, direction) is computed in SQL from all of its legs
(sql/repeatable/calls_compute_sql.sql, run by the one statement that stores legs, ``cdr_store_stage``;
docs/calls.md, "Definitions", says where), so that a call is always computed from every leg stored,
whichever writer stored them. Pure.
"""

from __future__ import annotations

import uuid
import zlib

#: buckets of calls per server, each stored under its own lock (pbx_sla.store.calls.lock_calls): the number
#: of connections ``cdr import`` stores on. Every writer must agree on it: changing it needs every daemon
#: and import stopped.
CALL_BUCKETS = 2


def call_key(linkedid: str, uniqueid: str, fingerprint: str) -> str:
    """What groups legs into one call: the linkedid, else the uniqueid, else the leg itself
    (``leg:`` and its fingerprint as a UUID)."""
    return linkedid or uniqueid or f"leg:{uuid.UUID(hex=fingerprint)}"


def call_bucket(key: str, buckets: int = CALL_BUCKETS) -> int:
    """The bucket of a call among ``buckets`` (stable across processes and versions: CRC-32 of its key)."""
    return zlib.crc32(key.encode()) % buckets
