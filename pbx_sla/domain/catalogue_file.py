"""The catalogue file (TOML, as read by :mod:`tomllib`) → a validated :class:`Catalogue`, and the JSON
document form kept in ``catalogue_revisions.document`` and the daemon's cache file.

Validation collects every problem instead of stopping at the first; each problem starts with the key
path at fault (``tenants[1].tier: unknown tier 'gold'``). PINs stay in memory as the transient
``Requester.pin`` until :func:`seal_pins` turns them into salted hashes (reusing a stored hash that still
verifies, so re-applying an unchanged file changes nothing); documents hold hashes only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pbx_sla.domain.calendar import ALWAYS, DAYS, hours_to_text, parse_day
from pbx_sla.domain.catalogue import (
    Calendar,
    Catalogue,
    CreditRule,
    MaintenanceWindow,
    OutOfHours,
    Requester,
    Tenant,
    Tier,
    TimeRange,
    Trunk,
)
from pbx_sla.domain.phone import COUNTRY_CODE, normalise
from pbx_sla.domain.pins import hash_pin, valid_pin, verify_pin
from pbx_sla.errors import InputError

#: version of the JSON document layout (``to_document``)
DOCUMENT_FORMAT = 1

_TOP = {"timezone", "country_code", "calendars", "tiers", "trunks", "tenants", "maintenance"}
_CALENDAR = {"hours", "holidays"}
_TIER = {
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
}
_TIER_REQUIRED = {"price_per_year", "currency", "calendar", "queue", "answer_target_seconds"}
_CREDIT = {"below", "percent", "metric"}
_TRUNK = {"name", "server", "availability_target"}
_TENANT = {
    "id",
    "name",
    "tier",
    "employees",
    "accountcodes",
    "dids",
    "trunks",
    "contract_start",
    "contract_end",
    "requesters",
}
_TENANT_REQUIRED = {"id", "name", "tier", "employees", "contract_start"}
_REQUESTER = {"name", "phones", "pin"}
_MAINTENANCE = {"trunk", "server", "start", "end", "reason"}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@:-]*$")  # ids, tier/calendar names, endpoints, servers
_QUEUE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_INT = 2**31 - 1


class _Problems:
    """Problems found so far, each ``<key path>: <what is wrong>``."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def _kind(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    for t, name in names.items():
        if isinstance(value, t):
            return name
    if isinstance(value, datetime):
        return "date-time"
    if isinstance(value, date):
        return "date"
    return type(value).__name__


def _sub(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _table(value: Any, path: str, allowed: set[str], required: set[str], p: _Problems) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        p.add(path, f"must be a table, got {_kind(value)}")
        return None
    for key in sorted(set(value) - allowed):
        p.add(_sub(path, key), "unknown key")
    for key in sorted(required - set(value)):
        p.add(_sub(path, key), "missing required key")
    return value


def _str(t: dict[str, Any], key: str, path: str, p: _Problems, *, pattern: re.Pattern[str] | None = None,
         default: str | None = None) -> str | None:  # fmt: skip
    if key not in t:
        return default
    value, where = t[key], _sub(path, key)
    if not isinstance(value, str):
        p.add(where, f"must be a string, got {_kind(value)}")
        return None
    if not value.strip():
        p.add(where, "must not be empty")
        return None
    if pattern is not None and not pattern.match(value):
        p.add(where, f"{value!r} has characters that are not allowed (letters, digits, _ . + - @ :)")
        return None
    return value


def _int(t: dict[str, Any], key: str, path: str, p: _Problems, *, minimum: int | None = None,
         default: int | None = None) -> int | None:  # fmt: skip
    if key not in t:
        return default
    value, where = t[key], _sub(path, key)
    if isinstance(value, bool) or not isinstance(value, int):
        p.add(where, f"must be an integer, got {_kind(value)}")
        return None
    if minimum is not None and value < minimum:
        p.add(where, f"must be at least {minimum}, got {value}")
        return None
    if abs(value) > _MAX_INT:
        p.add(where, f"{value} is too large")
        return None
    return value


def _decimal(value: Any, where: str, p: _Problems, *, floats: bool) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str) or (isinstance(value, float) and not floats):
        expected = "a number" if floats else "a string or an integer (money is exact: quote decimals)"
        p.add(where, f"must be {expected}, got {_kind(value)}")
        return None
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        p.add(where, f"{value!r} is not a number")
        return None
    if not number.is_finite():
        p.add(where, f"{value!r} is not a finite number")
        return None
    return number


def _places(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _ratio(t: dict[str, Any], key: str, path: str, p: _Problems, *, places: int) -> Decimal | None:
    if key not in t:
        return None
    where = _sub(path, key)
    number = _decimal(t[key], where, p, floats=True)
    if number is None:
        return None
    if not Decimal(0) <= number <= Decimal(1):
        p.add(where, f"must be a ratio between 0 and 1, got {number} (write 99.5 % as 0.995)")
        return None
    if _places(number) > places:
        p.add(where, f"{number} has more than {places} decimal places")
        return None
    return number


def _str_list(t: dict[str, Any], key: str, path: str, p: _Problems) -> list[tuple[str, str]]:
    """(path, value) of each string in an optional array."""
    if key not in t:
        return []
    value, where = t[key], _sub(path, key)
    if not isinstance(value, list):
        p.add(where, f"must be an array of strings, got {_kind(value)}")
        return []
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            p.add(f"{where}[{i}]", f"must be a non-empty string, got {_kind(item)} {item!r}")
        else:
            out.append((f"{where}[{i}]", item))
    return out


def _date(t: dict[str, Any], key: str, path: str, p: _Problems) -> date | None:
    if key not in t:
        return None
    return _date_value(t[key], _sub(path, key), p)


def _date_value(value: Any, where: str, p: _Problems) -> date | None:
    if isinstance(value, datetime) or not isinstance(value, date | str):
        p.add(where, f"must be a date YYYY-MM-DD, got {_kind(value)}")
        return None
    if isinstance(value, date):
        return value
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}$", value.strip()):
            return date.fromisoformat(value.strip())
    except ValueError:
        pass
    p.add(where, f"{value!r} is not a date YYYY-MM-DD")
    return None


def _instant(t: dict[str, Any], key: str, path: str, p: _Problems) -> datetime | None:
    if key not in t:
        return None
    value, where = t[key], _sub(path, key)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            p.add(where, f"{t[key]!r} is not a date-time like 2026-11-01T02:00:00+01:00")
            return None
    if not isinstance(value, datetime):
        p.add(where, f"must be a date-time with a UTC offset, got {_kind(value)}")
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        p.add(where, f"{value.isoformat()} has no UTC offset (write e.g. {value.isoformat()}+01:00)")
        return None
    return value


# --- sections -------------------------------------------------------------------------------------


def _calendar(name: str, raw: Any, p: _Problems) -> Calendar | None:
    path = f"calendars.{name}"
    t = _table(raw, path, _CALENDAR, {"hours"}, p)
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
        p.add(f"{path}.hours", f'must be "24/7" or a table of days, got {_kind(value)}')
        ok = False
    holidays: set[date] = set()
    raw_holidays = t.get("holidays", [])
    if not isinstance(raw_holidays, list):
        p.add(f"{path}.holidays", f"must be an array of dates, got {_kind(raw_holidays)}")
        ok = False
    else:
        for i, item in enumerate(raw_holidays):
            day = _date_value(item, f"{path}.holidays[{i}]", p)
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


def _out_of_hours(t: dict[str, Any], path: str, p: _Problems) -> OutOfHours | None:
    value = t.get("out_of_hours", "closed")
    where = f"{path}.out_of_hours"
    if isinstance(value, str):
        if value in ("closed", "voicemail"):
            return OutOfHours(value)  # type: ignore[arg-type]
        kind, sep, queue = value.partition(":")
        if kind == "queue" and sep and _QUEUE.match(queue):
            return OutOfHours("queue", queue)
    p.add(where, f'must be "closed", "voicemail" or "queue:<name>", got {value!r}')
    return None


def _credits(t: dict[str, Any], path: str, p: _Problems) -> tuple[CreditRule, ...] | None:
    value = t.get("credits", [])
    where = f"{path}.credits"
    if not isinstance(value, list):
        p.add(where, f"must be an array of tables, got {_kind(value)}")
        return None
    rules: list[CreditRule] = []
    ok = True
    for i, raw in enumerate(value):
        rp = f"{where}[{i}]"
        c = _table(raw, rp, _CREDIT, {"below", "percent"}, p)
        if c is None:
            ok = False
            continue
        below = _ratio(c, "below", rp, p, places=6)
        percent = _decimal(c["percent"], f"{rp}.percent", p, floats=True) if "percent" in c else None
        if percent is not None and not Decimal(0) <= percent <= Decimal(100):
            p.add(f"{rp}.percent", f"must be between 0 and 100, got {percent}")
            percent = None
        metric = c.get("metric", "availability")
        if metric not in ("availability", "service_level"):
            p.add(f"{rp}.metric", f'must be "availability" or "service_level", got {metric!r}')
            metric = None
        if below is None or percent is None or metric is None:
            ok = False
            continue
        if any(r.metric == metric and r.below == below for r in rules):
            p.add(rp, f"a second credit rule for {metric} below {below}")
            ok = False
            continue
        rules.append(CreditRule(below, percent, metric))
    return tuple(rules) if ok else None


def _tier(name: str, raw: Any, calendars: set[str], p: _Problems) -> Tier | None:
    path = f"tiers.{name}"
    t = _table(raw, path, _TIER, _TIER_REQUIRED, p)
    if t is None:
        return None
    before = len(p.items)
    price = None
    if "price_per_year" in t:
        price = _decimal(t["price_per_year"], f"{path}.price_per_year", p, floats=False)
        if price is not None and (price < 0 or _places(price) > 2 or price >= Decimal(10) ** 12):
            p.add(f"{path}.price_per_year", f"must be at least 0 with at most 2 decimal places, got {price}")
    currency = _str(t, "currency", path, p)
    if currency is not None and not _CURRENCY.match(currency):
        p.add(f"{path}.currency", f"must be an ISO 4217 code like CZK or EUR, got {currency!r}")
    calendar = _str(t, "calendar", path, p)
    if calendar is not None and calendar not in calendars:
        p.add(f"{path}.calendar", f"unknown calendar {calendar!r}")
    queue = _str(t, "queue", path, p, pattern=_QUEUE)
    out_of_hours = _out_of_hours(t, path, p)
    tier = dict(
        name=name,
        price_per_year=price,
        currency=currency,
        max_calls_per_day=_int(t, "max_calls_per_day", path, p, minimum=0),
        max_employees=_int(t, "max_employees", path, p, minimum=0),
        calendar=calendar,
        queue=queue,
        priority=_int(t, "priority", path, p, default=0),
        out_of_hours=out_of_hours,
        answer_target_seconds=_int(t, "answer_target_seconds", path, p, minimum=1),
        service_level_target=_ratio(t, "service_level_target", path, p, places=5),
        availability_target=_ratio(t, "availability_target", path, p, places=6),
        credits=_credits(t, path, p),
    )
    return Tier(**tier) if len(p.items) == before else None


def _trunks(raw: Any, p: _Problems) -> list[Trunk]:
    if not isinstance(raw, list):
        p.add("trunks", f"must be an array of tables ([[trunks]]), got {_kind(raw)}")
        return []
    trunks: list[Trunk] = []
    seen: dict[tuple[str, str], str] = {}
    for i, item in enumerate(raw):
        path = f"trunks[{i}]"
        t = _table(item, path, _TRUNK, {"name", "server"}, p)
        if t is None:
            continue
        before = len(p.items)
        name = _str(t, "name", path, p, pattern=_NAME)
        server = _str(t, "server", path, p, pattern=_NAME)
        target = _ratio(t, "availability_target", path, p, places=6)
        if name is None or server is None or len(p.items) != before:
            continue
        if (server, name) in seen:
            p.add(path, f"trunk {server}/{name} is also {seen[server, name]}")
            continue
        seen[server, name] = path
        trunks.append(Trunk(name, server, target))
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

    def __init__(self, what: str, p: _Problems) -> None:
        self.what, self.p, self.seen = what, p, {}  # type: ignore[var-annotated]

    def claim(self, value: str, where: str) -> bool:
        if value in self.seen:
            self.p.add(where, f"{self.what} {value} is also {self.seen[value]}")
            return False
        self.seen[value] = where
        return True


def _tenants(raw: Any, cc: str | None, tiers: set[str], trunks: list[Trunk], p: _Problems) -> list[Tenant]:
    if not isinstance(raw, list):
        p.add("tenants", f"must be an array of tables ([[tenants]]), got {_kind(raw)}")
        return []
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

    for i, item in enumerate(raw):
        path = f"tenants[{i}]"
        t = _table(item, path, _TENANT, _TENANT_REQUIRED, p)
        if t is None:
            continue
        before = len(p.items)
        tenant_id = _str(t, "id", path, p, pattern=_NAME)
        if tenant_id is not None:
            if tenant_id in ids:
                p.add(f"{path}.id", f"tenant {tenant_id!r} is also {ids[tenant_id]}")
            else:
                ids[tenant_id] = path
        name = _str(t, "name", path, p)
        tier = _str(t, "tier", path, p)
        if tier is not None and tier not in tiers:
            p.add(f"{path}.tier", f"unknown tier {tier!r}")
        employees = _int(t, "employees", path, p, minimum=0)
        start, end = _date(t, "contract_start", path, p), _date(t, "contract_end", path, p)
        if start is not None and end is not None and end < start:
            p.add(f"{path}.contract_end", f"{end} is before contract_start {start}")
        accountcodes = []
        for where, code in _str_list(t, "accountcodes", path, p):
            if len(code) > 80:
                p.add(where, "account codes are at most 80 characters (Asterisk's limit)")
            elif codes.claim(code, where):
                accountcodes.append(code)
        tenant_dids = []
        for where, text in _str_list(t, "dids", path, p):
            e164 = number(text, where)
            if e164 is not None and dids.claim(e164, where):
                tenant_dids.append(e164)
        tenant_trunks = []
        for where, ref in _str_list(t, "trunks", path, p):
            trunk, error = _trunk_ref(ref, trunks)
            if trunk is None:
                p.add(where, error)
            elif ref in tenant_trunks:
                p.add(where, f"trunk {ref!r} is listed twice")
            else:
                tenant_trunks.append(ref)
        requesters = _requesters(t.get("requesters", []), f"{path}.requesters", number, phones, p)
        if len(p.items) == before:
            tenants.append(
                Tenant(
                    id=tenant_id,  # type: ignore[arg-type]
                    name=name,  # type: ignore[arg-type]
                    tier=tier,  # type: ignore[arg-type]
                    employees=employees,  # type: ignore[arg-type]
                    contract_start=start,  # type: ignore[arg-type]
                    contract_end=end,
                    accountcodes=tuple(accountcodes),
                    dids=tuple(tenant_dids),
                    trunks=tuple(tenant_trunks),
                    requesters=tuple(requesters),
                )
            )
    return tenants


def _requesters(
    raw: Any, path: str, number: Callable[[str, str], str | None], phones: _Unique, p: _Problems
) -> list[Requester]:
    if not isinstance(raw, list):
        p.add(path, f"must be an array of tables ([[tenants.requesters]]), got {_kind(raw)}")
        return []
    out: list[Requester] = []
    names: dict[str, str] = {}
    for j, item in enumerate(raw):
        rp = f"{path}[{j}]"
        r = _table(item, rp, _REQUESTER, {"name"}, p)
        if r is None:
            continue
        name = _str(r, "name", rp, p)
        if name is not None:
            if name in names:
                p.add(f"{rp}.name", f"requester {name!r} is also {names[name]}")
            names[name] = rp
        numbers = []
        for where, text in _str_list(r, "phones", rp, p):
            e164 = number(text, where)
            if e164 is not None and phones.claim(e164, where):
                numbers.append(e164)
        pin = r.get("pin")
        if pin is not None and not valid_pin(pin):
            # the message never repeats the PIN itself
            shown = "an integer (quote it so leading zeros survive)" if isinstance(pin, int) else "not 4-12 digits"
            p.add(f"{rp}.pin", f"must be a string of 4 to 12 digits, got {shown}")
            pin = None
        if "phones" not in r and "pin" not in r:
            p.add(rp, "a requester needs phones or a pin to be recognised")
        if name is not None:
            out.append(Requester(name=name, phones=tuple(numbers), pin=pin))
    return out


def _maintenance(raw: Any, trunks: list[Trunk], p: _Problems) -> list[MaintenanceWindow]:
    if not isinstance(raw, list):
        p.add("maintenance", f"must be an array of tables ([[maintenance]]), got {_kind(raw)}")
        return []
    windows: list[tuple[str, MaintenanceWindow]] = []
    servers = {t.server for t in trunks}
    for i, item in enumerate(raw):
        path = f"maintenance[{i}]"
        t = _table(item, path, _MAINTENANCE, {"start", "end"}, p)
        if t is None:
            continue
        before = len(p.items)
        trunk_ref, server = _str(t, "trunk", path, p), _str(t, "server", path, p)
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
        start, end = _instant(t, "start", path, p), _instant(t, "end", path, p)
        if start is not None and end is not None and end <= start:
            p.add(f"{path}.end", f"{end.isoformat()} is not after start {start.isoformat()}")
        reason = t.get("reason", "")
        if not isinstance(reason, str):
            p.add(f"{path}.reason", f"must be a string, got {_kind(reason)}")
        if len(p.items) == before:
            window = MaintenanceWindow(
                start=start,  # type: ignore[arg-type]
                end=end,  # type: ignore[arg-type]
                trunk=trunk.name if trunk else None,
                server=trunk.server if trunk else server,
                reason=reason,
            )
            windows.append((path, window))
    by_scope: dict[tuple[str | None, str | None], list[tuple[str, MaintenanceWindow]]] = {}
    for path, w in windows:
        by_scope.setdefault((w.server, w.trunk), []).append((path, w))
    for (server, trunk), group in by_scope.items():
        group.sort(key=lambda pw: (pw[1].start, pw[1].end))
        for (pa, a), (pb, b) in pairwise(group):
            if b.start < a.end:
                scope = f"trunk {server}/{trunk}" if trunk else f"all trunks of {server}" if server else "all trunks"
                p.add(pb, f"overlaps {pa} on {scope}")
    return [w for _, w in windows]


def parse_catalogue(data: Mapping[str, Any], source: str) -> Catalogue:
    """Validate a catalogue read by :func:`tomllib.load`; raise :class:`InputError` listing every problem."""
    p = _Problems()
    t = _table(dict(data), "", _TOP, {"timezone", "country_code"}, p) or {}
    timezone = _str(t, "timezone", "", p)
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
            p.add(key, f"must be a table, got {_kind(value)}")
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
    if p.items:
        raise InputError(f"{source}: catalogue invalid ({len(p.items)} problem{'s' * (len(p.items) != 1)})", p.items)
    return Catalogue(
        timezone=timezone,  # type: ignore[arg-type]
        country_code=cc,  # type: ignore[arg-type]
        calendars=calendars,
        tiers=tiers,
        tenants={x.id: x for x in tenants},
        trunks=tuple(trunks),
        maintenance=tuple(maintenance),
    )


# --- PINs ---------------------------------------------------------------------------------------


def _seal_one(item: tuple[str, str | None]) -> str:
    pin, old = item
    return old if old is not None and verify_pin(pin, old) else hash_pin(pin)


def seal_pins(
    cat: Catalogue,
    stored: Mapping[tuple[str, str], str | None],
    *,
    map_fn: Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]] = map,
) -> Catalogue:
    """Replace each transient PIN by a hash: the ``stored`` hash of (tenant id, requester name) when it
    still verifies the PIN (so an unchanged file changes nothing), else a fresh salted hash.
    Requesters without a PIN keep ``pin_hash`` None. scrypt costs ~50 ms per PIN by design: pass
    ``map_fn=executor.map`` to spread the work over threads (scrypt releases the GIL)."""
    work = [
        (tid, r.name, r.pin, stored.get((tid, r.name)))
        for tid, tenant in cat.tenants.items()
        for r in tenant.requesters
        if r.pin is not None
    ]
    hashes = dict(
        zip(
            [(tid, name) for tid, name, _, _ in work],
            map_fn(_seal_one, [(pin, old) for _, _, pin, old in work]),
            strict=True,
        )
    )
    tenants = {}
    for tid, tenant in cat.tenants.items():
        requesters = tuple(
            dataclasses.replace(r, pin_hash=hashes[(tid, r.name)], pin=None) if r.pin is not None else r
            for r in tenant.requesters
        )
        tenants[tid] = dataclasses.replace(tenant, requesters=requesters)
    return dataclasses.replace(cat, tenants=tenants)


# --- the JSON document ----------------------------------------------------------------------------


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def out_of_hours_text(o: OutOfHours) -> str:
    return f"queue:{o.queue}" if o.action == "queue" else o.action


def to_document(cat: Catalogue) -> dict[str, Any]:
    """The catalogue as JSON-serialisable data (Decimals and dates as strings, orders kept: arrays, since
    jsonb reorders object keys). Refuses a catalogue whose PINs were not sealed into hashes."""
    tenants = []
    for t in cat.tenants.values():
        for r in t.requesters:
            if r.pin is not None:
                raise ValueError(f"tenant {t.id!r}: requester {r.name!r} has an unsealed PIN (call seal_pins)")
        tenants.append(
            {
                "id": t.id,
                "name": t.name,
                "tier": t.tier,
                "employees": t.employees,
                "contract_start": t.contract_start.isoformat(),
                "contract_end": t.contract_end.isoformat() if t.contract_end else None,
                "accountcodes": list(t.accountcodes),
                "dids": list(t.dids),
                "trunks": list(t.trunks),
                "requesters": [
                    {"name": r.name, "phones": list(r.phones), "pin_hash": r.pin_hash} for r in t.requesters
                ],
            }
        )
    return {
        "format": DOCUMENT_FORMAT,
        "timezone": cat.timezone,
        "country_code": cat.country_code,
        "calendars": [
            {
                "name": c.name,
                "always": c.always,
                "hours": hours_to_text(c.hours),
                "holidays": [d.isoformat() for d in sorted(c.holidays)],
            }
            for c in cat.calendars.values()
        ],
        "tiers": [
            {
                "name": t.name,
                "price_per_year": _dec(t.price_per_year),
                "currency": t.currency,
                "max_calls_per_day": t.max_calls_per_day,
                "max_employees": t.max_employees,
                "calendar": t.calendar,
                "queue": t.queue,
                "priority": t.priority,
                "out_of_hours": out_of_hours_text(t.out_of_hours),
                "answer_target_seconds": t.answer_target_seconds,
                "service_level_target": _dec(t.service_level_target),
                "availability_target": _dec(t.availability_target),
                "credits": [{"below": str(c.below), "percent": str(c.percent), "metric": c.metric} for c in t.credits],
            }
            for t in cat.tiers.values()
        ],
        "tenants": tenants,
        "trunks": [
            {"name": t.name, "server": t.server, "availability_target": _dec(t.availability_target)} for t in cat.trunks
        ],
        "maintenance": [
            {
                "start": w.start.isoformat(),
                "end": w.end.isoformat(),
                "trunk": w.trunk,
                "server": w.server,
                "reason": w.reason,
            }
            for w in cat.maintenance
        ],
    }


def from_document(doc: Mapping[str, Any]) -> Catalogue:
    """Inverse of :func:`to_document` (trusted input: a document this module wrote)."""
    if doc.get("format") != DOCUMENT_FORMAT:
        raise ValueError(f"unknown catalogue document format {doc.get('format')!r}")
    calendars = {}
    for c in doc["calendars"]:
        hours = {DAYS.index(day): parse_day(ranges) for day, ranges in c["hours"].items()}
        holidays = frozenset(date.fromisoformat(d) for d in c["holidays"])
        calendars[c["name"]] = Calendar(c["name"], c["always"], hours, holidays)
    tiers = {}
    for t in doc["tiers"]:
        kind, _, queue = t["out_of_hours"].partition(":")
        tiers[t["name"]] = Tier(
            name=t["name"],
            price_per_year=Decimal(t["price_per_year"]),
            currency=t["currency"],
            max_calls_per_day=t["max_calls_per_day"],
            max_employees=t["max_employees"],
            calendar=t["calendar"],
            queue=t["queue"],
            priority=t["priority"],
            out_of_hours=OutOfHours(kind, queue or None),  # type: ignore[arg-type]
            answer_target_seconds=t["answer_target_seconds"],
            service_level_target=_undec(t["service_level_target"]),
            availability_target=_undec(t["availability_target"]),
            credits=tuple(CreditRule(Decimal(c["below"]), Decimal(c["percent"]), c["metric"]) for c in t["credits"]),
        )
    tenants = {}
    for t in doc["tenants"]:
        tenants[t["id"]] = Tenant(
            id=t["id"],
            name=t["name"],
            tier=t["tier"],
            employees=t["employees"],
            contract_start=date.fromisoformat(t["contract_start"]),
            contract_end=date.fromisoformat(t["contract_end"]) if t["contract_end"] else None,
            accountcodes=tuple(t["accountcodes"]),
            dids=tuple(t["dids"]),
            trunks=tuple(t["trunks"]),
            requesters=tuple(Requester(r["name"], tuple(r["phones"]), r["pin_hash"]) for r in t["requesters"]),
        )
    return Catalogue(
        timezone=doc["timezone"],
        country_code=doc["country_code"],
        calendars=calendars,
        tiers=tiers,
        tenants=tenants,
        trunks=tuple(Trunk(t["name"], t["server"], _undec(t["availability_target"])) for t in doc["trunks"]),
        maintenance=tuple(
            MaintenanceWindow(
                start=datetime.fromisoformat(w["start"]),
                end=datetime.fromisoformat(w["end"]),
                trunk=w["trunk"],
                server=w["server"],
                reason=w["reason"],
            )
            for w in doc["maintenance"]
        ),
    )


def canonical_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_sha256(doc: Mapping[str, Any]) -> str:
    """Digest of the canonical JSON form: equal documents, equal digests."""
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()
