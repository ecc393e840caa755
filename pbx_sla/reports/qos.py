"""The ``qos`` report: voice quality per trunk and per tenant over a period, with targets and breaches.

Which legs count (docs/qos.md, "Attribution"): a leg's figures describe the media Asterisk received on
that channel, i.e. the path from that channel's peer. Only legs on a catalogue trunk's endpoint count:

* a trunk's figures: the measured legs on its endpoint that hung up in the period;
* a tenant's figures: the same trunk legs, of the tenant's calls (leg linkedid = the call's key).

The legs of phones, agents and anonymous callers are stored but not counted: their loss is the caller's
or the LAN's own, not the carrier's (on a bridged call the caller's own leg is not the trunk's fault).
Figures: :func:`pbx_sla.domain.qos.figures`; MOS per leg: :func:`pbx_sla.domain.qos.leg_mos`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

import asyncpg

from pbx_sla.domain.catalogue import Catalogue
from pbx_sla.domain.qos import (
    DEFAULT_POOR_MOS,
    Codec,
    LegQuality,
    MeasuredLeg,
    QosFigures,
    QosTargets,
    breaches,
    codec,
    figures,
    figures_of,
    leg_mos,
    totals,
)
from pbx_sla.errors import ConfigError
from pbx_sla.reports.period import Period
from pbx_sla.reports.render import Table, rounded
from pbx_sla.reports.servers import footer, server_scope
from pbx_sla.store.catalogue import load_catalogue
from pbx_sla.store.qos import tenant_totals, trunk_legs


def figures_json(f: QosFigures, targets: QosTargets | None) -> dict[str, Any]:
    """The figures (ratios 0..1, ms, MOS; null without data; docs/qos.md) and the breaches of ``targets``."""
    # the fields one level deep (all numbers): dataclasses.asdict deep-copies each, 40 ms for 500 tenants
    values = ((field.name, getattr(f, field.name)) for field in fields(f))
    out: dict[str, Any] = {k: rounded(v) if isinstance(v, float) else v for k, v in values}
    out["breaches"] = [
        {"metric": b.metric, "target": float(b.target), "actual": rounded(b.actual)} for b in breaches(f, targets)
    ]
    return out


def measured(rows: Iterable[asyncpg.Record]) -> list[tuple[asyncpg.Record, MeasuredLeg]]:
    """The measured legs of :func:`pbx_sla.store.qos.trunk_legs` rows with their MOS. A month can hold
    hundreds of thousands of legs: each leg is built from the row's columns directly (the fields
    :func:`pbx_sla.domain.qos.leg_from_record` would take from it) and each codec name is resolved once."""
    out = []
    codecs: dict[str | None, Codec] = {}
    for r in rows:
        name = r["codec"]
        values = codecs.get(name)
        if values is None:
            values = codecs[name] = codec(name)
        leg = LegQuality(r["received"], r["lost"], jitter_ms=r["jitter_ms"], jitter_max_ms=r["jitter_max_ms"],
                         rtt_ms=r["rtt_ms"])  # fmt: skip
        value = leg_mos(leg, values)
        if value is None:
            continue
        jitter = leg.jitter_ms or 0.0
        out.append((r, MeasuredLeg(leg.received, leg.lost, jitter, leg.jitter_max_ms or jitter, leg.rtt_ms, value)))
    return out


def _trunk_ref(cat: Catalogue | None, ref: str) -> tuple[str, str]:
    if cat is not None:
        trunk = cat.trunk(ref)
        if trunk is not None:
            return trunk.server, trunk.name
    raise ConfigError(f"--trunk: no trunk {ref!r} in the catalogue (give NAME or SERVER/NAME)")


def tenant_targets(cat: Catalogue | None, tenant: str) -> QosTargets | None:
    if cat is None or tenant not in cat.tenants:
        return None
    tier = cat.tiers.get(cat.tenants[tenant].tier)
    return tier.qos if tier is not None else None


async def tenant_figures(
    conn: asyncpg.Connection,
    period: Period,
    cat: Catalogue | None,
    servers: Sequence[str] | None = None,
    tenant: str | None = None,
) -> dict[str, tuple[QosFigures, QosTargets | None]]:
    """Every catalogue tenant's figures over its calls' trunk legs (on ``servers`` only, when given), with its
    tier's targets (``sla`` report); of ``tenant`` only, when given.

    The legs are summed per tenant in SQL (:func:`pbx_sla.store.qos.tenant_totals`: a month holds hundreds of
    thousands of trunk legs; each leg's MOS and call's tenant are stored with it since sql/1710), then
    :func:`pbx_sla.domain.qos.figures_of` makes the figures, as :func:`pbx_sla.domain.qos.figures` does from
    the legs (counts, p95s and poor legs equal; the means' float sums add in another order: equal up to
    rounding)."""
    wanted: dict[str, QosTargets | None] = {}
    for tenant_id in cat.tenants if cat else ():
        if tenant is None or tenant_id == tenant:
            wanted[tenant_id] = tenant_targets(cat, tenant_id)
    if not wanted:
        return {}
    poor = {t: targets.poor_threshold if targets else DEFAULT_POOR_MOS for t, targets in wanted.items()}
    sums = await tenant_totals(conn, period.start, period.end, poor, servers)
    return {t: (figures_of(sums.get(t) or totals([])), targets) for t, targets in wanted.items()}


async def qos_report(
    conn: asyncpg.Connection,
    period: Period,
    *,
    trunk: str | None = None,
    tenant: str | None = None,
    servers: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The report as its JSON document (``period``, ``servers``, ``scope``, ``trunks``, ``tenants``; keys in
    docs/qos.md); ``servers``: the ``--server`` names (None: the fleet): their trunks, and the tenants' legs
    on them."""
    scope = await server_scope(conn, servers)
    cat = await load_catalogue(conn)
    only_trunk = _trunk_ref(cat, trunk) if trunk else None
    if only_trunk and not scope.includes(only_trunk[0]):
        raise ConfigError(f"--trunk: {'/'.join(only_trunk)} is not on --server {', '.join(scope.servers)}")
    if tenant is not None and (cat is None or tenant not in cat.tenants):
        raise ConfigError(f"--tenant: no tenant {tenant!r} in the catalogue")
    legs = measured(await trunk_legs(conn, period.start, period.end, scope.sql))
    if only_trunk:
        legs = [(r, m) for r, m in legs if (r["server"], r["trunk"]) == only_trunk]
    if tenant:
        legs = [(r, m) for r, m in legs if r["tenant_id"] == tenant]

    # grouped in one pass each, in the legs' order (the same lists as filtering the legs per trunk / tenant)
    by_trunk: dict[tuple[str, str], list[MeasuredLeg]] = {}
    by_tenant: dict[str | None, list[MeasuredLeg]] = {}
    for r, m in legs:
        by_trunk.setdefault((r["server"], r["trunk"]), []).append(m)
        by_tenant.setdefault(r["tenant_id"], []).append(m)

    trunk_rows = []
    for t in cat.trunks if cat else ():
        if (only_trunk and (t.server, t.name) != only_trunk) or not scope.includes(t.server):
            continue
        poor = t.qos.poor_threshold if t.qos else DEFAULT_POOR_MOS
        own = by_trunk.get((t.server, t.name), [])
        if tenant and not own:
            continue
        trunk_rows.append({"server": t.server, "trunk": t.name, **figures_json(figures(own, poor), t.qos)})

    tenant_rows = []
    for tenant_id in sorted(cat.tenants if cat else ()):
        if tenant and tenant_id != tenant:
            continue
        targets = tenant_targets(cat, tenant_id)
        poor = targets.poor_threshold if targets else DEFAULT_POOR_MOS
        own = by_tenant.get(tenant_id, [])
        if only_trunk and not own:
            continue
        tenant_rows.append({"tenant": tenant_id, **figures_json(figures(own, poor), targets)})
    return {"period": period.as_json(), **scope.as_json(), "trunks": trunk_rows, "tenants": tenant_rows}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(kind: str, name: str, f: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        kind,
        name,
        f["legs_measured"],
        f["packets_received"],
        f["packets_lost"],
        _pct(f["loss_ratio"]),
        _num(f["jitter_ms_mean"]),
        _num(f["jitter_ms_p95"]),
        _num(f["rtt_ms_p95"]),
        _pct(f["rtt_coverage"]),
        _num(f["mos_mean"], 2),
        f["poor_calls"],
        _pct(f["poor_ratio"]),
        ", ".join(b["metric"] for b in f["breaches"]) or "-",
    )


def as_table(report: Mapping[str, Any]) -> Table:
    rows = [_row("trunk", f"{t['server']}/{t['trunk']}", t) for t in report["trunks"]]
    rows += [_row("tenant", t["tenant"], t) for t in report["tenants"]]
    p = report["period"]
    columns = (
        *("kind", "name", "legs", "packets", "lost", "loss", "jitter ms", "jitter p95", "RTT p95", "RTT cover"),
        *("MOS", "poor", "poor share", "breaches"),
    )
    return Table(columns, rows, title=f"Voice quality {p['from']} .. {p['to']}", footer=footer(report))
