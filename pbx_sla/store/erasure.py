"""``pbx-sla erase``: replace one person's phone number by its pseudonym everywhere it is stored.

The rows are found by the normalised number columns and by a substring search of the free-text columns
(a sequential scan of each table: erasure is rare, correctness matters more than speed); what changes in
each row is decided in Python by :mod:`pbx_sla.domain.erasure`. Everything happens in one transaction
under the call bucket locks of every server, so no concurrent write of a late leg can put the number back
into a call. Rollups (``usage_daily``) and every counted field (tenant, day, disposition, billsec,
trunk, endpoint of trunks) are untouched, so the reports of any period stay exactly as they were. A phone
recorded by the trunks feature under its number (``trunk_observations``, ``trunk_known_days``) is renamed to
the token: its availability figures stay the same under the new name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from pbx_sla.domain.erasure import Target, parse_number, shortest_form, target
from pbx_sla.errors import InputError
from pbx_sla.store import catalogue_cache
from pbx_sla.store.calls import lock_calls
from pbx_sla.store.catalogue_cache import CACHE_NAME
from pbx_sla.store.trunk_days import LOCK as TRUNK_DAYS_LOCK


@dataclass(frozen=True)
class PersonalColumns:
    """Where a table holds numbers: whole-number fields, E.164 columns, free text, and names of the caller."""

    table: str
    key: tuple[str, ...]
    numbers: tuple[str, ...] = ()  # caller ID / number as written: the token when it is the number
    e164: tuple[str, ...] = ()  # normalised: the token when equal
    text: tuple[str, ...] = ()  # free text: written forms replaced
    caller_names: tuple[str, ...] = ()  # the token when the row's caller is the number
    caller: tuple[str, ...] = ()  # the fields that say who the caller is (for caller_names)
    only: str = ""  # an SQL condition limiting the rows (no parameter)


TABLES = (
    PersonalColumns(
        "cdr_legs",
        ("fingerprint",),
        numbers=("src", "dst", "clid", "src_endpoint", "dst_endpoint"),  # a phone's endpoint may be its number
        e164=("caller_e164", "dialled_e164"),
        text=("lastdata", "userfield", "channel", "dstchannel"),
    ),
    PersonalColumns("calls", ("server", "call_key"), e164=("caller_e164", "dialled_e164")),
    PersonalColumns(
        "support_calls",
        ("server", "uniqueid"),
        numbers=("caller", "dialled"),
        e164=("caller_e164",),
        text=("channel",),
        caller_names=("caller_name",),
        caller=("caller", "caller_e164"),
    ),
    PersonalColumns("queue_events", ("server", "uniqueid", "event", "at"), text=("member",)),
    PersonalColumns("qos_legs", ("server", "uniqueid"), numbers=("endpoint",), text=("channel",)),
    # a phone that reports qualify results is recorded like a trunk, under its endpoint name (its number,
    # when named so) and its contact URI; the kept days go under the same name (renamed first: the
    # observations' update then deletes the days it can change, and the reports recompute them)
    PersonalColumns("trunks", ("server", "name"), numbers=("name",), only="NOT in_catalogue"),
    PersonalColumns("trunk_known_days", ("server", "trunk", "day"), numbers=("trunk",)),
    PersonalColumns(
        "trunk_observations",
        ("server", "trunk", "at", "source", "key", "status"),
        numbers=("trunk",),
        text=("key", "aor"),
    ),
)


def _new_values(spec: PersonalColumns, row: asyncpg.Record, t: Target, cc: str) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for col in spec.numbers:
        new = t.field(row[col], cc)
        if new != row[col]:
            changed[col] = new
    for col in spec.e164:
        if row[col] == t.e164:
            changed[col] = t.token
    for col in spec.text:
        if row[col] is not None:
            new = t.scrub(row[col])
            if new != row[col]:
                changed[col] = new
    if any(c in changed for c in spec.caller):
        for col in spec.caller_names:
            if row[col] not in ("", None, t.token):
                changed[col] = t.token
    return changed


async def candidates(conn: asyncpg.Connection, spec: PersonalColumns, e164: str, needle: str) -> list[asyncpg.Record]:
    """The rows of ``spec.table`` that may hold the number (its E.164 form, or ``needle`` in a text): one
    read of every row (bench/erase.py times it alone)."""
    cols = spec.numbers + spec.e164 + spec.text + spec.caller_names
    where = [f"{c} = $1" for c in spec.e164] + [f"strpos({c}, $2) > 0" for c in spec.numbers + spec.text]
    # both parameters are always referenced (a table may have only one kind of column)
    return await conn.fetch(
        f"SELECT {', '.join(spec.key + cols)} FROM {spec.table}"
        f" WHERE ($1::text IS NOT NULL AND $2::text IS NOT NULL) AND ({' OR '.join(where)})"
        + (f" AND {spec.only}" if spec.only else ""),
        e164,
        needle,
    )


async def _erase_table(
    conn: asyncpg.Connection, spec: PersonalColumns, t: Target, cc: str, needle: str, dry_run: bool
) -> dict[str, Any]:
    rows = await candidates(conn, spec, t.e164, needle)
    fields: dict[str, int] = {}
    updates: list[tuple[dict[str, Any], asyncpg.Record]] = []
    for row in rows:
        changed = _new_values(spec, row, t, cc)
        if changed:
            updates.append((changed, row))
            for col in changed:
                fields[col] = fields.get(col, 0) + 1
    if not dry_run:
        for changed, row in updates:
            names = list(changed)
            if any(k in changed for k in spec.key) and await _key_taken(conn, spec, changed, row):
                # the same row already stands under the token (erased before, then written again): one is enough
                await conn.execute(f"DELETE FROM {spec.table} WHERE {_where_key(spec, 1)}", *[row[k] for k in spec.key])
                continue
            sets = ", ".join(f"{c} = ${i + 1}" for i, c in enumerate(names))
            await conn.execute(
                f"UPDATE {spec.table} SET {sets} WHERE {_where_key(spec, len(names) + 1)}",
                *[changed[c] for c in names],
                *[row[k] for k in spec.key],
            )
    return {"table": spec.table, "rows": len(updates), "fields": dict(sorted(fields.items()))}


def _where_key(spec: PersonalColumns, first: int) -> str:
    return " AND ".join(f"{k} = ${first + i}" for i, k in enumerate(spec.key))


async def _key_taken(
    conn: asyncpg.Connection, spec: PersonalColumns, changed: dict[str, Any], row: asyncpg.Record
) -> bool:
    new_key = [changed.get(k, row[k]) for k in spec.key]
    return bool(
        await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {spec.table} WHERE {_where_key(spec, 1)})", *new_key)
    )


async def _refuse_catalogue_numbers(conn: asyncpg.Connection, e164: str) -> None:
    did = await conn.fetchval("SELECT tenant_id FROM tenant_dids WHERE did = $1 AND active", e164)
    if did is not None:
        raise InputError(f"--number {e164} is a DID of tenant {did!r} in the catalogue, not a person's number")
    requester = await conn.fetchrow(
        "SELECT r.tenant_id, r.name FROM requester_phones p JOIN requesters r ON r.id = p.requester_id"
        " WHERE p.phone = $1 AND p.active",
        e164,
    )
    if requester is not None:
        raise InputError(
            f"--number {e164} is a phone of requester {requester['name']!r} of tenant {requester['tenant_id']!r}:"
            " remove it from the contracts file and run `pbx-sla contracts apply` first, then erase"
        )


async def _refuse_catalogue_trunks(conn: asyncpg.Connection, t: Target, needle: str) -> None:
    """A catalogue trunk (or one a tenant had) is a company's endpoint that contracts and reports name:
    renaming it would change the figures. A phone recorded by the trunks feature is not one."""
    for row in await conn.fetch(
        "SELECT server, name FROM trunks t WHERE strpos(name, $1) > 0 AND (in_catalogue OR EXISTS"
        " (SELECT 1 FROM tenant_trunks tt WHERE tt.server = t.server AND tt.trunk = t.name)) ORDER BY 1, 2",
        needle,
    ):
        if t.pattern.search(row["name"]):
            raise InputError(
                f"--number {t.e164} names the catalogue trunk {row['name']!r} of server {row['server']!r},"
                " not a person's number"
            )


async def _erase_catalogue(conn: asyncpg.Connection, t: Target, needle: str, dry_run: bool) -> dict[str, Any]:
    """Inactive requester phones (kept by ``contracts apply`` as history) are deleted; the number is
    replaced in the stored documents of earlier catalogue revisions."""
    phones = await conn.fetchval("SELECT count(*) FROM requester_phones WHERE phone = $1 AND NOT active", t.e164)
    revisions = await conn.fetch(
        "SELECT id, document::text AS doc FROM catalogue_revisions WHERE strpos(document::text, $1) > 0", needle
    )
    changed = [(r["id"], t.scrub(r["doc"])) for r in revisions if t.scrub(r["doc"]) != r["doc"]]
    if not dry_run:
        await conn.execute("DELETE FROM requester_phones WHERE phone = $1 AND NOT active", t.e164)
        for rev_id, doc in changed:
            await conn.execute("UPDATE catalogue_revisions SET document = $1::jsonb WHERE id = $2", doc, rev_id)
    return {"requester_phones_deleted": phones, "catalogue_revisions": len(changed)}


async def _current_document(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The revision in force: the latest (as pbx_sla.store.catalogue.latest_revision reads it)."""
    return await conn.fetchrow(
        "SELECT id, sha256, document::text AS doc FROM catalogue_revisions ORDER BY id DESC LIMIT 1"
    )


def _rewrite_cache(cache: Path, current: asyncpg.Record | None) -> None:
    """The daemon's catalogue cache, written again from the database's latest revision (or removed). The
    database it names is kept from the file (the daemon ignores a cache that names none)."""
    if current is None:
        catalogue_cache.remove(cache)
        return
    try:
        database = catalogue_cache.read(cache).get("database") or {}
    except (OSError, ValueError, KeyError):
        database = {}
    catalogue_cache.write(cache, current["id"], current["sha256"], json.loads(current["doc"]), database)


async def erase_number(
    conn: asyncpg.Connection, number: str, *, data_dir: Path | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Pseudonymise ``number`` everywhere; the report of what was (or, with ``dry_run``, would be) changed."""
    cc = await conn.fetchval("SELECT country_code FROM catalogue_settings")
    if cc is None:
        raise InputError("no catalogue applied yet: its country code is needed to read --number")
    async with conn.transaction():
        try:
            e164 = parse_number(number, cc)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        t = target(e164, cc, await conn.fetchval("SELECT pseudonym($1)", e164))
        await _refuse_catalogue_numbers(conn, t.e164)
        needle = shortest_form(t)
        await _refuse_catalogue_trunks(conn, t, needle)
        # every server that stored legs is in `servers` (as retention reads it): no scan of `calls`
        await lock_calls(conn, [r["name"] for r in await conn.fetch("SELECT name FROM servers")])
        # the kept trunk days' writers hold this exclusive: a day they computed under the old name is stored
        # before the rename below, and one they compute after waits for this transaction's end
        await conn.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))", TRUNK_DAYS_LOCK)
        tables = [await _erase_table(conn, spec, t, cc, needle, dry_run) for spec in TABLES]
        catalogue = await _erase_catalogue(conn, t, needle, dry_run)
        current = await _current_document(conn)
    cache_rewritten = False
    if data_dir is not None:
        cache = Path(data_dir) / CACHE_NAME
        if cache.exists() and t.pattern.search(cache.read_text(encoding="utf-8")):
            cache_rewritten = True
            if not dry_run:
                _rewrite_cache(cache, current)
    catalogue["cache_file_rewritten"] = cache_rewritten
    return {"number": t.e164, "pseudonym": t.token, "dry_run": dry_run, "tables": tables, "catalogue": catalogue}
