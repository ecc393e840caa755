"""``pbx-sla contracts apply FILE [--dry-run]`` and ``pbx-sla contracts show [--format table|json]``."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import asyncpg

from pbx_sla.config import Settings
from pbx_sla.domain.calendar import hours_to_text
from pbx_sla.domain.catalogue import Catalogue, CreditRule
from pbx_sla.domain.catalogue_document import from_document
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.durations import format_duration
from pbx_sla.domain.qos import QosTargets
from pbx_sla.errors import ConfigError, InputError
from pbx_sla.reports.render import Table, to_json, to_table
from pbx_sla.store import migrate
from pbx_sla.store.calls import reattribute_unattributed
from pbx_sla.store.catalogue import apply_catalogue, latest_revision
from pbx_sla.store.pool import connect, resolve_dsn

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def read_catalogue_file(path: Path) -> Catalogue:
    """Read and validate a catalogue file; TOML syntax errors name ``file:line:column``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: catalogue file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_POSITION.search(message)
        where = f"{path}:{m.group(1)}:{m.group(2)}" if m else str(path)
        raise InputError(f"{where}: not valid TOML: {_TOML_POSITION.sub('', message).strip()}") from None
    return parse_catalogue(data, str(path))


async def apply(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    catalogue = read_catalogue_file(path)  # before touching the database: invalid means nothing applied
    warn_plain_pins(catalogue, path)
    conn = await connect(await resolve_dsn(settings))
    try:
        await migrate.upgrade(conn)  # a fresh database works
        changes = await apply_catalogue(conn, catalogue, str(path), dry_run=args.dry_run)
        if changes and not args.dry_run:
            # new account codes, DIDs or requester phones may now claim calls stored without a tenant
            await reattribute_unattributed(conn)
    finally:
        await conn.close()
    if args.dry_run:
        print(f"dry run: {path} would change {_count(changes)}; nothing applied")
    for line in changes.lines():
        print(line)
    if not changes:
        print(f"no changes (catalogue revision {changes.revision_id})")
    elif not args.dry_run:
        print(f"{_count(changes)}; catalogue revision {changes.revision_id}")
    return 0


def warn_plain_pins(catalogue: Catalogue, path: Path) -> None:
    """A PIN in clear in the file is readable by whoever reads the file (and its backups): say so."""
    plain = [f"{t.id}/{r.name}" for t in catalogue.tenants.values() for r in t.requesters if r.pin is not None]
    if plain:
        shown = ", ".join(plain[:5]) + (f" and {len(plain) - 5} more" if len(plain) > 5 else "")
        print(f"pbx-sla: warning: {path}: {len(plain)} requester(s) hold a plain `pin` ({shown}); replace each by "
              "`pin_hash` printed by `pbx-sla pin hash` (docs/catalogue.md)", file=sys.stderr)  # fmt: skip


def _count(changes: Any) -> str:
    return f"{len(changes.added)} added, {len(changes.changed)} changed, {len(changes.deactivated)} deactivated"


def _ratio(value: Any) -> float | None:
    return None if value is None else float(value)


def _credit(rule: CreditRule) -> dict[str, Any]:
    """A credit rule as shown: its one bound, ``below`` (a figure under it triggers) or ``above``."""
    bound = {"below": float(rule.below)} if rule.below is not None else {"above": float(rule.above or 0)}
    return {"metric": rule.metric, **bound, "percent": float(rule.percent)}


def _qos(q: QosTargets | None) -> dict[str, dict[str, float]]:
    """``{"qos": targets}`` for ``show`` when a tier or trunk has voice-quality targets (docs/qos.md), else ``{}``."""
    if q is None:
        return {}
    return {"qos": {k: float(v) for k, v in dataclasses.asdict(q).items() if v is not None}}


def show_report(cat: Catalogue | None, revision: Any, pbx_trunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``contracts show --format json`` document (keys in docs/catalogue.md). Requesters carry
    ``pin: true/false``, never a PIN or its hash."""
    if cat is None:
        return {
            "revision": None, "timezone": None, "country_code": None, "calendars": [], "tiers": [], "tenants": [],
            "trunks": pbx_trunks, "maintenance": [], "support": None,
        }  # fmt: skip

    def trunk_ref(ref: str) -> str:
        trunk = cat.trunk(ref)
        return f"{trunk.server}/{trunk.name}" if trunk else ref

    return {
        "revision": {
            "id": revision.id,
            "applied_at": revision.applied_at,
            "source": revision.source,
            "sha256": revision.sha256,
        },
        "timezone": cat.timezone,
        "country_code": cat.country_code,
        "calendars": [
            {
                "name": c.name,
                "always": c.always,
                "hours": hours_to_text(c.hours),
                "holidays": sorted(c.holidays),
            }
            for c in cat.calendars.values()
        ],
        "tiers": [
            {
                "name": t.name,
                "price_per_year": t.price_per_year,
                "currency": t.currency,
                "max_calls_per_day": t.max_calls_per_day,
                "max_employees": t.max_employees,
                "calendar": t.calendar,
                "queue": t.queue,
                "priority": t.priority,
                "out_of_hours": t.out_of_hours.as_text(),
                "answer_target_seconds": t.answer_target_seconds,
                "service_level_target": _ratio(t.service_level_target),
                "availability_target": _ratio(t.availability_target),
                "credits": [_credit(c) for c in t.credits],
                **_qos(t.qos),
                "reaction_target_seconds": t.reaction_target,
                "reaction_share_target": _ratio(t.reaction_share_target),
            }
            for t in cat.tiers.values()
        ],
        "tenants": [
            {
                "id": t.id,
                "name": t.name,
                "tier": t.tier,
                "employees": t.employees,
                "contract_start": t.contract_start,
                "contract_end": t.contract_end,
                "accountcodes": list(t.accountcodes),
                "dids": list(t.dids),
                "trunks": [trunk_ref(ref) for ref in t.trunks],
                "requesters": [
                    {"name": r.name, "phones": list(r.phones), "pin": r.pin_hash is not None} for r in t.requesters
                ],
                "support_hours_per_year": None if t.support_hours_per_year is None else str(t.support_hours_per_year),
                "support_packages": [
                    {"hours": str(k.hours), "start": k.start, "end": k.end} for k in t.support_packages
                ],
            }
            for t in cat.tenants.values()
        ],
        "trunks": [
            {
                "server": t.server,
                "name": t.name,
                "availability_target": _ratio(t.availability_target),
                **_qos(t.qos),
                "in_catalogue": True,
            }
            for t in cat.trunks
        ]
        + pbx_trunks,
        "maintenance": [
            {"start": w.start, "end": w.end, "server": w.server, "trunk": w.trunk, "reason": w.reason}
            for w in cat.maintenance
        ],
        "support": {
            "staff": list(cat.support.staff),
            "callback_min_seconds": cat.support.callback_min_seconds,
            "line_contexts": list(cat.support.line_contexts),
        },
    }


def _tables(report: dict[str, Any]) -> list[Table]:
    def join(items: Any) -> str:
        return ", ".join(str(i) for i in items) or "-"

    def hours(c: dict[str, Any]) -> str:
        return "24/7" if c["always"] else "; ".join(f"{d} {' '.join(r)}" for d, r in c["hours"].items())

    def reaction(t: dict[str, Any]) -> str:
        seconds = t["reaction_target_seconds"]
        if seconds is None:
            return "-"
        share = t["reaction_share_target"]
        return format_duration(seconds) + ("" if share is None else f" ({share:g})")

    def credits(t: dict[str, Any]) -> str:
        def bound(c: dict[str, Any]) -> str:
            return f"<{c['below']:g}" if "below" in c else f">{c['above']:g}"

        return join(f"{c['metric'][:5]}{bound(c)}:{c['percent']:g}%" for c in t["credits"])

    return [
        Table(
            ["name", "hours", "holidays"],
            [[c["name"], hours(c), join(c["holidays"])] for c in report["calendars"]],
            title="Calendars",
        ),
        Table(
            [
                "tier",
                "price/year",
                "calls/day",
                "employees",
                "calendar",
                "queue",
                "prio",
                "out of hours",
                "answer s",
                "SL target",
                "avail target",
                "credits",
                "reaction",
            ],
            [
                [
                    t["name"],
                    f"{t['price_per_year']} {t['currency']}",
                    t["max_calls_per_day"],
                    t["max_employees"],
                    t["calendar"],
                    t["queue"],
                    t["priority"],
                    t["out_of_hours"],
                    t["answer_target_seconds"],
                    t["service_level_target"],
                    t["availability_target"],
                    credits(t),
                    reaction(t),
                ]
                for t in report["tiers"]
            ],
            title="Tiers",
        ),
        Table(
            ["tenant", "name", "tier", "employees", "contract", "accountcodes", "dids", "trunks"],
            [
                [
                    t["id"],
                    t["name"],
                    t["tier"],
                    t["employees"],
                    f"{t['contract_start']}..{t['contract_end'] or ''}",
                    join(t["accountcodes"]),
                    join(t["dids"]),
                    join(t["trunks"]),
                ]
                for t in report["tenants"]
            ],
            title="Tenants",
        ),
        Table(
            ["tenant", "requester", "phones", "pin"],
            [[t["id"], r["name"], join(r["phones"]), r["pin"]] for t in report["tenants"] for r in t["requesters"]],
            title="Requesters",
        ),
        Table(
            ["server", "trunk", "avail target", "in catalogue"],
            [[t["server"], t["name"], t["availability_target"], t["in_catalogue"]] for t in report["trunks"]],
            title="Trunks",
        ),
        Table(
            ["scope", "start", "end", "reason"],
            [
                [f"{w['server'] or '*'}/{w['trunk'] or '*'}", w["start"], w["end"], w["reason"]]
                for w in report["maintenance"]
            ],
            title="Maintenance",
        ),
    ]


async def show(args: argparse.Namespace, settings: Settings) -> int:
    conn = await connect(await resolve_dsn(settings))
    try:
        try:
            revision = await latest_revision(conn)
            rows = await conn.fetch(
                "SELECT server, name, availability_target FROM trunks WHERE NOT in_catalogue ORDER BY server, name"
            )
        except asyncpg.UndefinedTableError:  # schema never created: nothing applied yet
            revision, rows = None, []
    finally:
        await conn.close()
    pbx_trunks = [
        {
            "server": r["server"],
            "name": r["name"],
            "availability_target": _ratio(r["availability_target"]),
            "in_catalogue": False,
        }
        for r in rows
    ]
    cat = from_document(revision.document) if revision else None
    report = show_report(cat, revision, pbx_trunks)
    if args.format == "json":
        print(to_json(report))
        return 0
    if revision is None or cat is None:
        print("no catalogue applied yet (pbx-sla contracts apply FILE)")
    else:
        print(
            f"catalogue revision {revision.id} from {revision.source}, applied "
            f"{revision.applied_at.isoformat(timespec='seconds')}; time zone {cat.timezone}, "
            f"country code +{cat.country_code}"
        )
    print("\n\n".join(to_table(t) for t in _tables(report)))
    return 0
