"""Child process of ``cdr import``: parse a Master.csv file and stream its batches to the parent.

Run as ``python -m pbx_sla.ingest.parse_child PATH SERVER ZONE COUNTRY_CODE BATCH BUCKETS`` (an empty
country code: none); writes each batch to stdout as
an 8-byte big-endian length followed by the pickled :class:`pbx_sla.ingest.staging.StagedBatch`, then a
zero length at the end. A full pipe blocks the child, so it never runs more than a batch ahead of the
parent (constant memory). A plain subprocess rather than :mod:`multiprocessing`: spawning with
multiprocessing re-imports the caller's ``__main__``, which an unguarded script cannot survive.
"""

from __future__ import annotations

import pickle
import sys
from zoneinfo import ZoneInfo

from pbx_sla.ingest.staging import staged_batches

HEADER = 8


def main(argv: list[str]) -> int:
    path, server, zone, country_code, batch_size, buckets = argv
    out = sys.stdout.buffer
    with open(path, "rb") as stream:
        for batch in staged_batches(
            stream, server, ZoneInfo(zone), country_code or None, int(batch_size), int(buckets)
        ):
            data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
            out.write(len(data).to_bytes(HEADER, "big"))
            out.write(data)
            out.flush()
    out.write((0).to_bytes(HEADER, "big"))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
