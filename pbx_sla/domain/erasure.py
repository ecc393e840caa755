"""Where one person's phone number can hide in stored text, and how it is replaced (right to erasure).

The number is found by its E.164 form in the normalised columns (``caller_e164``, ``dialled_e164``) and by
its written forms in free text (``lastdata``, ``userfield``, channel names): ``+420777000001``,
``00420777000001``, ``420777000001``, the national form with the trunk prefix (``0777...`` where the
country has one) and the bare national number, each only where no digit touches it (so a longer number
that merely contains these digits is left alone). Formatting inside the number (spaces, dashes) in free
text is not recognised; the normalised columns catch those in caller IDs and dialled numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pbx_sla.domain.phone import PLANS, country_of, normalise


def written_forms(e164: str, country_code: str) -> tuple[str, ...]:
    """The ways ``e164`` may be written in free text by a PBX in the country ``country_code``, longest first."""
    digits = e164[1:]
    forms = {e164, digits}
    cc = country_of(e164)
    if cc is not None:
        national = digits[len(cc) :]
        plan = PLANS[cc]
        forms.add(plan.international_prefix + digits)
        if cc == country_code:
            if plan.trunk_prefix is not None:
                forms.add(plan.trunk_prefix + national)
            forms.add(national)
    else:
        forms.add("00" + digits)
    return tuple(sorted(forms, key=lambda f: (-len(f), f)))


def forms_pattern(forms: tuple[str, ...]) -> re.Pattern[str]:
    """Any of ``forms`` with no digit (nor a ``+`` before a bare form) directly around it."""
    alternatives = "|".join(re.escape(f) for f in forms)
    return re.compile(rf"(?<![\d+])(?:{alternatives})(?!\d)")


@dataclass(frozen=True)
class Target:
    """The number being erased: its E.164 form, the pattern of its written forms, and its token."""

    e164: str
    forms: tuple[str, ...]
    token: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return forms_pattern(self.forms)

    def is_number(self, text: str | None, country_code: str) -> bool:
        """Whether a caller ID / dialled-number field as a whole is this number (``"Name" <0777...>`` too)."""
        return bool(text) and normalise(text or "", country_code) == self.e164

    def scrub(self, text: str) -> str:
        """``text`` with every written form of the number replaced by the token."""
        return self.pattern.sub(self.token, text)

    def field(self, text: str | None, country_code: str) -> str | None:
        """A caller ID / number field: the token when it is the number (a name beside it goes too), else
        ``text`` with the number's written forms replaced."""
        if text is None:
            return None
        if self.is_number(text, country_code):
            return self.token
        return self.scrub(text)


def parse_number(number: str, country_code: str) -> str:
    """``number`` as given on the command line (any form routing accepts) in E.164.

    Raises ValueError naming the input when it is not a phone number under the catalogue's country code.
    """
    e164 = normalise(number, country_code)
    if e164 is None:
        raise ValueError(f"--number {number!r} is not a phone number (country code {country_code})")
    return e164


def target(e164: str, country_code: str, token: str) -> Target:
    """The erasure target: the number, its written forms and its pseudonym."""
    return Target(e164, written_forms(e164, country_code), token)


def shortest_form(t: Target) -> str:
    """Every written form contains the shortest one, so one substring test finds all candidate rows."""
    return min(t.forms, key=len)
