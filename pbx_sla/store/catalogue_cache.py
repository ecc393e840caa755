"""``<data_dir>/catalogue-cache.json``: the last catalogue loaded, and which database it came from.

The cache lets routing work while PostgreSQL is down, but only for the database it was loaded from
(issue 12: a daemon started on a fresh, empty database routed callers with another database's catalogue).
It names its database two ways:

* ``system_identifier`` (``pg_control_system()``, unique per cluster, kept by physical copies) and
  ``name`` (``current_database()``): compared when the database is reachable;
* ``dsn``: a fingerprint of where the configuration points (host, port, database; never the user or the
  password; ``embedded`` for the embedded PostgreSQL): compared when it is not, and by the classic script,
  which never connects before answering.

A cache that names another database, or none (written by an older version), is ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pbx_sla.private_files import replace_private_json

CACHE_NAME = "catalogue-cache.json"


def dsn_fingerprint(configured_dsn: str | None) -> str:
    """Where the configuration points, without credentials; ``embedded`` when no DSN is configured."""
    if not configured_dsn:
        return "embedded"
    text = configured_dsn.strip()
    if "://" in text:
        parts = urlsplit(text)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or ""])[0]
        port = query.get("port", [str(parts.port or "")])[0]
        name = query.get("dbname", [parts.path.lstrip("/")])[0]
        where = f"{host}:{port}/{name}"
    else:  # libpq key=value form
        pairs = dict(item.split("=", 1) for item in text.split() if "=" in item)
        where = f"{pairs.get('host', '')}:{pairs.get('port', '')}/{pairs.get('dbname', '')}"
    return "sha256:" + hashlib.sha256(where.encode("utf-8")).hexdigest()[:32]


async def database_identity(conn: Any) -> dict[str, str | None]:
    """``{"system_identifier", "name"}`` of the database ``conn`` is connected to."""
    name = await conn.fetchval("SELECT current_database()")
    try:
        system = await conn.fetchval("SELECT system_identifier::text FROM pg_control_system()")
    except Exception:  # revoked by an administrator: the name and the DSN fingerprint still bind it
        system = None
    return {"system_identifier": system, "name": name}


def read(path: Path) -> dict[str, Any]:
    """The cache file's content (raises OSError / ValueError / KeyError like json and open do)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "document" not in data:
        raise ValueError("not a catalogue cache")
    return data


def bound_to(data: dict[str, Any], *, identity: dict[str, str | None] | None = None, dsn: str | None = None) -> bool:
    """Whether the cache names this database: by ``identity`` when known (database reachable), else by the
    DSN fingerprint ``dsn``."""
    database = data.get("database")
    if not isinstance(database, dict):
        return False
    if identity is not None:
        return all(database.get(k) == v for k, v in identity.items())
    return dsn is not None and database.get("dsn") == dsn


def write(path: Path, revision: int, sha256: str, document: dict[str, Any], database: dict[str, Any]) -> None:
    """Atomic, fsync'd, 0600 (0640 in a group-shared data directory: docs/security.md)."""
    value = {"revision": revision, "sha256": sha256, "database": database, "document": document}
    replace_private_json(path, value, ensure_ascii=False)


def remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
