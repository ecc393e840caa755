"""Store a validated catalogue in the 0001 tables, idempotently, and read the latest one back.

:func:`apply_catalogue` runs in one transaction serialised by an advisory lock. Each table is compared
row by row with what the file says: new rows are inserted, differing or inactive ones updated, rows the
file no longer names deactivated (``active = false``, never deleted, so history stays reportable).
Trunks the AMI collector found on a PBX (``in_catalogue = false``) are never deactivated here; a trunk
removed from the file only loses ``in_catalogue``. PINs are hashed here, reusing the stored hash when it
still verifies: re-applying an unchanged file changes nothing and creates no revision. A revision row
(the whole document, PIN hashes only) is written only when something changed, and
``NOTIFY pbx_sla_catalogue, '<revision id>'`` is delivered when the transaction commits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from pbx_sla.domain.calendar import DAYS, format_minutes
from pbx_sla.domain.catalogue import Catalogue
from pbx_sla.domain.catalogue_document import document_sha256, from_document, to_document
from pbx_sla.domain.pins import seal_pins
from pbx_sla.log import get_logger

log = get_logger(__name__)

CHANNEL = "pbx_sla_catalogue"
#: pg_advisory_xact_lock key: two `contracts apply` at once run one after the other
APPLY_LOCK = int.from_bytes(hashlib.sha256(b"pbx-sla catalogue apply").digest()[:8], "big", signed=True)


@dataclass
class Changes:
    """What an apply added, changed and deactivated, each entry naming the entity by its key."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    revision_id: int | None = None
    dry_run: bool = False

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.deactivated)

    def lines(self) -> list[str]:
        out: list[str] = []
        for title, items in (("added", self.added), ("changed", self.changed), ("deactivated", self.deactivated)):
            out.extend(f"{title:<12}{item}" for item in items)
        return out


@dataclass(frozen=True)
class _Table:
    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...] = ()
    #: SQL type of a column whose parameter needs a cast (jsonb travels as text)
    casts: Mapping[str, str] = field(default_factory=dict)


def _from_db(table: _Table, column: str, value: Any) -> Any:
    if table.casts.get(column) == "jsonb" and isinstance(value, str):
        return json.loads(value)
    if table.casts.get(column) == "date[]" and value is not None:
        return sorted(value)
    return value


def _to_db(table: _Table, column: str, value: Any) -> Any:
    return json.dumps(value) if table.casts.get(column) == "jsonb" else value


async def _sync(
    conn: asyncpg.Connection,
    changes: Changes,
    table: _Table,
    desired: Mapping[tuple[Any, ...], tuple[Any, ...]],
    label: Callable[[tuple[Any, ...]], str],
    *,
    scope: str = "",
) -> None:
    """Make ``table`` (rows matching ``scope``) hold exactly ``desired`` (key → values) as its active rows."""
    cols = table.keys + table.values
    rows = await conn.fetch(f"SELECT {', '.join(cols)}, active FROM {table.name} {scope}")
    existing = {
        tuple(r[k] for k in table.keys): (tuple(_from_db(table, c, r[c]) for c in table.values), r["active"])
        for r in rows
    }

    def param(i: int, col: str) -> str:
        cast = table.casts.get(col)
        return f"${i}::{cast}" if cast else f"${i}"

    for key, values in desired.items():
        args = [_to_db(table, c, v) for c, v in zip(cols, key + values, strict=True)]
        if key not in existing:
            placeholders = ", ".join(param(i + 1, c) for i, c in enumerate(cols))
            await conn.execute(f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({placeholders})", *args)
            changes.added.append(label(key))
            continue
        old, active = existing[key]
        differing = [c for c, a, b in zip(table.values, old, values, strict=True) if a != b]
        if not differing and active:
            continue
        sets = ", ".join(f"{c} = {param(len(table.keys) + i + 1, c)}" for i, c in enumerate(table.values))
        where = " AND ".join(f"{k} IS NOT DISTINCT FROM ${i + 1}" for i, k in enumerate(table.keys))
        await conn.execute(f"UPDATE {table.name} SET {sets + ', ' if sets else ''}active = true WHERE {where}", *args)
        what = [c.removesuffix("_hash") for c in differing] + ([] if active else ["reactivated"])
        changes.changed.append(f"{label(key)} ({', '.join(what)})")
    for key, (_, active) in existing.items():
        if active and key not in desired:
            where = " AND ".join(f"{k} IS NOT DISTINCT FROM ${i + 1}" for i, k in enumerate(table.keys))
            await conn.execute(f"UPDATE {table.name} SET active = false WHERE {where}", *key)
            changes.deactivated.append(label(key))


def _hours_json(hours: Mapping[int, Sequence[Any]]) -> dict[str, list[list[str]]]:
    return {
        DAYS[d]: [[format_minutes(r.start), format_minutes(r.end)] for r in hours[d]] for d in sorted(hours) if hours[d]
    }


async def _settings(conn: asyncpg.Connection, cat: Catalogue, changes: Changes) -> None:
    row = await conn.fetchrow("SELECT timezone, country_code FROM catalogue_settings")
    if row is None:
        await conn.execute(
            "INSERT INTO catalogue_settings (timezone, country_code) VALUES ($1, $2)", cat.timezone, cat.country_code
        )
        changes.added.append(f"settings timezone={cat.timezone} country_code={cat.country_code}")
        return
    if (row["timezone"], row["country_code"]) != (cat.timezone, cat.country_code):
        await conn.execute(
            "UPDATE catalogue_settings SET timezone = $1, country_code = $2", cat.timezone, cat.country_code
        )
        changes.changed.append(f"settings timezone={cat.timezone} country_code={cat.country_code}")


async def _servers(conn: asyncpg.Connection, cat: Catalogue, changes: Changes) -> None:
    names = sorted({t.server for t in cat.trunks} | {w.server for w in cat.maintenance if w.server})
    for name in names:
        inserted = await conn.fetchval(
            "INSERT INTO servers (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING name", name
        )
        if inserted:
            changes.added.append(f"server {name}")


async def _trunks(conn: asyncpg.Connection, cat: Catalogue, changes: Changes) -> None:
    rows = await conn.fetch("SELECT server, name, availability_target, in_catalogue FROM trunks")
    existing = {(r["server"], r["name"]): r for r in rows}
    desired = {(t.server, t.name): t.availability_target for t in cat.trunks}
    for (server, name), target in desired.items():
        row = existing.get((server, name))
        if row is None:
            await conn.execute(
                "INSERT INTO trunks (server, name, availability_target, in_catalogue) VALUES ($1, $2, $3, true)",
                server,
                name,
                target,
            )
            changes.added.append(f"trunk {server}/{name}")
        elif row["availability_target"] != target or not row["in_catalogue"]:
            await conn.execute(
                "UPDATE trunks SET availability_target = $3, in_catalogue = true WHERE server = $1 AND name = $2",
                server,
                name,
                target,
            )
            what = (["availability_target"] if row["availability_target"] != target else []) + (
                [] if row["in_catalogue"] else ["now in the catalogue"]
            )
            changes.changed.append(f"trunk {server}/{name} ({', '.join(what)})")
    for (server, name), row in existing.items():
        if row["in_catalogue"] and (server, name) not in desired:
            await conn.execute("UPDATE trunks SET in_catalogue = false WHERE server = $1 AND name = $2", server, name)
            changes.deactivated.append(f"trunk {server}/{name} (no longer in the catalogue)")


async def _maintenance(conn: asyncpg.Connection, cat: Catalogue, changes: Changes) -> None:
    rows = await conn.fetch(
        "SELECT id, server, trunk, lower(during) AS s, upper(during) AS e, reason, active FROM maintenance_windows"
    )
    existing = {(r["server"], r["trunk"], r["s"], r["e"]): r for r in rows}

    def label(server: str | None, trunk: str | None, start: Any, end: Any) -> str:
        scope = f"{server}/{trunk}" if trunk else f"{server}/*" if server else "*/*"
        return f"maintenance {scope} {start.isoformat()}..{end.isoformat()}"

    desired = {(w.server, w.trunk, w.start, w.end): w for w in cat.maintenance}
    for key, w in desired.items():
        row = existing.get(key)
        if row is None:
            await conn.execute(
                "INSERT INTO maintenance_windows (server, trunk, during, reason) "
                "VALUES ($1, $2, tstzrange($3, $4, '[)'), $5)",
                w.server,
                w.trunk,
                w.start,
                w.end,
                w.reason,
            )
            changes.added.append(label(*key))
        elif row["reason"] != w.reason or not row["active"]:
            await conn.execute(
                "UPDATE maintenance_windows SET reason = $2, active = true WHERE id = $1", row["id"], w.reason
            )
            what = (["reason"] if row["reason"] != w.reason else []) + ([] if row["active"] else ["reactivated"])
            changes.changed.append(f"{label(*key)} ({', '.join(what)})")
    for key, row in existing.items():
        if row["active"] and key not in desired:
            await conn.execute("UPDATE maintenance_windows SET active = false WHERE id = $1", row["id"])
            changes.deactivated.append(label(*key))


CALENDARS = _Table("calendars", ("name",), ("always", "hours", "holidays"), {"hours": "jsonb", "holidays": "date[]"})
TIERS = _Table(
    "tiers",
    ("name",),
    (
        "price_per_year",
        "currency",
        "max_calls_per_day",
        "max_employees",
        "calendar",
        "queue",
        "priority",
        "out_of_hours",
        "answer_target_seconds",
        "service_level_target",
        "availability_target",
        "credits",
    ),
    {"credits": "jsonb"},
)
TENANTS = _Table("tenants", ("id",), ("name", "tier", "employees", "contract_start", "contract_end"))
ACCOUNTCODES = _Table("tenant_accountcodes", ("accountcode",), ("tenant_id",))
DIDS = _Table("tenant_dids", ("did",), ("tenant_id",))
TENANT_TRUNKS = _Table("tenant_trunks", ("tenant_id", "server", "trunk"))
REQUESTERS = _Table("requesters", ("tenant_id", "name"), ("pin_hash",))
PHONES = _Table("requester_phones", ("phone",), ("requester_id",))


async def _apply(conn: asyncpg.Connection, cat: Catalogue, source: str, changes: Changes) -> Catalogue:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPLY_LOCK)
    stored = {(r["tenant_id"], r["name"]): r["pin_hash"] for r in await conn.fetch(
        "SELECT tenant_id, name, pin_hash FROM requesters WHERE pin_hash IS NOT NULL")}  # fmt: skip
    # scrypt (~50 ms per PIN) in threads: keeps the event loop free and uses every core
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="pin") as pool:
        sealed = await asyncio.to_thread(seal_pins, cat, stored, map_fn=pool.map)

    await _settings(conn, sealed, changes)
    await _servers(conn, sealed, changes)
    await _sync(
        conn,
        changes,
        CALENDARS,
        {(c.name,): (c.always, _hours_json(c.hours), sorted(c.holidays)) for c in sealed.calendars.values()},
        lambda k: f"calendar {k[0]}",
    )
    await _sync(
        conn,
        changes,
        TIERS,
        {
            (t.name,): (
                t.price_per_year,
                t.currency,
                t.max_calls_per_day,
                t.max_employees,
                t.calendar,
                t.queue,
                t.priority,
                t.out_of_hours.as_text(),
                t.answer_target_seconds,
                t.service_level_target,
                t.availability_target,
                [
                    {"metric": c.metric, "below": None if c.below is None else str(c.below), "percent": str(c.percent)}
                    | ({} if c.above is None else {"above": str(c.above)})
                    for c in t.credits
                ],
            )
            for t in sealed.tiers.values()
        },
        lambda k: f"tier {k[0]}",
    )
    await _trunks(conn, sealed, changes)
    tenants = sealed.tenants.values()
    await _sync(
        conn,
        changes,
        TENANTS,
        {(t.id,): (t.name, t.tier, t.employees, t.contract_start, t.contract_end) for t in tenants},
        lambda k: f"tenant {k[0]}",
    )
    await _sync(
        conn,
        changes,
        ACCOUNTCODES,
        {(code,): (t.id,) for t in tenants for code in t.accountcodes},
        lambda k: f"accountcode {k[0]}",
    )
    await _sync(conn, changes, DIDS, {(d,): (t.id,) for t in tenants for d in t.dids}, lambda k: f"did {k[0]}")
    links = {}
    for t in tenants:
        for ref in t.trunks:
            trunk = sealed.trunk(ref)
            assert trunk is not None, ref  # parse_catalogue resolved every reference
            links[(t.id, trunk.server, trunk.name)] = ()
    await _sync(conn, changes, TENANT_TRUNKS, links, lambda k: f"tenant trunk {k[0]} -> {k[1]}/{k[2]}")
    await _sync(
        conn,
        changes,
        REQUESTERS,
        {(t.id, r.name): (r.pin_hash,) for t in tenants for r in t.requesters},
        lambda k: f"requester {k[0]}/{k[1]}",
    )
    ids = {(r["tenant_id"], r["name"]): r["id"] for r in await conn.fetch("SELECT id, tenant_id, name FROM requesters")}
    await _sync(
        conn,
        changes,
        PHONES,
        {(phone,): (ids[(t.id, r.name)],) for t in tenants for r in t.requesters for phone in r.phones},
        lambda k: f"phone {k[0]}",
    )
    await _maintenance(conn, sealed, changes)

    doc = to_document(sealed)
    sha = document_sha256(doc)
    latest = await conn.fetchrow("SELECT id, sha256 FROM catalogue_revisions ORDER BY id DESC LIMIT 1")
    if not changes and latest is not None and latest["sha256"] != sha:
        changes.changed.append("catalogue document (order or number formatting)")
    if changes:
        changes.revision_id = await conn.fetchval(
            "INSERT INTO catalogue_revisions (source, sha256, document) VALUES ($1, $2, $3::jsonb) RETURNING id",
            source,
            sha,
            json.dumps(doc),
        )
        await conn.execute("UPDATE catalogue_settings SET revision_id = $1", changes.revision_id)
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(changes.revision_id))
    elif latest is not None:
        changes.revision_id = latest["id"]
    return sealed


async def apply_catalogue(conn: asyncpg.Connection, cat: Catalogue, source: str, *, dry_run: bool = False) -> Changes:
    """Store ``cat`` (from :func:`parse_catalogue`) in one transaction; with ``dry_run`` roll it back.

    Returns what changed (or would have). ``NOTIFY`` reaches listeners when the transaction commits.
    """
    changes = Changes(dry_run=dry_run)
    tr = conn.transaction()
    await tr.start()
    try:
        await _apply(conn, cat, source, changes)
    except BaseException:
        await tr.rollback()
        raise
    if dry_run:
        await tr.rollback()
        changes.revision_id = None
    else:
        await tr.commit()
        log.info(
            "catalogue applied",
            source=source,
            revision=changes.revision_id,
            added=len(changes.added),
            changed=len(changes.changed),
            deactivated=len(changes.deactivated),
        )
    return changes


@dataclass(frozen=True)
class Revision:
    id: int
    applied_at: Any
    source: str
    sha256: str
    document: dict[str, Any]


async def latest_revision(conn: asyncpg.Connection, *, newer_than: int | None = None) -> Revision | None:
    """The newest catalogue revision (only if its id is above ``newer_than``), or None."""
    row = await conn.fetchrow(
        "SELECT id, applied_at, source, sha256, document FROM catalogue_revisions "
        "WHERE id > $1 ORDER BY id DESC LIMIT 1",
        newer_than if newer_than is not None else 0,
    )
    if row is None:
        return None
    doc = row["document"]
    return Revision(
        row["id"], row["applied_at"], row["source"], row["sha256"], json.loads(doc) if isinstance(doc, str) else doc
    )


#: the last catalogue :func:`revision_catalogue` parsed, by (revision id, document sha256)
_PARSED: dict[tuple[int, str], Catalogue] = {}


async def revision_catalogue(conn: asyncpg.Connection) -> tuple[int, Catalogue] | None:
    """The latest revision's id and catalogue (what :func:`load_catalogue` gives), or None. The document is
    read and parsed only when it is not the one parsed last (same id and sha256): a dashboard view reads two
    short columns instead of decoding 500 tenants' document (10-40 ms)."""
    row = await conn.fetchrow("SELECT id, sha256 FROM catalogue_revisions ORDER BY id DESC LIMIT 1")
    if row is None:
        return None
    key = (row["id"], row["sha256"])
    if key not in _PARSED:
        revision = await latest_revision(conn, newer_than=row["id"] - 1)
        if revision is None or (revision.id, revision.sha256) != key:  # replaced meanwhile: not cached
            return None if revision is None else (revision.id, from_document(revision.document))
        _PARSED.clear()
        _PARSED[key] = from_document(revision.document)
    return key[0], _PARSED[key]


async def load_catalogue(conn: asyncpg.Connection) -> Catalogue | None:
    """The catalogue of the latest revision, or None when none was ever applied."""
    revision = await latest_revision(conn)
    return from_document(revision.document) if revision else None
