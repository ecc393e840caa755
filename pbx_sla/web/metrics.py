"""Prometheus metrics of the daemon (``GET /metrics``), with the standard ``prometheus_client`` library.

Three sources, each read where it lives:

* the FastAGI hot path updates :class:`AgiMetrics` (counters, a latency histogram, a gauge) as calls come;
* the AMI collectors and the durable writer are read when Prometheus scrapes (:class:`DaemonCollector`),
  from the same objects ``status.json`` is written from;
* database figures (trunk states as ``pbx-sla status`` shows them, this month's calls per tenant as
  ``pbx-sla usage`` counts them, each catalogue tenant's support requests not reacted to yet as
  ``pbx-sla requests --open`` lists them) are computed by
  :func:`database_figures` in the background every ``[http] refresh_seconds`` and served from memory, so
  a scrape never waits on PostgreSQL.

Label values come from the catalogue (tenants, trunks), from fixed token sets (decision actions and
reasons, dispositions, trunk states) or from the AMI event names the features handle (anything else is
``other``): never from callers, so the series count stays bounded.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pbx_sla import __version__
from pbx_sla.ami.collector import ServerStatus
from pbx_sla.domain.trunks import State
from pbx_sla.reports.period import Period, month_period
from pbx_sla.reports.requests import Unreacted, unreacted_by_tenant
from pbx_sla.reports.usage import usage_rows
from pbx_sla.store.settings import catalogue_timezone
from pbx_sla.store.trunks import current_states

#: decision latency buckets, seconds: the support line must answer within 300 ms
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5)
DISPOSITIONS = ("answered", "busy", "no_answer", "failed", "congestion")
#: the tenant label of calls no tenant was found for (as the ``usage`` report's ``(none)`` row)
UNATTRIBUTED = "(none)"


class AgiMetrics:
    """What the FastAGI server counts as it serves calls (cheap: a few lock-protected additions)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "pbx_sla_agi_decisions",
            "Support-line decisions by SUPPORT_ACTION (or hangup) and SUPPORT_REASON",
            ("action", "reason"),
            registry=registry,
        )
        self.latency = Histogram(
            "pbx_sla_agi_decision_seconds",
            "Our time on a support call, from headers to variables set (PIN entry excluded)",
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge("pbx_sla_agi_sessions_in_flight", "FastAGI sessions being served", registry=registry)
        self.pin_lockouts = Counter(
            "pbx_sla_agi_pin_lockouts", "Callers locked out after too many wrong PINs", registry=registry
        )

    def decided(self, action: str, reason: str, latency_ms: float) -> None:
        self.decisions.labels(action, reason).inc()
        self.latency.observe(latency_ms / 1000)


@dataclass(frozen=True)
class DatabaseFigures:
    """The database-derived figures of one refresh, and their exposition text (rendered once per refresh,
    in the background, so that a scrape only formats the few live families)."""

    taken_at: float
    month: str
    #: dicts of :func:`pbx_sla.store.trunks.current_states` (server, trunk, state, since, rtt_ms, ...)
    trunks: tuple[dict[str, Any], ...] = ()
    #: (tenant, disposition) → calls this month so far (the ``usage`` report's figures)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    #: catalogue tenant → its support requests not reacted to as of the refresh (open, of which overdue)
    requests: dict[str, Unreacted] = field(default_factory=dict)

    @functools.cached_property
    def exposition(self) -> bytes:
        """These figures in the Prometheus text format (computed on first use, then kept)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_FiguresCollector(self))
        return generate_latest(registry)


class _FiguresCollector(Collector):
    def __init__(self, figures: DatabaseFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        return DaemonCollector.database_families(self.figures)


def current_month(tz: Any, now: datetime | None = None) -> Period:
    local = (now or datetime.now(UTC)).astimezone(tz)
    return month_period(local.year, local.month, tz)


async def database_figures(conn: asyncpg.Connection, now: datetime | None = None) -> DatabaseFigures:
    """Trunk states (``status``'s function), this month's calls per tenant (``usage``'s function) and the
    support requests not reacted to per tenant (``requests``' derivation), as of ``now`` (default: now)."""
    now = now or datetime.now(UTC)
    period = current_month(await catalogue_timezone(conn), now)
    trunks = tuple(await current_states(conn))
    calls: dict[tuple[str, str], int] = {}
    for row in await usage_rows(conn, period):
        tenant = row.contract.tenant if row.contract else UNATTRIBUTED
        o = row.outcomes
        for disposition in DISPOSITIONS:
            calls[(tenant, disposition)] = getattr(o, disposition)
    requests = await unreacted_by_tenant(conn, now)
    return DatabaseFigures(time.time(), period.first_day.strftime("%Y-%m"), trunks, calls, requests)


class DaemonState(Protocol):
    """What :class:`DaemonCollector` reads from the daemon at scrape time."""

    @property
    def server_statuses(self) -> Sequence[ServerStatus]: ...

    @property
    def writer_figures(self) -> dict[str, Any]: ...

    @property
    def database_figures(self) -> DatabaseFigures | None: ...


def _gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


class DaemonCollector(Collector):
    """Reads the daemon's live objects when Prometheus scrapes."""

    def __init__(self, state: DaemonState) -> None:
        self.state = state

    def describe(self) -> Iterable[Metric]:
        return []  # dynamic label sets: registration needs no description

    def collect(self) -> Iterator[Metric]:
        info = _gauge("pbx_sla_build_info", "pbx-sla version", ("version",))
        info.add_metric([__version__], 1)
        yield info
        yield from self._ami(self.state.server_statuses)
        yield from self._writer(self.state.writer_figures)

    @staticmethod
    def _ami(statuses: Sequence[ServerStatus]) -> Iterator[Metric]:
        up = _gauge("pbx_sla_ami_up", "1 while the AMI session of the server is logged in", ("server",))
        reconnects = _counter("pbx_sla_ami_reconnects", "AMI reconnect attempts since start", ("server",))
        events = _counter(
            "pbx_sla_ami_events", "AMI events read, by event name (unhandled: other)", ("server", "event")
        )
        last = _gauge("pbx_sla_ami_last_event_timestamp_seconds", "Unix time of the last AMI event", ("server",))
        for s in statuses:
            up.add_metric([s.name], 1 if s.state == "connected" else 0)
            reconnects.add_metric([s.name], s.reconnects)
            for name, n in sorted(s.event_counts.items()):
                events.add_metric([s.name, name], n)
            if s.last_event_at:
                last.add_metric([s.name], s.last_event_at)
        yield from (up, reconnects, events, last)

    @staticmethod
    def _writer(w: dict[str, Any]) -> Iterator[Metric]:
        backlog = _gauge("pbx_sla_writer_backlog_records", "Records waiting to be written, by place", ("where",))
        backlog.add_metric(["memory"], w.get("memory", 0))
        backlog.add_metric(["spooled"], w.get("spooled", 0))
        yield backlog
        written = _counter("pbx_sla_writer_written_records", "Records written to PostgreSQL since start")
        written.add_metric([], w.get("written", 0))
        yield written
        dead = _counter("pbx_sla_writer_dead_letters", "Records refused by PostgreSQL, kept in dead-letter.jsonl")
        dead.add_metric([], w.get("dead_letters", 0))
        yield dead
        db = _gauge("pbx_sla_database_up", "1 when the writer's last attempt reached PostgreSQL")
        db.add_metric([], 1 if w.get("database") == "up" else 0)
        yield db

    @staticmethod
    def database_families(f: DatabaseFigures) -> Iterator[Metric]:
        refreshed = _gauge("pbx_sla_figures_refresh_timestamp_seconds", "Unix time of the last database refresh")
        refreshed.add_metric([], f.taken_at)
        yield refreshed
        state = _gauge("pbx_sla_trunk_state", "1 for the trunk's current state (as pbx-sla status)",
                       ("server", "trunk", "state"))  # fmt: skip
        rtt = _gauge("pbx_sla_trunk_qualify_rtt_seconds", "Last qualify round-trip time", ("server", "trunk"))
        for t in f.trunks:
            current = t.get("state") or State.UNKNOWN.value
            for value in State:
                state.add_metric([t["server"], t["trunk"], value.value], 1 if current == value.value else 0)
            if t.get("rtt_ms") is not None:
                rtt.add_metric([t["server"], t["trunk"]], t["rtt_ms"] / 1000)
        yield from (state, rtt)
        calls = _gauge("pbx_sla_month_calls", "Calls this calendar month so far, by tenant and disposition (as usage)",
                       ("tenant", "disposition"))  # fmt: skip
        for (tenant, disposition), n in sorted(f.calls.items()):
            calls.add_metric([tenant, disposition], n)
        yield calls
        unreacted = _gauge("pbx_sla_support_requests_open",
                           "Support requests not reacted to yet, by tenant (as pbx-sla requests --open; any period)",
                           ("tenant",))  # fmt: skip
        overdue = _gauge(
            "pbx_sla_support_requests_overdue",
            "Support requests not reacted to and past their reaction deadline, by tenant",
            ("tenant",),
        )
        for tenant, r in sorted(f.requests.items()):
            unreacted.add_metric([tenant], r.open)
            overdue.add_metric([tenant], r.overdue)
        yield from (unreacted, overdue)


class DaemonMetrics:
    """What ``GET /metrics`` answers: the live families formatted now, then the database figures' text as
    rendered at their last refresh."""

    def __init__(self, state: DaemonState) -> None:
        self.state = state
        self.registry = CollectorRegistry()
        self.registry.register(DaemonCollector(state))
        ProcessCollector(registry=self.registry)
        self.agi = AgiMetrics(self.registry)

    def render(self) -> bytes:
        figures = self.state.database_figures
        live = generate_latest(self.registry)
        return live if figures is None else live + figures.exposition
