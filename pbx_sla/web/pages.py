"""The dashboard's HTML pages, rendered from the reports' JSON documents (pure: dicts in, HTML out).

The figures shown are the values of ``pbx-sla trunks``, ``usage`` and ``sla`` ``--format json`` for the
same period: each figure's cell carries the JSON value in ``data-value`` (what the browser tests compare)
and shows it formatted. Every caller-controlled or catalogue text is escaped. No page shows a PIN: none is
ever read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from html import escape
from typing import Any
from urllib.parse import quote

from pbx_sla import __version__
from pbx_sla.domain.trunks import Segment
from pbx_sla.reports.render import hours_minutes_seconds
from pbx_sla.web import svg

CSS = """
:root { --up:#2e7d32; --down:#c62828; --unknown:#9e9e9e; --maintenance:#1565c0; --ink:#212121; --muted:#666; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, "DejaVu Sans", sans-serif; color: var(--ink); margin: 0; background: #fafafa; }
header { background: #263238; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.5rem; align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header form { margin-left: auto; }
main { padding: 1rem 1.2rem; max-width: 1200px; }
h1 { font-size: 1.4rem; margin: .2rem 0 .8rem; } h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
table { border-collapse: collapse; background: #fff; margin-bottom: .6rem; }
th, td { border-bottom: 1px solid #e0e0e0; padding: .3rem .6rem; text-align: left; vertical-align: middle; }
th { background: #eceff1; font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: 0 .45rem; border-radius: .6rem; color: #fff; font-size: .85em; }
.state-up, .ok-badge { background: var(--up); } .state-down, .breach-badge { background: var(--down); }
.state-unknown, .state-none { background: var(--unknown); } .state-maintenance { background: var(--maintenance); }
.ok-badge, .breach-badge { color: #fff; padding: 0 .45rem; border-radius: .6rem; font-size: .85em; }
.chart { width: 100%; background: #fff; border: 1px solid #e0e0e0; }
.timeline { height: 52px; } .tick { stroke: #9e9e9e; } .bars { height: auto; }
.seg-up { fill: var(--up); } .seg-down { fill: var(--down); } .seg-unknown { fill: var(--unknown); }
.seg-maintenance { fill: var(--maintenance); }
.bar { fill: #546e7a; } .bar.over { fill: #ef6c00; } .axis { stroke: #9e9e9e; }
.threshold { stroke: #c62828; stroke-dasharray: 6 4; stroke-width: 1.5; }
.threshold-label { fill: #c62828; font-size: 12px; } .day, .scale { fill: var(--muted); font-size: 11px; }
.meter-frame { fill: #eceff1; } .meter-fill.ok { fill: var(--up); } .meter-fill.bad { fill: var(--down); }
.meter-target { stroke: #212121; stroke-width: 1.5; }
.legend span { margin-right: 1rem; }
.legend i { display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; }
.muted { color: var(--muted); } footer { color: var(--muted); padding: 1rem 1.2rem; font-size: .85em; }
.figures { display: flex; flex-wrap: wrap; gap: .8rem; margin-bottom: .8rem; }
.figure { background: #fff; border: 1px solid #e0e0e0; padding: .5rem .8rem; min-width: 9rem; }
.figure b { display: block; font-size: 1.25rem; font-variant-numeric: tabular-nums; }
@media print { header form, nav { display: none; } body { background: #fff; } }
"""


def pct(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def duration(value: float | None) -> str:
    return hours_minutes_seconds(value, missing="–")


def figure(value: Any, text: str | None = None, *, key: str, num: bool = True) -> str:
    """A table cell carrying the report's JSON value (``data-value``) and showing ``text``."""
    raw = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    shown = text if text is not None else ("–" if value is None else str(value))
    cls = ' class="num"' if num else ""
    return f'<td{cls} data-key="{escape(key)}" data-value="{escape(raw)}">{escape(shown)}</td>'


def state_badge(state: str | None) -> str:
    value = state or "none"
    return f'<span class="state state-{escape(value)}">{escape(state or "never seen")}</span>'


def trunk_href(server: str, trunk: str, period: str | None) -> str:
    q = f"?period={quote(period)}" if period else ""
    return f"/trunks/{quote(server, safe='')}/{quote(trunk, safe='')}{q}"


def tenant_href(tenant: str, period: str | None) -> str:
    q = f"?period={quote(period)}" if period else ""
    return f"/tenants/{quote(tenant, safe='')}{q}"


def layout(title: str, body: str, *, period_label: str, month: str | None, path: str) -> str:
    month_value = escape(month or "")
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · pbx-sla</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><style>{CSS}</style></head><body>'
        f'<header><a href="/{"?period=" + quote(month) if month else ""}">pbx-sla</a>'
        f'<span class="muted">{escape(period_label)}</span>'
        f'<form method="get" action="{escape(path)}"><label>month '
        f'<input type="month" name="period" value="{month_value}"></label> <button>show</button></form></header>'
        f"<main>{body}</main>"
        f"<footer>pbx-sla {escape(__version__)} · read-only · figures as <code>pbx-sla trunks/usage/sla "
        f"--format json</code> for the same period</footer></body></html>\n"
    )


def _period_label(period: Mapping[str, str]) -> str:
    return f"{period['from']} .. {period['to']}"


def _legend() -> str:
    items = ("up", "down", "unknown", "maintenance")
    return '<p class="legend">' + "".join(f'<span><i class="seg-box state-{s}"></i>{s}</span>' for s in items) + "</p>"


def overview(
    *,
    month: str | None,
    states: Sequence[Mapping[str, Any]],
    trunks: Mapping[str, Any],
    sla: Mapping[str, Any],
    now: datetime,
) -> str:
    """Trunks now (``status``), the period's availability (``trunks``), SLA per tenant (``sla``)."""
    rows = []
    for t in states:
        rtt = t.get("rtt_ms")
        since = t.get("since")
        rows.append(
            f'<tr data-trunk="{escape(t["server"])}/{escape(t["trunk"])}">'
            f"<td>{escape(t['server'])}</td>"
            f'<td><a href="{escape(trunk_href(t["server"], t["trunk"], month))}">{escape(t["trunk"])}</a></td>'
            f'<td data-key="state" data-value="{escape(t.get("state") or "")}">{state_badge(t.get("state"))}</td>'
            f"<td>{escape(since.isoformat(timespec='seconds') if isinstance(since, datetime) else str(since or '–'))}"
            f"</td>{figure(rtt, '–' if rtt is None else f'{rtt:g} ms', key='rtt_ms')}</tr>"
        )
    now_table = (
        '<table id="trunks-now"><thead><tr><th>server</th><th>trunk</th><th>state</th><th>since</th>'
        '<th class="num">qualify RTT</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
        if rows
        else '<p class="muted">No trunk known yet.</p>'
    )
    avail_rows = []
    for t in trunks["trunks"]:
        avail_rows.append(
            f'<tr data-trunk="{escape(t["server"])}/{escape(t["trunk"])}"><td>{escape(t["server"])}</td>'
            f'<td><a href="{escape(trunk_href(t["server"], t["trunk"], month))}">{escape(t["trunk"])}</a></td>'
            f"{figure(t['availability'], pct(t['availability']), key='availability')}"
            f"<td>{svg.meter(t['availability'], t['target'])}</td>"
            f"{figure(t['target'], pct(t['target']), key='target')}"
            f"{figure(t['down_seconds'], duration(t['down_seconds']), key='down_seconds')}"
            f"{figure(t['unknown_seconds'], duration(t['unknown_seconds']), key='unknown_seconds')}"
            f"{figure(t['outage_count'], key='outage_count')}</tr>"
        )
    avail_table = (
        '<table id="trunks-period"><thead><tr><th>server</th><th>trunk</th><th class="num">availability</th><th></th>'
        '<th class="num">target</th><th class="num">down</th><th class="num">unknown</th>'
        '<th class="num">outages</th></tr></thead><tbody>' + "".join(avail_rows) + "</tbody></table>"
    )
    sla_rows = []
    for t in sla["tenants"]:
        breached = bool(t["breaches"])
        badge = (
            f'<span class="breach-badge">breach: {escape(", ".join(b["metric"] for b in t["breaches"]))}</span>'
            if breached
            else '<span class="ok-badge">met</span>'
        )
        sla_rows.append(
            f'<tr data-tenant="{escape(t["tenant"])}">'
            f'<td><a href="{escape(tenant_href(t["tenant"], month))}">{escape(t["tenant"])}</a></td>'
            f"<td>{escape(t['tier'])}</td>"
            f'<td data-key="breached" data-value="{str(breached).lower()}">{badge}</td>'
            f"{figure(t['support_calls'], key='support_calls')}"
            f"{figure(t['service_level'], pct(t['service_level'], 2), key='service_level')}"
            f"{figure(t['availability'], pct(t['availability']), key='availability')}"
            f"{figure(t['credit']['amount'], t['credit']['amount'] + ' ' + t['credit']['currency'], key='credit')}"
            "</tr>"
        )
    sla_table = (
        '<table id="sla"><thead><tr><th>tenant</th><th>tier</th><th>SLA</th><th class="num">support calls</th>'
        '<th class="num">service level</th><th class="num">availability</th><th class="num">credit</th>'
        "</tr></thead><tbody>" + "".join(sla_rows) + "</tbody></table>"
    )
    body = (
        "<h1>Overview</h1>"
        f'<h2>Trunks now <span class="muted">({escape(now.isoformat(timespec="seconds"))})</span></h2>{now_table}'
        f"<h2>Availability over the period</h2>{avail_table}"
        f"<h2>SLA per tenant</h2>{sla_table}"
    )
    return layout("Overview", body, period_label=_period_label(trunks["period"]), month=month, path="/")


def _outages(outages: Iterable[Mapping[str, Any]]) -> str:
    rows = [
        f"<tr><td>{escape(o['start'])}</td><td>{escape(o['end'])}</td>"
        f"{figure(o['seconds'], duration(o['seconds']), key='seconds')}</tr>"
        for o in outages
    ]
    if not rows:
        return '<p class="muted" id="no-outages">No outage in the period.</p>'
    return (
        '<table id="outages"><thead><tr><th>start</th><th>end</th><th class="num">duration</th></tr></thead>'
        "<tbody>" + "".join(rows) + "</tbody></table>"
    )


def trunk_page(
    *,
    month: str | None,
    path: str,
    period: Mapping[str, str],
    trunk: Mapping[str, Any],
    start: datetime,
    end: datetime,
    timeline: Sequence[Segment],
    tz: tzinfo = UTC,
) -> str:
    """One trunk: its figures, the timeline of the period and the outage list (``trunks`` report)."""
    name = f"{trunk['server']} / {trunk['trunk']}"
    cards = "".join(
        f'<div class="figure" data-key="{key}" data-value="{escape("" if value is None else str(value))}">'
        f"{escape(label)}<b>{escape(text)}</b></div>"
        for key, label, value, text in (
            ("availability", "availability", trunk["availability"], pct(trunk["availability"])),
            ("target", "target", trunk["target"], pct(trunk["target"])),
            ("up_seconds", "up", trunk["up_seconds"], duration(trunk["up_seconds"])),
            ("down_seconds", "down", trunk["down_seconds"], duration(trunk["down_seconds"])),
            ("unknown_seconds", "unknown", trunk["unknown_seconds"], duration(trunk["unknown_seconds"])),
            (
                "maintenance_seconds",
                "maintenance",
                trunk["maintenance_seconds"],
                duration(trunk["maintenance_seconds"]),
            ),
            ("outage_count", "outages", trunk["outage_count"], str(trunk["outage_count"])),
            ("mttr_seconds", "MTTR", trunk["mttr_seconds"], duration(trunk["mttr_seconds"])),
        )
    )
    body = (
        f"<h1>Trunk {escape(name)}</h1>"
        f'<div class="figures">{cards}</div>'
        f"<h2>Timeline</h2>{svg.timeline(start, end, timeline, label=f'state of {name}', tz=tz)}{_legend()}"
        f"<h2>Outages</h2>{_outages(trunk['outages'])}"
    )
    return layout(f"Trunk {name}", body, period_label=_period_label(period), month=month, path=path)


def tenant_page(
    *,
    month: str | None,
    path: str,
    period: Mapping[str, str],
    usage: Mapping[str, Any],
    sla: Mapping[str, Any],
    threshold: int | None,
    extra_sections: str = "",
) -> str:
    """One tenant: daily calls against the tier's threshold (``usage``), service level and credit (``sla``)."""
    daily = {date.fromisoformat(d): n for d, n in usage["daily"].items()}
    cpd = usage["calls_per_day"]
    cards = [
        ("calls", "calls", usage["calls"], str(usage["calls"])),
        ("answered", "answered", usage["answered"], str(usage["answered"])),
        ("asr", "ASR", usage["asr"], pct(usage["asr"], 1)),
        ("p95", "p95 calls/day", cpd["p95"], str(cpd["p95"])),
        ("over_tier_days", "days over tier", usage["over_tier_days"], str(usage["over_tier_days"])),
        ("tier_by_usage", "tier by usage", usage["tier_by_usage"], usage["tier_by_usage"] or "–"),
        ("fee", "fee", usage["fee"]["amount"], f"{usage['fee']['amount']} {usage['fee']['currency']}"),
        ("service_level", "service level", sla["service_level"], pct(sla["service_level"], 2)),
        ("service_level_target", "SL target", sla["service_level_target"], pct(sla["service_level_target"], 2)),
        ("availability", "availability", sla["availability"], pct(sla["availability"])),
        ("credit", "credit", sla["credit"]["amount"],
         f"{sla['credit']['percent']:g} % = {sla['credit']['amount']} {sla['credit']['currency']}"),
    ]  # fmt: skip
    card_html = "".join(
        f'<div class="figure" data-key="{key}" data-value="{escape("" if value is None else str(value))}">'
        f"{escape(label)}<b>{escape(text)}</b></div>"
        for key, label, value, text in cards
    )
    breaches = (
        '<table id="breaches"><thead><tr><th>metric</th><th class="num">target</th><th class="num">actual</th>'
        "</tr></thead><tbody>"
        + "".join(
            f"<tr><td>{escape(b['metric'])}</td>{figure(b['target'], pct(b['target'], 2), key='target')}"
            f"{figure(b['actual'], pct(b['actual'], 2), key='actual')}</tr>"
            for b in sla["breaches"]
        )
        + "</tbody></table>"
        if sla["breaches"]
        else '<p class="muted" id="no-breaches">No breach in the period.</p>'
    )
    support = (
        '<table id="support"><tbody>'
        f"<tr><th>support calls</th>{figure(sla['support_calls'], key='support_calls')}</tr>"
        f"<tr><th>answered</th>{figure(sla['answered'], key='support_answered')}</tr>"
        f"<tr><th>answered within {sla['answer_target_seconds']} s</th>"
        f"{figure(sla['answered_within_target'], key='answered_within_target')}</tr>"
        f"<tr><th>abandoned</th>{figure(sla['abandoned'], key='abandoned')}</tr></tbody></table>"
    )
    title = f"Tenant {usage['tenant']}"
    chart = svg.daily_bars(daily, threshold, label=f"calls per day of {usage['tenant']}")
    body = (
        f'<h1>{escape(title)} <span class="muted">tier {escape(usage["tier"] or "–")}</span></h1>'
        f'<div class="figures">{card_html}</div>'
        f"<h2>Calls per day</h2>{chart}"
        f"<h2>Support line</h2>{support}<h2>Breaches</h2>{breaches}{extra_sections}"
    )
    return layout(title, body, period_label=_period_label(period), month=month, path=path)


def error_page(status: int, message: str) -> str:
    return layout(f"{status}", f"<h1>{status}</h1><p>{escape(message)}</p>", period_label="", month=None, path="/")


PRINT_CSS = """
@page { size: A4; margin: 18mm 16mm; }
body { font: 11pt/1.4 "DejaVu Sans", system-ui, sans-serif; color: #111; margin: 0; }
section.statement { page-break-after: always; max-width: 180mm; margin: 0 auto 2rem; }
section.statement:last-child { page-break-after: auto; }
h1 { font-size: 16pt; margin: 0 0 .2rem; } h2 { font-size: 12pt; margin: 1.2rem 0 .4rem; }
.meta { color: #555; font-size: 9pt; margin-bottom: 1rem; }
table { border-collapse: collapse; width: 100%; } th, td { padding: .25rem .4rem; border-bottom: 1px solid #ccc; }
th { text-align: left; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td, tr.total th { border-top: 2px solid #111; font-weight: 700; }
.breach { color: #b71c1c; font-weight: 600; }
"""


def _money(amount: Any, currency: str) -> str:
    return "–" if amount is None else f"{amount} {currency}"


def statement_document(report: Mapping[str, Any]) -> str:
    """Printable HTML of a closed month's statements: one page per tenant (``statement show --format html``).

    Print it from a browser to paper or PDF; nothing is fetched from elsewhere."""
    closed = report["closed"]
    meta = (
        f"Period {escape(report['period']['from'])} .. {escape(report['period']['to'])} · closed "
        f"{escape(closed['closed_at'])} · catalogue revision {escape(str(closed['catalogue_revision']))} · "
        f"pbx-sla {escape(closed['code_version'])}"
    )
    sections = []
    for s in report["statements"]:
        f = s["figures"]
        cur = s["amount_due"]["currency"]
        rows = []
        if f.get("listed", True):
            breaches = ", ".join(
                f"{b['metric']} {pct(b['actual'], 2)} < {pct(b['target'], 2)}" for b in f.get("breaches", [])
            )
            rows += [
                ("Tier", escape(str(f.get("tier") or "–")), False),
                ("Calls (answered)", f"{f['calls']} ({f['answered']})", True),
                ("Billable time", duration(f["billable_seconds"]), True),
                ("Calls per day: mean / p95 / max",
                 f"{f['calls_per_day']['mean']} / {f['calls_per_day']['p95']} / {f['calls_per_day']['max']}", True),
                ("Days above the tier's limit", str(f["over_tier_days"]), True),
                ("Tier by usage", escape(str(f.get("tier_by_usage") or "–")), False),
                ("Support calls (answered within target)", f"{f['support_calls']} ({f['answered_within_target']})",
                 True),
                ("Service level (target)", f"{pct(f['service_level'], 2)} ({pct(f['service_level_target'], 2)})", True),
                ("Availability (target)", f"{pct(f['availability'])} ({pct(f['availability_target'])})", True),
                *([("Support requests reacted to in time (target)",
                    f"{pct(f['reaction'], 2)} ({pct(f.get('reaction_share_target'), 2)})", True)]
                  if "reaction" in f else []),
                ("SLA breaches", f'<span class="breach">{escape(breaches)}</span>' if breaches else "none", False),
            ]  # fmt: skip
        figures = "".join(
            f"<tr><th>{escape(label)}</th><td{' class=num' if num else ''}>{value}</td></tr>"
            for label, value, num in rows
        )
        money_rows = [
            f'<tr><th>Fee for the month</th><td class="num" data-key="fee">{escape(_money(f.get("fee"), cur))}'
            "</td></tr>",
            f"<tr><th>SLA credit ({f.get('credit_percent', 0):g} %)</th>"
            f'<td class="num" data-key="credit">− {escape(_money(f.get("credit"), cur))}</td></tr>',
        ]
        for a in s["adjustments"]:
            if a["figure"] in ("fee", "credit"):
                sign = "" if a["figure"] == "fee" else "− "
                money_rows.append(
                    f"<tr><th>Adjustment {escape(a['period'])}: {escape(a['figure'])} {escape(str(a['was']))} → "
                    f"{escape(str(a['now']))}</th><td class=num>{sign}{escape(_money(a['delta'], cur))}</td></tr>"
                )
        money_rows.append(
            f'<tr class="total"><th>Amount due</th><td class="num" data-key="amount_due">'
            f"{escape(_money(s['amount_due']['amount'], cur))}</td></tr>"
        )
        other = [a for a in s["adjustments"] if a["figure"] not in ("fee", "credit")]
        adjust = (
            "<h2>Changes to earlier months since they were stated</h2><table><thead><tr><th>month</th><th>figure</th>"
            '<th class="num">stated</th><th class="num">now</th></tr></thead><tbody>'
            + "".join(
                f"<tr><td>{escape(a['period'])}</td><td>{escape(a['figure'])}</td>"
                f'<td class="num">{escape(str(a["was"]))}</td><td class="num">{escape(str(a["now"]))}</td></tr>'
                for a in other
            )
            + "</tbody></table>"
            if other
            else ""
        )
        sections.append(
            f'<section class="statement" data-tenant="{escape(s["tenant"])}">'
            f"<h1>Service statement {escape(report['month'])} — {escape(s['tenant'])}</h1>"
            f'<p class="meta">{meta}</p>'
            f"<h2>Usage and service levels</h2><table><tbody>{figures}</tbody></table>"
            f"<h2>Amount</h2><table><tbody>{''.join(money_rows)}</tbody></table>{adjust}</section>"
        )
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>Statements {escape(report["month"])}</title>'
        f"<style>{PRINT_CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )
