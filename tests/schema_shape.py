"""A normalised description of a database's schema, to compare two ways of building it.

Used by tests/integration/test_schema_baseline.py, which checks that the baseline (``sql/``) builds the
schema the pre-squash migration history built. That history is not kept in the repository as SQL: its
description was generated once, from the last commit that had it, and committed as
``tests/integration/schema_before_squash.json``. To regenerate it (needs git and the test PostgreSQL
server of tests/conftest.py)::

    .venv/bin/python tests/schema_shape.py --from-git 76ee29e > tests/integration/schema_before_squash.json

That runs the history's files (``sql/NNNN_*.sql`` at that commit) in order, each in a transaction as its
runner did, on a fresh database, and prints the description of the result.

The description holds: tables (columns in order with type, default and nullability; constraints;
indexes), sequences, views (their definition as PostgreSQL prints it back, so comments and layout do not
count), functions (signature, result, language, volatility, settings and a SHA-256 of the body text),
comments, roles created by the migrations, and the privileges granted to other roles. Names that depend on
who ran the migrations (the owner) are replaced by ``<owner>``. The runner's own bookkeeping tables
(``schema_*``) are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

#: the runner's bookkeeping, not part of the schema the migrations define
BOOKKEEPING = ("schema_migrations", "schema_repeatables")
REPO = Path(__file__).resolve().parents[1]
#: roles the migrations create (they are cluster-wide, so only these are described)
ROLES = ("pbx_sla_billing",)


def _acl(acl: list[str] | None, owner: str) -> list[str]:
    """aclitems as text, the owner's name replaced (it depends on who migrated)."""
    items = []
    for item in acl or []:
        grantee, _, rest = item.partition("=")
        rights, _, grantor = rest.partition("/")
        grantee = "<owner>" if grantee == owner else grantee
        grantor = "<owner>" if grantor == owner else grantor
        items.append(f"{grantee}={rights}/{grantor}")
    return sorted(items)


async def describe(conn: asyncpg.Connection) -> dict[str, Any]:
    """The schema of ``public`` as plain JSON-able data (see the module docstring)."""
    owner = await conn.fetchval("SELECT current_user")
    tables: dict[str, Any] = {}
    for rel in await conn.fetch(
        """SELECT c.oid, c.relname, c.relacl::text[] AS acl, obj_description(c.oid, 'pg_class') AS comment
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relname = ANY($1::text[])
           ORDER BY c.relname""",
        list(BOOKKEEPING),
    ):
        columns = [
            {
                "name": r["attname"],
                "type": r["type"],
                "default": r["default"],
                "not_null": r["attnotnull"],
                "comment": r["comment"],
            }
            for r in await conn.fetch(
                """SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
                          pg_get_expr(d.adbin, d.adrelid) AS default, col_description(a.attrelid, a.attnum) AS comment
                   FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                   WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                   ORDER BY a.attnum""",
                rel["oid"],
            )
        ]
        constraints = {
            r["conname"]: r["def"]
            for r in await conn.fetch(
                "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1", rel["oid"]
            )
        }
        indexes = {
            r["relname"]: r["def"]
            for r in await conn.fetch(
                """SELECT i.relname, pg_get_indexdef(x.indexrelid) AS def
                   FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = $1""",
                rel["oid"],
            )
        }
        triggers = sorted(
            r["tgname"]
            for r in await conn.fetch(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal", rel["oid"]
            )
        )
        tables[rel["relname"]] = {
            "columns": columns,
            "constraints": dict(sorted(constraints.items())),
            "indexes": dict(sorted(indexes.items())),
            "triggers": triggers,
            "comment": rel["comment"],
            "grants": _acl(rel["acl"], owner),
        }
    views = {
        r["relname"]: {
            "definition": r["def"],
            "columns": [
                {"name": c["attname"], "type": c["type"]}
                for c in await conn.fetch(
                    """SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
                       WHERE attrelid = $1 AND attnum > 0 ORDER BY attnum""",
                    r["oid"],
                )
            ],
            "comment": r["comment"],
            "grants": _acl(r["acl"], owner),
        }
        for r in await conn.fetch(
            """SELECT c.oid, c.relname, pg_get_viewdef(c.oid) AS def, c.relacl::text[] AS acl,
                      obj_description(c.oid, 'pg_class') AS comment
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm') ORDER BY c.relname"""
        )
    }
    sequences = {
        r["relname"]: {"type": r["type"], "owned_by": r["owned_by"]}
        for r in await conn.fetch(
            """SELECT c.relname, format_type(s.seqtypid, NULL) AS type,
                      (SELECT t.relname || '.' || a.attname FROM pg_depend d
                       JOIN pg_class t ON t.oid = d.refobjid
                       JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                       WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')) AS owned_by
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
               WHERE n.nspname = 'public' ORDER BY c.relname"""
        )
    }
    functions = {
        f"{r['proname']}({r['args']})": {
            "result": r["result"],
            "arguments": r["full_args"],
            "language": r["lanname"],
            "volatility": r["provolatile"],
            "parallel": r["proparallel"],
            "settings": sorted(r["proconfig"] or []),
            "body_sha256": hashlib.sha256(r["prosrc"].encode()).hexdigest(),
            "comment": r["comment"],
            "grants": _acl(r["acl"], owner),
        }
        for r in await conn.fetch(
            """SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
                      pg_get_function_arguments(p.oid) AS full_args, pg_get_function_result(p.oid) AS result,
                      l.lanname, p.provolatile::text, p.proparallel::text, p.proconfig, p.prosrc,
                      p.proacl::text[] AS acl,
                      obj_description(p.oid, 'pg_proc') AS comment
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
               WHERE n.nspname = 'public' ORDER BY 1, 2"""
        )
    }
    types = sorted(
        r["typname"]
        for r in await conn.fetch(
            """SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
               LEFT JOIN pg_class c ON c.oid = t.typrelid
               WHERE n.nspname = 'public' AND (t.typtype IN ('e', 'd', 'r', 'm') OR c.relkind = 'c')"""
        )
    )
    extensions = sorted(r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension"))
    roles = {
        r["rolname"]: {"login": r["rolcanlogin"], "inherit": r["rolinherit"]}
        for r in await conn.fetch(
            "SELECT rolname, rolcanlogin, rolinherit FROM pg_roles WHERE rolname = ANY($1::text[]) ORDER BY 1",
            list(ROLES),
        )
    }
    return {
        "tables": tables,
        "views": views,
        "sequences": sequences,
        "functions": functions,
        "types": types,
        "extensions": extensions,
        "roles": roles,
    }


def history_files(commit: str, repo: Path) -> dict[str, str]:
    """The versioned migration files of ``sql/`` at ``commit``: {file name: text}."""
    names = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "--name-only", f"{commit}:sql"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        name: subprocess.run(
            ["git", "-C", str(repo), "show", f"{commit}:sql/{name}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for name in sorted(names)
        if name.endswith(".sql")
    }


async def describe_history(admin_dsn: str, files: dict[str, str]) -> dict[str, Any]:
    """Run ``files`` in name order, one transaction each, on a fresh database; describe the result."""
    from conftest import with_database  # tests/ is on sys.path (pytest's rootdir, or this script's folder)

    name = f"pbx_sla_shape_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(admin_dsn, name))
        try:
            for text in files.values():
                async with conn.transaction():
                    await conn.execute(text)
            return await describe(conn)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _main(commit: str) -> None:
    from conftest import _find_server

    shape = await describe_history(await _find_server(), history_files(commit, REPO))
    json.dump(shape, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-git", required=True, metavar="COMMIT", help="a commit whose sql/ holds the history")
    asyncio.run(_main(parser.parse_args().from_git))
