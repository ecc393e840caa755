"""The catalogue as a JSON document: what ``catalogue_revisions.document`` and the daemon's cache file hold.

The document is derived from the dataclasses of :mod:`pbx_sla.domain.catalogue`, so a field added there
is written and read back without touching this module: Decimals, dates and instants become ISO strings,
tuples and the name-keyed mappings (calendars, tiers, tenants) become arrays (jsonb reorders object keys,
arrays keep the file's order), :class:`OutOfHours` its text form, a calendar's hours ``{"mon": ["09:00-18:00"]}``.
A field missing from a stored document takes its dataclass default, so documents written before a key
existed still load. Transient fields (the plain PIN) are never written: :func:`to_document` refuses a
catalogue whose PINs were not sealed into hashes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pbx_sla.domain.calendar import DAYS, hours_to_text, parse_day
from pbx_sla.domain.catalogue import Calendar, Catalogue, OutOfHours

#: version of the JSON document layout (``to_document``)
DOCUMENT_FORMAT = 1


def to_document(cat: Catalogue) -> dict[str, Any]:
    """The catalogue as JSON-serialisable data. Refuses a catalogue whose PINs were not sealed into hashes."""
    for t in cat.tenants.values():
        for r in t.requesters:
            if r.pin is not None:
                raise ValueError(f"tenant {t.id!r}: requester {r.name!r} has an unsealed PIN (call seal_pins)")
    return {"format": DOCUMENT_FORMAT, **_encode(cat)}


def from_document(doc: Mapping[str, Any]) -> Catalogue:
    """Inverse of :func:`to_document` (trusted input: a document this module wrote)."""
    if doc.get("format") != DOCUMENT_FORMAT:
        raise ValueError(f"unknown catalogue document format {doc.get('format')!r}")
    catalogue: Catalogue = _decode(Catalogue, doc)
    return catalogue


def canonical_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_sha256(doc: Mapping[str, Any]) -> str:
    """Digest of the canonical JSON form: equal documents, equal digests."""
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def _encode(value: Any) -> Any:
    if isinstance(value, OutOfHours):
        return value.as_text()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            if f.metadata.get("transient"):
                continue
            item = getattr(value, f.name)
            if f.metadata.get("omit_default") and item == f.default:
                continue  # a later optional key: documents that do not use it keep their digest
            out[f.name] = hours_to_text(item) if (type(value), f.name) == (Calendar, "hours") else _encode(item)
        return out
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # and datetime
        return value.isoformat()
    if isinstance(value, frozenset):
        return [_encode(v) for v in sorted(value)]
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return [_encode(v) for v in value.values()]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _decode(hint: Any, raw: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if raw is None:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _decode(inner, raw)
    if hint is OutOfHours:
        action, _, queue = raw.partition(":")
        return OutOfHours(action, queue or None)
    if hint is Decimal:
        return Decimal(raw)
    if hint is datetime:
        return datetime.fromisoformat(raw)
    if hint is date:
        return date.fromisoformat(raw)
    if origin is tuple:
        return tuple(_decode(args[0], v) for v in raw)
    if origin is frozenset:
        return frozenset(_decode(args[0], v) for v in raw)
    if origin is Mapping:  # name-keyed dataclasses, keyed by their first field (name or id)
        items = [_decode(args[1], v) for v in raw]
        return {getattr(x, dataclasses.fields(x)[0].name): x for x in items}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = _hints(hint)
        kwargs = {}
        for f in dataclasses.fields(hint):
            if f.name not in raw or f.metadata.get("transient"):
                continue  # a document written before this field existed: its default
            if (hint, f.name) == (Calendar, "hours"):
                kwargs[f.name] = {DAYS.index(day): parse_day(ranges) for day, ranges in raw[f.name].items()}
            else:
                kwargs[f.name] = _decode(hints[f.name], raw[f.name])
        return hint(**kwargs)
    if hint in (str, int, bool) or origin is Literal:
        return raw
    raise TypeError(f"catalogue document: no decoding for {hint!r}")
