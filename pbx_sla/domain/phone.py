"""Phone numbers to E.164 (``+420777000001``), so that a caller ID, a catalogue entry and a DID compare equal.

The rules, in order (documented in docs/catalogue.md):

1. Wrappers are peeled: an Asterisk caller ID ``"Name" <number>`` keeps the part in angle brackets; a
   ``tel:``/``sip:``/``sips:`` URI keeps its user part (before ``@``, without ``;parameters``).
2. Formatting noise is dropped: spaces, dashes, dots, parentheses, slashes.
3. What is left must be digits, optionally after one leading ``+``; anything else (``anonymous``,
   ``unknown``, ``restricted``, letters, empty) gives None.
4. ``+digits`` is international already. The international call prefix (``00``; ``011`` in the North
   American Numbering Plan, country code 1) is replaced by ``+``.
5. Other digits are interpreted with the catalogue's country code ``cc``:
   a. if the country has a national trunk prefix (``0`` in GB, DE, AT, FR, SK, ...; ``1`` in NANP;
      ``06`` in HU) and the digits start with it, the prefix is replaced by ``+cc``
      (``07700900123`` with 44 → ``+447700900123``);
   b. if the country's national significant numbers have a known length (9 in CZ) and the digits have
      that length, they are national: ``+cc`` + digits (``777000001`` with 420 → ``+420777000001``);
   c. if the digits start with ``cc`` and the rest has the national length, the caller ID lacked only
      the ``+`` (``420777000001`` with 420 → ``+420777000001``; carriers often send this form);
   d. a country without a known length takes the digits as national (``+cc`` + digits).
6. The result must be a valid E.164 number: ``+`` and 7..15 digits, no leading zero in the country code,
   and, where the country is in the table below, a national number of an allowed length. Else None
   (internal extensions such as ``101`` are not phone numbers).

Idempotent: a result fed back in comes out unchanged.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
COUNTRY_CODE = re.compile(r"^[1-9]\d{0,2}$")

_NOISE = re.compile(r"[\s\-.()/\u00a0]")
_ANGLE = re.compile(r"<([^<>]*)>")
_URI = re.compile(r"^(?:tel|sips?):", re.IGNORECASE)


@dataclass(frozen=True)
class CountryPlan:
    """What we know of one country's numbering plan; lengths None means variable / unknown."""

    trunk_prefix: str | None
    lengths: frozenset[int] | None
    international_prefix: str = "00"


def _plan(trunk: str | None, *lengths: int, intl: str = "00") -> CountryPlan:
    return CountryPlan(trunk, frozenset(lengths) if lengths else None, intl)


#: numbering plans of the countries we were asked about and their neighbours (ITU-T E.164 national plans)
PLANS: dict[str, CountryPlan] = {
    "1": _plan("1", 10, intl="011"),  # NANP
    "31": _plan("0", 9),  # NL
    "32": _plan("0", 8, 9),  # BE
    "33": _plan("0", 9),  # FR
    "34": _plan(None, 9),  # ES
    "36": _plan("06", 8, 9),  # HU
    "39": _plan(None),  # IT: the leading 0 of fixed lines is part of the number
    "41": _plan("0", 9),  # CH
    "43": _plan("0"),  # AT: variable length
    "44": _plan("0", 9, 10),  # GB
    "48": _plan(None, 9),  # PL
    "49": _plan("0"),  # DE: variable length
    "420": _plan(None, 9),  # CZ: no trunk prefix since 2002
    "421": _plan("0", 9),  # SK
}
_DEFAULT_PLAN = _plan(None)


def country_of(e164: str) -> str | None:
    """The country code of an E.164 number among :data:`PLANS` (codes are prefix-free), else None."""
    digits = e164.lstrip("+")
    for size in (1, 2, 3):
        if digits[:size] in PLANS:
            return digits[:size]
    return None


def is_valid_e164(number: str) -> bool:
    """``+`` and 7..15 digits, and an allowed national length where the country's plan is known."""
    if not E164.match(number) or len(number) - 1 < 7:
        return False
    cc = country_of(number)
    if cc is None:
        return True
    lengths = PLANS[cc].lengths
    return lengths is None or len(number) - 1 - len(cc) in lengths


def _unwrap(text: str) -> str:
    m = _ANGLE.search(text)
    if m:
        text = m.group(1)
    text = text.strip()
    if _URI.match(text):
        text = text.split(":", 1)[1]
        text = text.split("@", 1)[0].split(";", 1)[0]
    return text


def normalise(number: str, country_code: str) -> str | None:
    """``number`` (caller ID, URI, catalogue entry) as E.164 using ``country_code`` for national numbers.

    None when it is empty, anonymous, not numeric or not a valid number. ``country_code`` is digits
    without ``+`` (``"420"``); a bad one raises ValueError (it comes from a validated catalogue).
    """
    if not COUNTRY_CODE.match(country_code):
        raise ValueError(f"country code must be 1-3 digits, got {country_code!r}")
    if not number:
        return None
    text = _NOISE.sub("", _unwrap(number))
    if not text:
        return None
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits.isascii() or not digits.isdigit():
        return None
    plan = PLANS.get(country_code, _DEFAULT_PLAN)
    if plus:
        candidate = "+" + digits
    elif digits.startswith(plan.international_prefix):
        candidate = "+" + digits[len(plan.international_prefix) :]
    elif plan.trunk_prefix is not None and digits.startswith(plan.trunk_prefix):
        candidate = "+" + country_code + digits[len(plan.trunk_prefix) :]
    elif plan.lengths is not None:
        if len(digits) in plan.lengths:
            candidate = "+" + country_code + digits
        elif digits.startswith(country_code) and len(digits) - len(country_code) in plan.lengths:
            candidate = "+" + digits
        else:
            return None
    else:
        candidate = "+" + country_code + digits
    return candidate if is_valid_e164(candidate) else None


#: distinct numbers an :class:`E164Cache` keeps before it starts again
E164_CACHE_SIZE = 1 << 17


class E164Cache(dict[str, str | None]):
    """Number → E.164 with one country code, memoised (callers and DIDs repeat): a lookup is a plain dict
    access; :meth:`__missing__` normalises a number seen for the first time. No country code: None."""

    def __init__(self, country_code: str | None) -> None:
        super().__init__()
        self.country_code = country_code

    def __missing__(self, number: str) -> str | None:
        if len(self) >= E164_CACHE_SIZE:
            self.clear()
        value = self[number] = normalise(number, self.country_code) if self.country_code else None
        return value


@functools.lru_cache(maxsize=8)
def e164_cache(country_code: str | None) -> E164Cache:
    """The process's one cache of numbers for this country code (the daemon's store and the import's
    parser both use it)."""
    return E164Cache(country_code)
