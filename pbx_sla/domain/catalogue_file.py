"""The catalogue file (TOML, as read by :mod:`tomllib`) → a validated :class:`Catalogue`.

Validation collects every problem instead of stopping at the first; each problem starts with the key
path at fault (``tenants[1].tier: unknown tier 'gold'``). PINs stay in memory as the transient
``Requester.pin`` until :func:`pbx_sla.domain.pins.seal_pins` turns them into salted hashes.

The allowed and required keys of each table come from the dataclasses of :mod:`pbx_sla.domain.catalogue`
(a field without a default is required). Each section reads its table into a ``values`` dict, one entry
per field, checked by :func:`_build` against the dataclass, so a field added there without a check here
fails every parse loudly instead of being silently ignored. To add a key: a field (with a default) on the
dataclass, then one ``values`` entry in its section below (``_tier``, ``_tenants``, ``_trunks``,
``_requesters``, ``_maintenance`` or :func:`parse_catalogue`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Any, TypeGuard, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbx_sla.domain.calendar import ALWAYS, DAYS, parse_day
from pbx_sla.domain.catalogue import (
    Calendar,
    Catalogue,
    CreditMetric,
    CreditRule,
    MaintenanceWindow,
    OutOfHours,
    Requester,
    SupportPackage,
    SupportSettings,
    Tenant,
    Tier,
    TimeRange,
    Trunk,
)
from pbx_sla.domain.durations import parse_duration
from pbx_sla.domain.phone import COUNTRY_CODE, normalise
from pbx_sla.domain.pins import valid_hash, valid_pin
from pbx_sla.domain.qos import QosTargets
from pbx_sla.domain.toml_checks import (
    Problems,
    day,
    day_value,
    decimal,
    file_keys,
    instant,
    integer,
    is_required,
    kind,
    nul_characters,
    places,
    ratio,
    string,
    string_list,
    sub,
    table,
    tables,
)
from pbx_sla.errors import InputError

_TOP, _TOP_REQUIRED = file_keys(Catalogue)
_CALENDAR, _CALENDAR_REQUIRED = file_keys(Calendar, not_in_file=frozenset({"name", "always"}))
_TIER, _TIER_REQUIRED = file_keys(Tier, not_in_file=frozenset({"name"}))  # the name is the table's key
_CREDIT, _ = file_keys(CreditRule)
_CREDIT_REQUIRED = frozenset({"percent"})  # and ``below`` or ``above``: which one depends on the metric
_QOS, _QOS_REQUIRED = file_keys(QosTargets)
#: credit metric → the bound its rules use: ``below`` (a figure below it triggers) or ``above``
_CREDIT_METRICS = {
    "availability": "below",
    "service_level": "below",
    "qos_mos": "below",
    "qos_loss": "above",
    "qos_jitter_ms": "above",
    "qos_rtt_ms": "above",
    "qos_poor_ratio": "above",
    "reaction": "below",
}
_MOS_LOW, _MOS_HIGH = Decimal(1), Decimal("4.5")


def _is_credit_metric(value: object) -> TypeGuard[CreditMetric]:
    return isinstance(value, str) and value in _CREDIT_METRICS


_TRUNK, _TRUNK_REQUIRED = file_keys(Trunk)
_TENANT, _TENANT_REQUIRED = file_keys(Tenant)
_REQUESTER, _REQUESTER_REQUIRED = file_keys(Requester)  # a PIN in clear (`pin`) or its hash (`pin_hash`)
_MAINTENANCE, _MAINTENANCE_REQUIRED = file_keys(MaintenanceWindow)
_PACKAGE, _PACKAGE_REQUIRED = file_keys(SupportPackage)
_SUPPORT, _SUPPORT_REQUIRED = file_keys(SupportSettings)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@:-]*$")  # ids, tier/calendar names, endpoints, servers
_QUEUE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

_T = TypeVar("_T")


def _build(cls: type[_T], keys: frozenset[str], values: Mapping[str, Any], **fixed: Any) -> _T | None:
    """``cls(**values, **fixed)`` where a None value (an absent optional key) takes the field's default;
    None if a required field is None (its missing key or bad value is already a reported problem).
    ``values`` must have one entry per file key: a key without a check is a bug, not a silent default."""
    if set(values) != keys:
        missing, extra = sorted(keys - set(values)), sorted(set(values) - keys)
        raise TypeError(f"{cls.__name__}: keys without a check {missing}, checks of no key {extra}")
    given = {k: v for k, v in values.items() if v is not None} | fixed
    if any(f.name not in given and is_required(f) for f in dataclasses.fields(cls)):  # type: ignore[arg-type]
        return None
    return cls(**given)


def _calendar(name: str, raw: Any, p: Problems) -> Calendar | None:
    path = f"calendars.{name}"
    t = table(raw, path, _CALENDAR, _CALENDAR_REQUIRED, p)
    if t is None or "hours" not in t:
        return None
    ok = True
    hours: dict[int, tuple[TimeRange, ...]] = {}
    always = False
    value = t["hours"]
    if isinstance(value, str):
        if value.strip() != ALWAYS:
            p.add(f"{path}.hours", f'must be "24/7" or a table of days, got {value!r}')
            ok = False
        else:
            always = True
    elif isinstance(value, dict):
        for day, ranges in value.items():
            where = f"{path}.hours.{day}"
            if day not in DAYS:
                p.add(where, f"unknown day (use {', '.join(DAYS)})")
                ok = False
                continue
            try:
                parsed = parse_day(ranges)
            except ValueError as exc:
                p.add(where, str(exc))
                ok = False
                continue
            if parsed:
                hours[DAYS.index(day)] = parsed
        if ok and not hours:
            p.add(f"{path}.hours", 'no opening hours on any day (use "24/7" for always open)')
            ok = False
    else:
        p.add(f"{path}.hours", f'must be "24/7" or a table of days, got {kind(value)}')
        ok = False
    holidays: set[date] = set()
    raw_holidays = t.get("holidays", [])
    if not isinstance(raw_holidays, list):
        p.add(f"{path}.holidays", f"must be an array of dates, got {kind(raw_holidays)}")
        ok = False
    else:
        for i, item in enumerate(raw_holidays):
            day = day_value(item, f"{path}.holidays[{i}]", p)
            if day is None:
                ok = False
            elif day in holidays:
                p.add(f"{path}.holidays[{i}]", f"{day} is listed twice")
                ok = False
            else:
                holidays.add(day)
    if always and holidays:
        p.add(f"{path}.holidays", "a 24/7 calendar is open on holidays too; remove them or give opening hours")
        ok = False
    return Calendar(name, always, hours, frozenset(holidays)) if ok else None


def _out_of_hours(t: dict[str, Any], path: str, p: Problems) -> OutOfHours | None:
    if "out_of_hours" not in t:
        return None
    value = t["out_of_hours"]
    where = f"{path}.out_of_hours"
    if isinstance(value, str):
        if value in ("closed", "voicemail"):
            return OutOfHours(value)  # type: ignore[arg-type]
        kind, sep, queue = value.partition(":")
        if kind == "queue" and sep and _QUEUE.match(queue):
            return OutOfHours("queue", queue)
    p.add(where, f'must be "closed", "voicemail" or "queue:<name>", got {value!r}')
    return None


def _bound(c: dict[str, Any], key: str, metric: str, rp: str, p: Problems) -> Decimal | None:
    """A credit rule's ``below``/``above``: a ratio for ratio figures, ms or a MOS for the ``qos_…`` ones."""
    if metric in ("availability", "service_level", "qos_loss", "qos_poor_ratio"):
        return ratio(c, key, rp, p, max_places=6)
    if metric == "qos_mos":
        return _number(c, key, rp, p, _MOS_LOW, _MOS_HIGH)
    return _number(c, key, rp, p, Decimal(0), None)


def _number(t: dict[str, Any], key: str, path: str, p: Problems, low: Decimal, high: Decimal | None) -> Decimal | None:
    if key not in t:
        return None
    number = decimal(t[key], f"{path}.{key}", p, floats=True)
    if number is not None and (number < low or (high is not None and number > high)):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        p.add(f"{path}.{key}", f"must be {bounds}, got {number}")
        return None
    return number


def _credits(t: dict[str, Any], path: str, p: Problems) -> tuple[CreditRule, ...] | None:
    if "credits" not in t:
        return None
    before = len(p.items)
    rules: list[CreditRule] = []
    for rp, c in tables(t["credits"], f"{path}.credits", _CREDIT, _CREDIT_REQUIRED, p):
        percent = decimal(c["percent"], f"{rp}.percent", p, floats=True) if "percent" in c else None
        if percent is not None and not Decimal(0) <= percent <= Decimal(100):
            p.add(f"{rp}.percent", f"must be between 0 and 100, got {percent}")
            percent = None
        metric = c.get("metric", "availability")
        if not _is_credit_metric(metric):
            names = ", ".join(f'"{m}"' for m in _CREDIT_METRICS)
            p.add(f"{rp}.metric", f"must be one of {names}, got {metric!r}")
            continue
        key = _CREDIT_METRICS[metric]
        other = "above" if key == "below" else "below"
        if other in c:
            p.add(f"{rp}.{other}", f"a {metric} rule is triggered {key} a value: use {key} = ...")
            continue
        if key not in c:
            p.add(rp, f"missing key {key!r}")
            continue
        bound = _bound(c, key, metric, rp, p)
        if bound is None or percent is None:
            continue
        below, above = (bound, None) if key == "below" else (None, bound)
        if any((r.metric, r.below, r.above) == (metric, below, above) for r in rules):
            p.add(rp, f"a second credit rule for {metric} {key} {bound}")
            continue
        # built by hand: ``below`` has no default (required for the ratio metrics) but is None for ``above`` rules
        rules.append(CreditRule(below, percent, metric, above=above))
    return tuple(rules) if len(p.items) == before else None


def _qos(t: dict[str, Any], path: str, p: Problems) -> QosTargets | None:
    """A tier's or trunk's ``qos`` table: voice-quality targets (docs/qos.md)."""
    if "qos" not in t:
        return None
    where = f"{path}.qos"
    q = table(t["qos"], where, _QOS, _QOS_REQUIRED, p)
    if q is None:
        return None
    values = {
        "max_loss": ratio(q, "max_loss", where, p, max_places=6),
        "max_jitter_ms": _number(q, "max_jitter_ms", where, p, Decimal(0), None),
        "max_rtt_ms": _number(q, "max_rtt_ms", where, p, Decimal(0), None),
        "min_mos": _number(q, "min_mos", where, p, _MOS_LOW, _MOS_HIGH),
        "max_poor_ratio": ratio(q, "max_poor_ratio", where, p, max_places=6),
        "poor_mos": _number(q, "poor_mos", where, p, _MOS_LOW, _MOS_HIGH),
    }
    return _build(QosTargets, _QOS, values)


def _tier(name: str, raw: Any, calendars: set[str], p: Problems) -> Tier | None:
    path = f"tiers.{name}"
    t = table(raw, path, _TIER, _TIER_REQUIRED, p)
    if t is None:
        return None
    before = len(p.items)
    # one entry per Tier field, in the order problems are reported; None: absent (the field's default)
    values = {
        "price_per_year": _price(t, path, p),
        "currency": _currency(t, path, p),
        "calendar": _calendar_name(t, path, calendars, p),
        "queue": string(t, "queue", path, p, pattern=_QUEUE),
        "out_of_hours": _out_of_hours(t, path, p),
        "max_calls_per_day": integer(t, "max_calls_per_day", path, p, minimum=0),
        "max_employees": integer(t, "max_employees", path, p, minimum=0),
        "priority": integer(t, "priority", path, p),
        "answer_target_seconds": integer(t, "answer_target_seconds", path, p, minimum=1),
        "service_level_target": ratio(t, "service_level_target", path, p, max_places=5),
        "availability_target": ratio(t, "availability_target", path, p, max_places=6),
        "credits": _credits(t, path, p),
        "qos": _qos(t, path, p),
        "reaction_target": _duration(t, "reaction_target", path, p),
        "reaction_share_target": ratio(t, "reaction_share_target", path, p, max_places=5),
    }
    return _build(Tier, _TIER, values, name=name) if len(p.items) == before else None


def _duration(t: dict[str, Any], key: str, path: str, p: Problems) -> int | None:
    """``"4h"``, ``"48h"``, ``"30m"``, ``"1h30m"`` → seconds (at least one minute)."""
    if key not in t:
        return None
    where = sub(path, key)
    try:
        seconds = parse_duration(t[key])
    except ValueError as exc:
        p.add(where, str(exc))
        return None
    if seconds < 60:
        p.add(where, f"must be at least 1 minute, got {t[key]!r}")
        return None
    return seconds


def _hours(t: dict[str, Any], key: str, path: str, p: Problems) -> Decimal | None:
    """Support hours: a number or a decimal string, at least 0, at most 2 decimal places."""
    if key not in t:
        return None
    where = sub(path, key)
    number = decimal(t[key], where, p, floats=True)
    if number is not None and (number < 0 or places(number) > 2 or number >= Decimal(10) ** 6):
        p.add(where, f"must be hours between 0 and 999999 with at most 2 decimal places, got {number}")
        return None
    return number


def _support_packages(t: dict[str, Any], path: str, p: Problems) -> tuple[SupportPackage, ...]:
    raw, where = t.get("support_packages", []), sub(path, "support_packages")
    if not isinstance(raw, list):
        p.add(where, f"must be an array of tables ([[tenants.support_packages]]), got {kind(raw)}")
        return ()
    out = []
    for j, item in enumerate(raw):
        pp = f"{where}[{j}]"
        k = table(item, pp, _PACKAGE, _PACKAGE_REQUIRED, p)
        if k is None:
            continue
        start, end = day(k, "start", pp, p), day(k, "end", pp, p)
        if start is not None and end is not None and end < start:
            p.add(f"{pp}.end", f"{end} is before start {start}")
            continue
        package = _build(SupportPackage, _PACKAGE, {"hours": _hours(k, "hours", pp, p), "start": start, "end": end})
        if package is not None:
            out.append(package)
    return tuple(out)


def _support(raw: Any, p: Problems) -> SupportSettings | None:
    """``[support]``: the staff endpoints whose calls to requesters are callbacks, and their minimum length."""
    t = table(raw, "support", _SUPPORT, _SUPPORT_REQUIRED, p)
    if t is None:
        return None
    staff: list[str] = []
    for where, name in string_list(t, "staff", "support", p):
        if not _NAME.match(name):
            p.add(where, f"{name!r} is not an endpoint name")
        elif name in staff:
            p.add(where, f"endpoint {name!r} is listed twice")
        else:
            staff.append(name)
    contexts: list[str] = []
    for where, name in string_list(t, "line_contexts", "support", p):
        if not _NAME.match(name):
            p.add(where, f"{name!r} is not a dialplan context name")
        elif name not in contexts:
            contexts.append(name)
    values = {
        "staff": tuple(staff),
        "callback_min_seconds": integer(t, "callback_min_seconds", "support", p, minimum=0),
        "line_contexts": tuple(contexts) if "line_contexts" in t else None,
    }
    return _build(SupportSettings, _SUPPORT, values)


def _price(t: dict[str, Any], path: str, p: Problems) -> Decimal | None:
    if "price_per_year" not in t:
        return None
    price = decimal(t["price_per_year"], f"{path}.price_per_year", p, floats=False)
    if price is not None and (price < 0 or places(price) > 2 or price >= Decimal(10) ** 12):
        p.add(f"{path}.price_per_year", f"must be at least 0 with at most 2 decimal places, got {price}")
        return None
    return price


def _currency(t: dict[str, Any], path: str, p: Problems) -> str | None:
    currency = string(t, "currency", path, p)
    if currency is not None and not _CURRENCY.match(currency):
        p.add(f"{path}.currency", f"must be an ISO 4217 code like CZK or EUR, got {currency!r}")
        return None
    return currency


def _calendar_name(t: dict[str, Any], path: str, calendars: set[str], p: Problems) -> str | None:
    calendar = string(t, "calendar", path, p)
    if calendar is not None and calendar not in calendars:
        p.add(f"{path}.calendar", f"unknown calendar {calendar!r}")
        return None
    return calendar


def _trunks(raw: Any, p: Problems) -> list[Trunk]:
    trunks: list[Trunk] = []
    seen: dict[tuple[str, str], str] = {}
    for path, t in tables(raw, "trunks", _TRUNK, _TRUNK_REQUIRED, p, header="[[trunks]]"):
        before = len(p.items)
        values = {
            "name": string(t, "name", path, p, pattern=_NAME),
            "server": string(t, "server", path, p, pattern=_NAME),
            "availability_target": ratio(t, "availability_target", path, p, max_places=6),
            "qos": _qos(t, path, p),
        }
        if len(p.items) != before:
            continue
        trunk = _build(Trunk, _TRUNK, values)
        if trunk is None:
            continue
        if (trunk.server, trunk.name) in seen:
            p.add(path, f"trunk {trunk.server}/{trunk.name} is also {seen[trunk.server, trunk.name]}")
            continue
        seen[trunk.server, trunk.name] = path
        trunks.append(trunk)
    return trunks


def _trunk_ref(ref: str, trunks: list[Trunk]) -> tuple[Trunk | None, str]:
    server, sep, name = ref.rpartition("/")
    found = [t for t in trunks if t.name == name and (not sep or t.server == server)]
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, f"unknown trunk {ref!r}"
    servers = ", ".join(sorted(f"{t.server}/{t.name}" for t in found))
    return None, f"trunk {ref!r} is ambiguous ({servers}): write server/name"


class _Unique:
    """Values that must be unique across the whole catalogue (phones, DIDs, account codes)."""

    def __init__(self, what: str, p: Problems) -> None:
        self.what, self.p = what, p
        self.seen: dict[str, str] = {}

    def claim(self, value: str, where: str) -> bool:
        if value in self.seen:
            self.p.add(where, f"{self.what} {value} is also {self.seen[value]}")
            return False
        self.seen[value] = where
        return True


def _tenants(raw: Any, cc: str | None, tiers: set[str], trunks: list[Trunk], p: Problems) -> list[Tenant]:
    phones, dids, codes = _Unique("phone number", p), _Unique("DID", p), _Unique("account code", p)
    ids: dict[str, str] = {}
    tenants: list[Tenant] = []

    def number(text: str, where: str) -> str | None:
        if cc is None:  # its own problem is reported; check only what does not depend on it
            if not text.lstrip().startswith("+"):
                return None
            e164 = normalise(text, "1")
        else:
            e164 = normalise(text, cc)
        if e164 is None:
            p.add(where, f"{text!r} is not a valid number")
        return e164

    for path, t in tables(raw, "tenants", _TENANT, _TENANT_REQUIRED, p, header="[[tenants]]"):
        before = len(p.items)
        tenant_id = string(t, "id", path, p, pattern=_NAME)
        if tenant_id is not None:
            if tenant_id in ids:
                p.add(f"{path}.id", f"tenant {tenant_id!r} is also {ids[tenant_id]}")
            else:
                ids[tenant_id] = path
        name = string(t, "name", path, p)
        tier = string(t, "tier", path, p)
        if tier is not None and tier not in tiers:
            p.add(f"{path}.tier", f"unknown tier {tier!r}")
        employees = integer(t, "employees", path, p, minimum=0)
        start, end = day(t, "contract_start", path, p), day(t, "contract_end", path, p)
        if start is not None and end is not None and end < start:
            p.add(f"{path}.contract_end", f"{end} is before contract_start {start}")
        accountcodes = []
        for where, code in string_list(t, "accountcodes", path, p):
            if len(code) > 80:
                p.add(where, "account codes are at most 80 characters (Asterisk's limit)")
            elif codes.claim(code, where):
                accountcodes.append(code)
        tenant_dids = []
        for where, text in string_list(t, "dids", path, p):
            e164 = number(text, where)
            if e164 is not None and dids.claim(e164, where):
                tenant_dids.append(e164)
        tenant_trunks = []
        for where, ref in string_list(t, "trunks", path, p):
            trunk, error = _trunk_ref(ref, trunks)
            if trunk is None:
                p.add(where, error)
            elif ref in tenant_trunks:
                p.add(where, f"trunk {ref!r} is listed twice")
            else:
                tenant_trunks.append(ref)
        requesters = _requesters(t.get("requesters", []), f"{path}.requesters", number, phones, p)
        values = {
            "id": tenant_id,
            "name": name,
            "tier": tier,
            "employees": employees,
            "contract_start": start,
            "contract_end": end,
            "accountcodes": tuple(accountcodes),
            "dids": tuple(tenant_dids),
            "trunks": tuple(tenant_trunks),
            "requesters": tuple(requesters),
            "support_hours_per_year": _hours(t, "support_hours_per_year", path, p),
            "support_packages": _support_packages(t, path, p),
        }
        tenant = _build(Tenant, _TENANT, values) if len(p.items) == before else None
        if tenant is not None:
            tenants.append(tenant)
    return tenants


def _requesters(
    raw: Any, path: str, number: Callable[[str, str], str | None], phones: _Unique, p: Problems
) -> list[Requester]:
    out: list[Requester] = []
    names: dict[str, str] = {}
    for rp, r in tables(raw, path, _REQUESTER, _REQUESTER_REQUIRED, p, header="[[tenants.requesters]]"):
        name = string(r, "name", rp, p)
        if name is not None:
            if name in names:
                p.add(f"{rp}.name", f"requester {name!r} is also {names[name]}")
            names[name] = rp
        numbers = []
        for where, text in string_list(r, "phones", rp, p):
            e164 = number(text, where)
            if e164 is not None and phones.claim(e164, where):
                numbers.append(e164)
        pin = r.get("pin")
        if pin is not None and not valid_pin(pin):
            # the message never repeats the PIN itself
            shown = "an integer (quote it so leading zeros survive)" if isinstance(pin, int) else "not 4-12 digits"
            p.add(f"{rp}.pin", f"must be a string of 4 to 12 digits, got {shown}")
            pin = None
        pin_hash = r.get("pin_hash")
        if pin_hash is not None and not valid_hash(pin_hash):
            p.add(f"{rp}.pin_hash", "must be a hash made by `pbx-sla pin hash` (scrypt$N$r$p$salt$hash)")
            pin_hash = None
        if "pin" in r and "pin_hash" in r:
            p.add(rp, "give either pin or pin_hash, not both")
        if "phones" not in r and "pin" not in r and "pin_hash" not in r:
            p.add(rp, "a requester needs phones, a pin or a pin_hash to be recognised")
        values = {"name": name, "phones": tuple(numbers), "pin": pin, "pin_hash": pin_hash}
        requester = _build(Requester, _REQUESTER, values)
        if requester is not None:
            out.append(requester)
    return out


def _maintenance(raw: Any, trunks: list[Trunk], p: Problems) -> list[MaintenanceWindow]:
    windows: list[tuple[str, MaintenanceWindow]] = []
    servers = {t.server for t in trunks}
    for path, t in tables(raw, "maintenance", _MAINTENANCE, _MAINTENANCE_REQUIRED, p, header="[[maintenance]]"):
        before = len(p.items)
        trunk_ref, server = string(t, "trunk", path, p), string(t, "server", path, p)
        trunk = None
        if trunk_ref is not None:
            ref = f"{server}/{trunk_ref}" if server is not None and "/" not in trunk_ref else trunk_ref
            trunk, error = _trunk_ref(ref, trunks)
            if trunk is None:
                p.add(f"{path}.trunk", error)
            elif server is not None and trunk.server != server:
                p.add(f"{path}.server", f"trunk {trunk_ref!r} is on server {trunk.server!r}, not {server!r}")
        elif server is not None and server not in servers:
            p.add(f"{path}.server", f"no trunk of the catalogue is on server {server!r}")
        start, end = instant(t, "start", path, p), instant(t, "end", path, p)
        if start is not None and end is not None and end <= start:
            p.add(f"{path}.end", f"{end.isoformat()} is not after start {start.isoformat()}")
        reason = t.get("reason", "")
        if not isinstance(reason, str):
            p.add(f"{path}.reason", f"must be a string, got {kind(reason)}")
        if len(p.items) == before:
            values = {
                "start": start,
                "end": end,
                "trunk": trunk.name if trunk else None,
                "server": trunk.server if trunk else server,
                "reason": reason,
            }
            window = _build(MaintenanceWindow, _MAINTENANCE, values)
            if window is not None:
                windows.append((path, window))
    by_scope: dict[tuple[str | None, str | None], list[tuple[str, MaintenanceWindow]]] = {}
    for path, w in windows:
        by_scope.setdefault((w.server, w.trunk), []).append((path, w))
    for (on_server, on_trunk), group in by_scope.items():
        group.sort(key=lambda pw: (pw[1].start, pw[1].end))
        for (pa, a), (pb, b) in pairwise(group):
            if b.start < a.end:
                scope = (
                    f"trunk {on_server}/{on_trunk}"
                    if on_trunk
                    else f"all trunks of {on_server}"
                    if on_server
                    else "all trunks"
                )
                p.add(pb, f"overlaps {pa} on {scope}")
    return [w for _, w in windows]


def parse_catalogue(data: Mapping[str, Any], source: str) -> Catalogue:
    """Validate a catalogue read by :func:`tomllib.load`; raise :class:`InputError` listing every problem."""
    p = Problems()
    nul_characters(data, "", p)
    t = table(dict(data), "", _TOP, _TOP_REQUIRED, p) or {}
    timezone = string(t, "timezone", "", p)
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            p.add("timezone", f"unknown time zone {timezone!r} (use an IANA name like Europe/Prague)")
    cc_raw = t.get("country_code")
    cc: str | None = None
    if cc_raw is not None:
        text = str(cc_raw).lstrip("+") if isinstance(cc_raw, str | int) and not isinstance(cc_raw, bool) else ""
        if COUNTRY_CODE.match(text):
            cc = text
        else:
            p.add("country_code", f'must be 1-3 digits like "420", got {cc_raw!r}')

    def section(key: str) -> dict[str, Any]:
        value = t.get(key, {})
        if not isinstance(value, dict):
            p.add(key, f"must be a table, got {kind(value)}")
            return {}
        return value

    calendars: dict[str, Calendar] = {}
    raw_calendars = section("calendars")
    for name, raw in raw_calendars.items():
        cal = _calendar(name, raw, p)
        if cal is not None:
            calendars[name] = cal
    tiers: dict[str, Tier] = {}
    raw_tiers = section("tiers")
    for name, raw in raw_tiers.items():
        tier = _tier(name, raw, set(raw_calendars), p)
        if tier is not None:
            tiers[name] = tier
    trunks = _trunks(t.get("trunks", []), p)
    tenants = _tenants(t.get("tenants", []), cc, set(raw_tiers), trunks, p)
    maintenance = _maintenance(t.get("maintenance", []), trunks, p)
    support = _support(t["support"], p) if "support" in t else None
    if p.items:
        raise InputError(f"{source}: catalogue invalid ({len(p.items)} problem{'s' * (len(p.items) != 1)})", p.items)
    values = {
        "timezone": timezone,
        "country_code": cc,
        "calendars": calendars,
        "tiers": tiers,
        "tenants": {x.id: x for x in tenants},
        "trunks": tuple(trunks),
        "maintenance": tuple(maintenance),
        "support": support,
    }
    catalogue = _build(Catalogue, _TOP, values)
    if catalogue is None:  # a missing timezone or country code is a problem, raised above
        raise AssertionError("catalogue without its required keys passed validation")
    return catalogue
