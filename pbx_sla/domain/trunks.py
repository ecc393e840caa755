"""Trunk state and availability: a pure state machine over observations, and exact interval arithmetic.

State rules (docs/trunks.md says the same for administrators):

* **Contacts** (``ContactStatus`` events, ``ContactStatusDetail`` polls) are tracked per contact URI. The
  qualify state of an endpoint is *up* when any contact is ``Reachable``, else *down* when any contact is
  ``Unreachable`` or the endpoint has no contact at all (a dial fails at once with ``CHANUNAVAIL``), else
  *unknown* (only ``Unknown``/``NonQualified`` contacts: never qualified, e.g. ``qualify_frequency = 0``).
  ``Removed`` drops the contact. A poll that finds no contact is recorded as an ``endpoint``/``NoContacts``
  observation, which drops every contact known so far.
* **PeerStatus** (the endpoint aggregate) is used only while no contact of the endpoint has been seen in
  the session: contacts are finer-grained and polled after every login, PeerStatus is not.
* **Outbound registrations** (``Registry``): a trunk with a registration is *down* while any of its
  registrations is not ``Registered``, whatever qualify says; while registered, a trunk whose qualify state
  is unknown counts as *up* (registration is then the only liveness proof we have).

Time: each AMI session (login → lost) starts from nothing: events sent while we were disconnected are lost,
so state carried over from an earlier session would be a guess. Within a session observations are replayed in
event-time order (ties broken by a fixed key), so arrival order does not matter, and replaying a duplicate
changes nothing. Before the session's resync finished and outside every session the time is *unknown*.
When known sessions overlap (two daemons), the later-started one wins where both know the state.

Categories of a period's time, by precedence: maintenance > unknown (not observed) > up/down/unknown state.
All arithmetic is on aware UTC datetimes and ``timedelta`` (exact microseconds), so a period's seconds are
real elapsed seconds, DST days included.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple


class State(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class Category(StrEnum):
    """How one instant of a report period is counted."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"
    MAINTENANCE = "maintenance"


SOURCES = ("endpoint", "contact", "peer", "registration")
_SOURCE_RANK = {name: i for i, name in enumerate(SOURCES)}

#: statuses that prove an endpoint is qualified: what makes a non-catalogue endpoint a trunk
QUALIFIED_STATUSES = frozenset({"Reachable", "Unreachable"})
NO_CONTACTS = "NoContacts"


@dataclass(frozen=True)
class Observation:
    """What one event or poll said about one trunk.

    ``source``: ``contact`` (key = contact URI), ``peer`` (key ``""``), ``registration`` (key = registration
    name), ``endpoint`` (key ``""``, status ``NoContacts``: a poll found no contact).
    """

    at: datetime
    source: str
    key: str
    status: str
    rtt_usec: int | None = None

    def sort_key(self) -> tuple[datetime, int, str, str, int]:
        return (self.at, _SOURCE_RANK.get(self.source, len(SOURCES)), self.key, self.status, self.rtt_usec or 0)


@dataclass(frozen=True)
class Change:
    at: datetime
    state: State


@dataclass
class TrunkTracker:
    """The state machine of one trunk within one session: feed observations, read :attr:`state`."""

    contacts: dict[str, str] = field(default_factory=dict)
    seen_contacts: bool = False
    emptied: bool = False
    peer: str | None = None
    registrations: dict[str, str] = field(default_factory=dict)
    rtt_usec: int | None = None

    def apply(self, obs: Observation) -> None:
        if obs.source == "contact":
            self.seen_contacts = True
            if obs.status == "Removed":
                self.contacts.pop(obs.key, None)
                self.emptied = not self.contacts
            else:
                self.contacts[obs.key] = obs.status
                self.emptied = False
            if obs.status == "Reachable" and obs.rtt_usec:
                self.rtt_usec = obs.rtt_usec
        elif obs.source == "endpoint" and obs.status == NO_CONTACTS:
            self.contacts.clear()
            self.seen_contacts = True
            self.emptied = True
        elif obs.source == "peer":
            self.peer = obs.status
        elif obs.source == "registration":
            self.registrations[obs.key] = obs.status

    @property
    def qualify_state(self) -> State:
        if self.seen_contacts:
            states = set(self.contacts.values())
            if "Reachable" in states:
                return State.UP
            if "Unreachable" in states or (self.emptied and not self.contacts):
                return State.DOWN
            return State.UNKNOWN
        if self.peer == "Reachable":
            return State.UP
        if self.peer == "Unreachable":
            return State.DOWN
        return State.UNKNOWN

    @property
    def state(self) -> State:
        qualify = self.qualify_state
        if self.registrations:
            if any(s != "Registered" for s in self.registrations.values()):
                return State.DOWN
            if qualify is State.UNKNOWN:
                return State.UP
        return qualify


def ordered(observations: Iterable[Observation]) -> list[Observation]:
    """Event-time order, duplicates removed; the order of the input does not matter."""
    return sorted(set(observations), key=Observation.sort_key)


def state_changes(observations: Iterable[Observation], *, start: datetime | None = None) -> list[Change]:
    """Replay one session's observations; the first change is the first known state, repeats are dropped.

    ``start``: the session start, stamped as ``unknown`` so the list always begins at the session's start.
    """
    tracker = TrunkTracker()
    changes: list[Change] = [Change(start, State.UNKNOWN)] if start is not None else []
    for obs in ordered(observations):
        tracker.apply(obs)
        new = tracker.state
        if changes and changes[-1].state is new:
            continue
        if changes and changes[-1].at == obs.at:
            changes[-1] = Change(obs.at, new)  # same instant: only the settled state counts
            if len(changes) > 1 and changes[-2].state is new:
                changes.pop()
        else:
            changes.append(Change(obs.at, new))
    return changes


def current_state(observations: Iterable[Observation]) -> tuple[State, datetime | None, int | None]:
    """(state now, since when, last round trip of a reachable contact) from one session's observations."""
    tracker = TrunkTracker()
    state, since = State.UNKNOWN, None
    for obs in ordered(observations):
        tracker.apply(obs)
        if tracker.state is not state or since is None:
            state, since = tracker.state, obs.at
    rtt = tracker.rtt_usec if state is State.UP else None
    return state, since, rtt


# -- intervals ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"interval ends before it starts: {self.start} > {self.end}")


@dataclass(frozen=True)
class Session:
    """One AMI session of a server: observations count from ``start`` (login); state is known from
    ``known_from`` (resync finished; ``None``: never) to ``end``."""

    start: datetime
    known_from: datetime | None
    end: datetime


class Segment(NamedTuple):
    """``[start, end)`` with a state or category value (a tuple: built by the hundred thousand)."""

    start: datetime
    end: datetime
    value: str


def overlay(base: Sequence[Segment], top: Sequence[Segment]) -> list[Segment]:
    """``top`` painted over ``base``. Both sorted and non-overlapping within themselves; result likewise,
    with adjacent equal values merged and empty segments dropped. One linear pass over both."""
    out: list[Segment] = []

    def emit(a: datetime, b: datetime, value: str) -> None:
        if a >= b:
            return
        if out and out[-1].value == value and out[-1].end == a:
            out[-1] = Segment(out[-1].start, b, value)
        else:
            out.append(Segment(a, b, value))

    i, n = 0, len(base)
    painted_to: datetime | None = None  # base before this instant is already covered by top
    for t in top:
        if t.start >= t.end:
            continue
        while i < n and base[i].start < t.start:
            b = base[i]
            a = b.start if painted_to is None else max(b.start, painted_to)
            emit(a, min(b.end, t.start), b.value)
            if b.end <= t.start:
                i += 1
            else:
                break
        emit(t.start, t.end, t.value)
        painted_to = t.end
        while i < n and base[i].end <= t.end:
            i += 1
    for b in base[i:]:
        emit(b.start if painted_to is None else max(b.start, painted_to), b.end, b.value)
    return out


def session_segments(session: Session, observations: Iterable[Observation]) -> list[Segment]:
    """The known state through one session (from ``known_from`` to ``end``); empty when never resynced."""
    if session.known_from is None or session.known_from >= session.end:
        return []
    mine = [o for o in observations if session.start <= o.at < session.end]
    changes = state_changes(mine, start=session.start)
    segments: list[Segment] = []
    for change, nxt in zip(changes, [*changes[1:], None], strict=False):
        start = max(change.at, session.known_from)
        end = min(nxt.at if nxt is not None else session.end, session.end)
        if start < end:
            segments.append(Segment(start, end, change.state.value))
    return overlay([], segments)


def known_segments(sessions: Iterable[Session], observations: Sequence[Observation]) -> list[Segment]:
    """Known states over all sessions; where known sessions overlap the later-started one wins."""
    by_time = sorted(observations, key=lambda o: o.at)
    times = [o.at for o in by_time]
    painted: list[Segment] = []
    for session in sorted(sessions, key=lambda s: (s.start, s.end)):
        lo, hi = bisect.bisect_left(times, session.start), bisect.bisect_left(times, session.end)
        segments = session_segments(session, by_time[lo:hi])
        if not segments:
            continue
        if not painted or segments[0].start >= painted[-1].end:
            if painted and painted[-1].end == segments[0].start and painted[-1].value == segments[0].value:
                painted[-1] = Segment(painted[-1].start, segments[0].end, segments[0].value)
                segments = segments[1:]
            painted.extend(segments)  # the usual case: sessions follow each other
        else:
            painted = overlay(painted, segments)
    return painted


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: (i.start, i.end)):
        if iv.start >= iv.end:
            continue
        if out and iv.start <= out[-1].end:
            if iv.end > out[-1].end:
                out[-1] = Interval(out[-1].start, iv.end)
        else:
            out.append(iv)
    return out


@dataclass(frozen=True)
class Outage:
    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def availability(up: timedelta, down: timedelta) -> float | None:
    """The one availability formula: up / (up + down). Unknown time (the daemon not watching) and
    maintenance count neither way; ``None`` when nothing was observed outside maintenance."""
    observed = up + down
    return None if observed <= timedelta(0) else up / observed


@dataclass(frozen=True)
class Summary:
    """A trunk over a period: time per category and its outages (maximal *down* runs, clipped)."""

    period: Interval
    up: timedelta
    down: timedelta
    unknown: timedelta
    maintenance: timedelta
    outages: tuple[Outage, ...]
    timeline: tuple[Segment, ...]

    @property
    def availability(self) -> float | None:
        return availability(self.up, self.down)

    @property
    def outage_count(self) -> int:
        return len(self.outages)

    @property
    def mttr(self) -> timedelta | None:
        """Mean outage duration (mean time to restore); ``None`` without outages."""
        if not self.outages:
            return None
        return sum((o.duration for o in self.outages), timedelta(0)) / len(self.outages)


@dataclass(frozen=True)
class Combined:
    """Several trunks as one service (a tenant's trunks in the SLA report): their times summed."""

    up: timedelta
    down: timedelta
    unknown: timedelta
    maintenance: timedelta

    @property
    def availability(self) -> float | None:
        """Σup / (Σup + Σdown): each trunk weighs by its observed time."""
        return availability(self.up, self.down)


def combine(summaries: Iterable[Summary]) -> Combined:
    zero = timedelta(0)
    items = list(summaries)
    return Combined(
        up=sum((s.up for s in items), zero),
        down=sum((s.down for s in items), zero),
        unknown=sum((s.unknown for s in items), zero),
        maintenance=sum((s.maintenance for s in items), zero),
    )


_UNKNOWN, _DOWN, _MAINTENANCE = Category.UNKNOWN.value, Category.DOWN.value, Category.MAINTENANCE.value


def _on_unknown(period: Interval, top: Sequence[Segment]) -> list[Segment]:
    """``overlay([period as unknown], top)`` for ``top`` sorted, non-overlapping and inside ``period``: the
    gaps are unknown, adjacent equal values merged. One pass, no closure (a month of 100 trunks is ~10,000
    segments: this is the dashboard's hottest loop)."""
    out: list[Segment] = []
    at = period.start
    for t in top:
        if t.start >= t.end:
            continue
        if t.start > at:
            if out and out[-1].value == _UNKNOWN:
                out[-1] = Segment(out[-1].start, t.start, _UNKNOWN)
            else:
                out.append(Segment(at, t.start, _UNKNOWN))
        if out and out[-1].value == t.value and out[-1].end == t.start:
            out[-1] = Segment(out[-1].start, t.end, t.value)
        else:
            out.append(t)
        at = t.end
    if at < period.end:
        if out and out[-1].value == _UNKNOWN:
            out[-1] = Segment(out[-1].start, period.end, _UNKNOWN)
        else:
            out.append(Segment(at, period.end, _UNKNOWN))
    return out


def classify(period: Interval, known: Sequence[Segment], maintenance: Iterable[Interval] = ()) -> list[Segment]:
    """The period cut into consecutive category segments covering it exactly."""
    if period.start >= period.end:
        return []
    start, end = period.start, period.end
    clipped = [
        s if start <= s.start and s.end <= end else Segment(max(s.start, start), min(s.end, end), s.value)
        for s in known
        if s.end > start and s.start < end
    ]
    timeline = _on_unknown(period, clipped)
    maint = [
        Segment(max(iv.start, start), min(iv.end, end), _MAINTENANCE)
        for iv in merge_intervals(maintenance)
        if iv.end > start and iv.start < end
    ]
    return overlay(timeline, maint) if maint else timeline  # painting nothing over it would copy it


def summarize(period: Interval, known: Sequence[Segment], maintenance: Iterable[Interval] = ()) -> Summary:
    """Seconds per category (they sum to the period exactly) and outages (split by unknown or
    maintenance time: only observed down time is an outage)."""
    timeline = classify(period, known, maintenance)
    totals = {c.value: timedelta(0) for c in Category}
    outages: list[Outage] = []
    for seg in timeline:
        totals[seg.value] += seg.end - seg.start
        if seg.value == _DOWN:
            outages.append(Outage(seg.start, seg.end))
    return Summary(
        period=period,
        up=totals["up"],
        down=totals["down"],
        unknown=totals["unknown"],
        maintenance=totals["maintenance"],
        outages=tuple(outages),
        timeline=tuple(timeline),
    )


def trunk_summary(
    period: Interval,
    sessions: Iterable[Session],
    observations: Sequence[Observation],
    maintenance: Iterable[Interval] = (),
) -> Summary:
    """The whole pipeline for one trunk: sessions + observations + maintenance → :class:`Summary`."""
    return summarize(period, known_segments(sessions, observations), maintenance)


# -- UTC days: the unit in which known states are kept once a day is over -----------------------------------


ONE_DAY = timedelta(days=1)


def utc_day(instant: datetime) -> date:
    """The UTC calendar day ``instant`` falls in."""
    return instant.astimezone(UTC).date()


def utc_midnight(day: date) -> datetime:
    """The instant ``day`` starts in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def clip(segments: Iterable[Segment], start: datetime, end: datetime) -> list[Segment]:
    """The parts of ``segments`` inside ``[start, end)`` (sorted in, sorted out; empty parts dropped)."""
    return [Segment(max(s.start, start), min(s.end, end), s.value) for s in segments if s.end > start and s.start < end]


def by_utc_day(segments: Sequence[Segment], first: date, last: date) -> dict[date, list[Segment]]:
    """Each UTC day of ``first..last`` → ``segments`` clipped to it (``[]`` for a day without any). Their
    concatenation in day order is ``segments`` clipped to those days, cut at midnight: :func:`classify`
    merges the cut parts again, so a summary over the concatenation equals one over ``segments``."""
    out: dict[date, list[Segment]] = {}
    i, n = 0, len(segments)
    day, start = first, utc_midnight(first)
    while day <= last:
        end = start + ONE_DAY  # UTC days are all 24 h
        while i < n and segments[i].end <= start:
            i += 1
        mine = []
        j = i
        while j < n and segments[j].start < end:
            s = segments[j]
            if s.start >= start and s.end <= end:
                mine.append(s)
            elif s.end > start:
                mine.append(Segment(max(s.start, start), min(s.end, end), s.value))
            j += 1
        out[day] = mine
        day, start = day + ONE_DAY, end
    return out
