"""Checks of values read from a TOML table, each problem naming its key path.

A file is validated completely before anything is refused, so every check records its problem in a
:class:`Problems` list and returns None instead of raising: the user sees all mistakes at once, each as
``<key path>: <what is wrong>`` (``tenants[1].tier: unknown tier 'gold'``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_INT = 2**31 - 1  # PostgreSQL integer columns


class Problems:
    """Problems found so far, each ``<key path>: <what is wrong>``."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def nul_characters(value: Any, path: str, p: Problems) -> None:
    """Report every string (value or key) holding a NUL character, anywhere under ``value``: PostgreSQL
    text cannot store one, so it must be refused here with its key path, not later as a database error."""
    if isinstance(value, str):
        if "\x00" in value:
            p.add(path or "(top level)", f"contains a NUL character (position {value.index(chr(0)) + 1})")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                p.add(sub(path, key.replace("\x00", "\\0")), "key contains a NUL character")
            nul_characters(item, sub(path, str(key)), p)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            nul_characters(item, f"{path}[{i}]", p)


def file_keys(cls: type, *, not_in_file: frozenset[str] = frozenset()) -> tuple[frozenset[str], frozenset[str]]:
    """(allowed, required) keys of the table that fills dataclass ``cls``: its fields except
    ``not_in_file`` (derived or table-name fields); required are the fields without a default."""
    allowed, required = set(), set()
    for f in dataclasses.fields(cls):
        if f.name in not_in_file:
            continue
        allowed.add(f.name)
        if is_required(f):
            required.add(f.name)
    return frozenset(allowed), frozenset(required)


def is_required(f: dataclasses.Field[Any]) -> bool:
    """A field without a default: its key must be in the file."""
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def kind(value: Any) -> str:
    """The TOML name of a value's type, for messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    for t, name in names.items():
        if isinstance(value, t):
            return name
    if isinstance(value, datetime):
        return "date-time"
    if isinstance(value, date):
        return "date"
    return type(value).__name__


def sub(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def table(
    value: Any, path: str, allowed: frozenset[str] | set[str], required: frozenset[str] | set[str], p: Problems
) -> dict[str, Any] | None:
    """``value`` as a table, reporting unknown and missing keys (the table is still returned)."""
    if not isinstance(value, dict):
        p.add(path, f"must be a table, got {kind(value)}")
        return None
    for key in sorted(set(value) - allowed):
        p.add(sub(path, key), "unknown key")
    for key in sorted(required - set(value)):
        p.add(sub(path, key), "missing required key")
    return value


def tables(
    value: Any,
    path: str,
    allowed: frozenset[str] | set[str],
    required: frozenset[str] | set[str],
    p: Problems,
    *,
    header: str = "",
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key path, table) of each table of an array of tables, checked by :func:`table` one at a time (so
    problems come in file order); an item that is not a table, or a ``value`` that is not an array, is
    reported and yields nothing. ``header`` names the TOML form in the message (``[[trunks]]``)."""
    if not isinstance(value, list):
        p.add(path, f"must be an array of tables{f' ({header})' if header else ''}, got {kind(value)}")
        return
    for i, item in enumerate(value):
        t = table(item, f"{path}[{i}]", allowed, required, p)
        if t is not None:
            yield f"{path}[{i}]", t


def string(t: dict[str, Any], key: str, path: str, p: Problems, *, pattern: re.Pattern[str] | None = None,
           default: str | None = None) -> str | None:  # fmt: skip
    if key not in t:
        return default
    value, where = t[key], sub(path, key)
    if not isinstance(value, str):
        p.add(where, f"must be a string, got {kind(value)}")
        return None
    if not value.strip():
        p.add(where, "must not be empty")
        return None
    if pattern is not None and not pattern.match(value):
        p.add(where, f"{value!r} has characters that are not allowed (letters, digits, _ . + - @ :)")
        return None
    return value


def integer(t: dict[str, Any], key: str, path: str, p: Problems, *, minimum: int | None = None,
            default: int | None = None) -> int | None:  # fmt: skip
    if key not in t:
        return default
    value, where = t[key], sub(path, key)
    if isinstance(value, bool) or not isinstance(value, int):
        p.add(where, f"must be an integer, got {kind(value)}")
        return None
    if minimum is not None and value < minimum:
        p.add(where, f"must be at least {minimum}, got {value}")
        return None
    if abs(value) > MAX_INT:
        p.add(where, f"{value} is too large")
        return None
    return value


def decimal(value: Any, where: str, p: Problems, *, floats: bool) -> Decimal | None:
    """An exact number; ``floats=False`` (money) refuses TOML floats, whose value is already rounded."""
    if isinstance(value, bool) or not isinstance(value, int | float | str) or (isinstance(value, float) and not floats):
        expected = "a number" if floats else "a string or an integer (money is exact: quote decimals)"
        p.add(where, f"must be {expected}, got {kind(value)}")
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


def places(number: Decimal) -> int:
    """Decimal places written in ``number`` (``Decimal("0.950")`` has 3)."""
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def ratio(t: dict[str, Any], key: str, path: str, p: Problems, *, max_places: int) -> Decimal | None:
    """A target ratio in 0..1 with at most ``max_places`` decimals (what its SQL column holds)."""
    if key not in t:
        return None
    where = sub(path, key)
    number = decimal(t[key], where, p, floats=True)
    if number is None:
        return None
    if not Decimal(0) <= number <= Decimal(1):
        p.add(where, f"must be a ratio between 0 and 1, got {number} (write 99.5 % as 0.995)")
        return None
    if places(number) > max_places:
        p.add(where, f"{number} has more than {max_places} decimal places")
        return None
    return number


def string_list(t: dict[str, Any], key: str, path: str, p: Problems) -> list[tuple[str, str]]:
    """(path, value) of each string in an optional array."""
    if key not in t:
        return []
    value, where = t[key], sub(path, key)
    if not isinstance(value, list):
        p.add(where, f"must be an array of strings, got {kind(value)}")
        return []
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            p.add(f"{where}[{i}]", f"must be a non-empty string, got {kind(item)} {item!r}")
        else:
            out.append((f"{where}[{i}]", item))
    return out


def day(t: dict[str, Any], key: str, path: str, p: Problems) -> date | None:
    if key not in t:
        return None
    return day_value(t[key], sub(path, key), p)


def day_value(value: Any, where: str, p: Problems) -> date | None:
    """A TOML local date or a ``YYYY-MM-DD`` string."""
    if isinstance(value, datetime) or not isinstance(value, date | str):
        p.add(where, f"must be a date YYYY-MM-DD, got {kind(value)}")
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


def instant(t: dict[str, Any], key: str, path: str, p: Problems) -> datetime | None:
    """An instant with a UTC offset (a TOML offset date-time or its ISO 8601 string)."""
    if key not in t:
        return None
    value, where = t[key], sub(path, key)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            p.add(where, f"{t[key]!r} is not a date-time like 2026-11-01T02:00:00+01:00")
            return None
    if not isinstance(value, datetime):
        p.add(where, f"must be a date-time with a UTC offset, got {kind(value)}")
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        p.add(where, f"{value.isoformat()} has no UTC offset (write e.g. {value.isoformat()}+01:00)")
        return None
    return value
