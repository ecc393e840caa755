"""The contracts catalogue as plain, immutable data: tiers, calendars, tenants, requesters, trunks,
maintenance windows. No I/O here; parsing and validation of the TOML file live in
:mod:`pbx_sla.domain.catalogue_file`, the JSON document form in :mod:`pbx_sla.domain.catalogue_document`,
storage in :mod:`pbx_sla.store.catalogue`.

These dataclasses are the single list of catalogue keys: the file's allowed and required keys and the
document's fields are derived from them (a field without a default is a required key). Adding a key
means adding a field here (with a default, so stored documents written before still load) and its
validation in :mod:`pbx_sla.domain.catalogue_file`.

Conventions every consumer relies on:

* phone numbers, DIDs: E.164 strings (``+420221000111``), normalised with the catalogue's country code;
* money: :class:`decimal.Decimal`; ratios (targets): :class:`decimal.Decimal` in 0..1;
* ``contract_end`` is the inclusive last day under contract (None: open-ended);
* times of day are minutes after midnight, ``end`` may be 1440 (24:00).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pbx_sla.domain.qos import QosTargets

OutOfHoursAction = Literal["closed", "voicemail", "queue"]
CreditMetric = Literal[
    "availability", "service_level", "qos_loss", "qos_jitter_ms", "qos_rtt_ms", "qos_mos", "qos_poor_ratio", "reaction"
]

#: ``field(metadata=TRANSIENT)``: a value that exists only in memory, never in the stored document
TRANSIENT = {"transient": True}
#: ``field(metadata=OPTIONAL_KEY)``: written to the stored document only when it differs from its default, so
#: the documents (and digests) of catalogues that do not use a later key stay as they were
OPTIONAL_KEY = {"omit_default": True}


@dataclass(frozen=True)
class TimeRange:
    """Opening hours within one day, ``[start, end)`` in minutes after midnight."""

    start: int
    end: int


@dataclass(frozen=True)
class Calendar:
    """Support hours: weekly opening hours (0 = Monday) and public holidays, or 24/7."""

    name: str
    always: bool
    hours: Mapping[int, tuple[TimeRange, ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class OutOfHours:
    """What a tier does outside its support hours: ``closed``, ``voicemail`` or ``queue`` (with ``queue``)."""

    action: OutOfHoursAction
    queue: str | None = None

    def as_text(self) -> str:
        """The file's and the document's form: ``closed``, ``voicemail`` or ``queue:<name>``."""
        return f"queue:{self.queue}" if self.action == "queue" else self.action


@dataclass(frozen=True)
class CreditRule:
    """A period figure (``metric``) below ``below`` (or, for the ``qos_…`` figures where more is worse, above
    ``above``) earns ``percent`` % of the period's fee. Exactly one of ``below`` and ``above`` is set."""

    below: Decimal | None
    percent: Decimal
    metric: CreditMetric = "availability"
    above: Decimal | None = field(default=None, metadata=OPTIONAL_KEY)


@dataclass(frozen=True, kw_only=True)
class Tier:
    """A support contract level: price, support hours and queue, targets, and credits when missed."""

    name: str
    price_per_year: Decimal
    currency: str
    max_calls_per_day: int | None = None
    max_employees: int | None = None
    calendar: str
    queue: str
    priority: int = 0
    out_of_hours: OutOfHours = OutOfHours("closed")
    answer_target_seconds: int
    service_level_target: Decimal | None = None
    availability_target: Decimal | None = None
    credits: tuple[CreditRule, ...] = ()
    #: voice-quality targets of the tier's tenants (over their calls' trunk legs, docs/qos.md)
    qos: QosTargets | None = field(default=None, metadata=OPTIONAL_KEY)
    #: support requests must see a reaction within this many business seconds (file: ``"4h"``); None: no target
    reaction_target: int | None = field(default=None, metadata=OPTIONAL_KEY)
    #: the share of requests that must meet ``reaction_target``
    reaction_share_target: Decimal | None = field(default=None, metadata=OPTIONAL_KEY)


@dataclass(frozen=True)
class Requester:
    """A person a tenant authorised to ask for support: by phone number, or by PIN (hash only)."""

    name: str
    phones: tuple[str, ...] = ()
    pin_hash: str | None = None
    #: the plain PIN, only between parsing a file and applying it (which hashes it); never stored,
    #: never shown, never compared. See :func:`pbx_sla.domain.pins.seal_pins`.
    pin: str | None = field(default=None, repr=False, compare=False, metadata=TRANSIENT)


@dataclass(frozen=True)
class SupportPackage:
    """Prepaid support hours usable from ``start`` to ``end`` (local days, both inclusive)."""

    hours: Decimal
    start: date
    end: date


@dataclass(frozen=True)
class SupportSettings:
    """Who counts as support staff for callbacks, how long a callback must last to count, and where the
    support line runs in the dialplan."""

    staff: tuple[str, ...] = ()  # PJSIP endpoint names
    callback_min_seconds: int = 30
    #: dialplan contexts of the support line: a requester's call that ran there without a support-call record
    #: went through the AGI-failure route
    line_contexts: tuple[str, ...] = ("support-line", "support-line-classic")


@dataclass(frozen=True)
class Tenant:
    """A customer under contract: its tier, who may call, and which numbers and trunks are theirs."""

    id: str
    name: str
    tier: str
    employees: int
    contract_start: date
    contract_end: date | None = None
    accountcodes: tuple[str, ...] = ()
    dids: tuple[str, ...] = ()
    trunks: tuple[str, ...] = ()  # trunk names, see Catalogue.trunk()
    requesters: tuple[Requester, ...] = ()
    #: prepaid support hours for each contract year (None: none bought per year)
    support_hours_per_year: Decimal | None = field(default=None, metadata=OPTIONAL_KEY)
    #: prepaid support hour packages, each valid between two days
    support_packages: tuple[SupportPackage, ...] = field(default=(), metadata=OPTIONAL_KEY)


@dataclass(frozen=True)
class Trunk:
    """A PJSIP endpoint on one Asterisk server whose reachability a contract promises."""

    name: str
    server: str
    availability_target: Decimal | None = None
    qos: QosTargets | None = field(default=None, metadata=OPTIONAL_KEY)


@dataclass(frozen=True)
class MaintenanceWindow:
    """Planned downtime excluded from availability: one trunk, every trunk of a server, or all (None)."""

    start: datetime
    end: datetime
    trunk: str | None = None
    server: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Catalogue:
    """The whole contracts file, validated; ``calendars``/``tiers``/``tenants`` keyed by name/id."""

    timezone: str
    country_code: str
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    tiers: Mapping[str, Tier] = field(default_factory=dict)
    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    trunks: tuple[Trunk, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    support: SupportSettings = field(default=SupportSettings(), metadata=OPTIONAL_KEY)

    def trunk(self, ref: str) -> Trunk | None:
        """The trunk a tenant or maintenance window names: ``name`` (unique) or ``server/name``."""
        server, sep, name = ref.rpartition("/")
        found = [t for t in self.trunks if t.name == name and (not sep or t.server == server)]
        return found[0] if len(found) == 1 else None
