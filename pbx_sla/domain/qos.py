"""Voice quality of call legs: Asterisk's RTP statistics parsed, MOS by the E-model, figures per group.

Pure: strings and numbers in, numbers out. docs/qos.md is the user-facing description; this module is
where each figure is computed.

**What Asterisk gives** (measured on Asterisk 22.10): at hangup every RTP channel gets ``RTPAUDIOQOS``
(``ssrc=…;themssrc=…;lp=…;rxjitter=…;rxcount=…;txjitter=…;txcount=…;rlp=…;rtt=…;rxmes=…;txmes=…``) and
``RTPAUDIOQOSJITTER/LOSS/RTT/MES`` (``minrxjitter=000.002250;…``, keys sometimes padded with spaces).
The label trap: in ``RTPAUDIOQOS``

* ``rxcount``, ``lp`` and ``txjitter``/``txmes`` are Asterisk's *own* measurement of the stream it
  **received** on the channel (packets, lost packets, RFC 3550 jitter at hangup, MES);
* ``rxjitter``, ``rlp``, ``rtt`` and ``rxmes`` are what the **far end reported** over RTCP about the
  stream Asterisk sent. A peer that sends no RTCP leaves them at zero: "no data", never "perfect".

In ``RTPAUDIOQOSJITTER`` the ``*rxjitter`` keys are the local (received) side, ``*txjitter`` the
reported one. Jitter is in **seconds** in these variables; ``RTCPSent``/``RTCPReceived`` events carry it
in RTP timestamp units (1/8000 s for G.711): :func:`jitter_units_to_ms`.

**A leg's figures** (:class:`LegQuality`): packets received, lost (``lp``), jitter at hangup (the RFC 3550
estimate over the last packets; ``txjitter``) and the highest estimate sampled at each RTCP report
(``maxrxjitter``), far-end round-trip time only when the far end sent RTCP (``rtt`` > 0). A leg that
received no packet is not measured. Asterisk's ``avgrxjitter`` is kept but not used: it averages samples
taken from the first packets on, while the estimator still climbs from 0 (an 8 s call with a steady
20 ms jitter reads 18.75 ms).

**MOS** (:func:`mos`): ITU-T G.107 E-model, simplified for random loss, codec values from G.113 App. I.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pbx_sla.domain.cdr import endpoint
from pbx_sla.domain.events import ParseError, parse_timestamp
from pbx_sla.domain.percentile import nearest_rank
from pbx_sla.errors import PbxSlaError

#: the channel variables pbx-sla reads (manager.conf ``channelvars``)
QOS_VARIABLES = ("RTPAUDIOQOS", "RTPAUDIOQOSJITTER", "RTPAUDIOQOSLOSS", "RTPAUDIOQOSRTT", "RTPAUDIOQOSMES")

#: MOS below this makes a leg "poor" unless the catalogue says otherwise (R < 70: "some users dissatisfied")
DEFAULT_POOR_MOS = 3.6
#: packetisation assumed for the E-model's delay when nothing else is known (Asterisk's default for G.711)
DEFAULT_PTIME_MS = 20.0


class QosParseError(PbxSlaError, ValueError):
    """A QoS variable is malformed; the message names the variable and the field."""


# -- parsing ------------------------------------------------------------------------------------------


def parse_fields(variable: str, text: str, wanted: frozenset[str] | None = None) -> dict[str, float]:
    """``key=value;key=value;…`` → floats, keys lower-cased and stripped (Asterisk pads some with spaces).

    Empty text (a channel that never had RTP) gives ``{}``. A value that is not a number raises
    :class:`QosParseError` naming the variable and the key. ``wanted``: convert (and check) only these keys
    (the ingest path reads a few of each variable's fields; it runs once per hangup: keep it lean).
    """
    out: dict[str, float] = {}
    if not text:
        return out
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if wanted is None or key not in wanted:  # Asterisk's own spelling is the fast path
            key = key.strip().lower()
            if not key:
                continue
            if wanted is not None and key not in wanted:
                if not sep:
                    raise QosParseError(f"{variable}: field {key!r} has no value")
                continue
        if not sep:
            raise QosParseError(f"{variable}: field {key!r} has no value")
        try:
            number = float(value)
        except ValueError:
            raise QosParseError(f"{variable}: field {key!r} is not a number: {_shown(value)}") from None
        if not math.isfinite(number) or number < 0:
            raise QosParseError(f"{variable}: field {key!r} is out of range: {_shown(value)}")
        out[key] = number
    return out


def _shown(value: str) -> str:
    """A rejected value as the warning shows it: quoted and escaped by repr(), at most 40 characters."""
    text = value.strip()
    return repr(text[:40]) + ("…" if len(text) > 40 else "")


def jitter_units_to_ms(units: float, clock_rate: int = 8000) -> float:
    """RTCP report jitter (RTP timestamp units) → ms; ``RTCPSent``/``RTCPReceived`` use these units."""
    return units * 1000 / clock_rate


def _seconds_to_ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


@dataclass(frozen=True)
class LegQuality:
    """One leg's voice quality as Asterisk measured it at hangup (see the module docstring for sources).

    Jitter and RTT in milliseconds. Far-end figures are None when the far end sent no RTCP report.
    """

    received: int
    lost: int
    sent: int = 0
    jitter_ms: float | None = None
    jitter_max_ms: float | None = None
    jitter_avg_ms: float | None = None
    far_lost: int | None = None
    far_jitter_ms: float | None = None
    rtt_ms: float | None = None
    rtt_max_ms: float | None = None
    asterisk_mes: float | None = None

    @property
    def measured(self) -> bool:
        """Asterisk received media on this leg (otherwise it measured nothing)."""
        return self.received > 0

    @property
    def far_end_reported(self) -> bool:
        return self.rtt_ms is not None

    @property
    def loss_percent(self) -> float:
        total = self.received + self.lost
        return 100.0 * self.lost / total if total else 0.0


def _int(value: float | None) -> int:
    return 0 if value is None else round(value)


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


_UPPER = frozenset(QOS_VARIABLES)
_MAIN_FIELDS = frozenset({"rxcount", "lp", "txcount", "txjitter", "rlp", "rxjitter", "rtt", "txmes"})
_JITTER_FIELDS = frozenset({"maxrxjitter", "avgrxjitter"})
_RTT_FIELDS = frozenset({"avgrtt", "maxrtt"})


def leg_quality(variables: Mapping[str, str]) -> LegQuality | None:
    """The leg's quality from its ``RTPAUDIOQOS*`` variables (name → raw value; names in any case).

    None when ``RTPAUDIOQOS`` is absent or empty (no RTP on this channel). Raises QosParseError on a
    malformed value.
    """
    values = _leg_values(variables)
    return None if values is None else LegQuality(*values)


def _leg_values(variables: Mapping[str, str]) -> tuple[Any, ...] | None:
    """:class:`LegQuality`'s fields in order (the ingest path builds its record from them directly)."""
    upper = variables if _UPPER.issuperset(variables) else {k.upper(): v for k, v in variables.items()}
    main_text = upper.get("RTPAUDIOQOS") or ""
    jitter_text = upper.get("RTPAUDIOQOSJITTER") or ""
    rtt_text = upper.get("RTPAUDIOQOSRTT") or ""
    fast = _asterisk_leg_values(main_text, jitter_text, rtt_text)
    return fast if fast is not None else _field_leg_values(main_text, jitter_text, rtt_text)


_VARIABLE_LABELS = ("RTPAUDIOQOS", "RTPAUDIOQOSJITTER", "RTPAUDIOQOSRTT")


def _field_leg_values(
    main_text: str, jitter_text: str, rtt_text: str, labels: tuple[str, str, str] = _VARIABLE_LABELS
) -> tuple[Any, ...] | None:
    """:func:`_leg_values` field by field, whatever the order, padding or spelling of the keys. ``labels``
    name the three texts' sources in error messages (the variables, or the UserEvent's headers)."""
    main = parse_fields(labels[0], main_text, _MAIN_FIELDS)
    if not main:
        return None
    jitter = parse_fields(labels[1], jitter_text, _JITTER_FIELDS)
    rtt = parse_fields(labels[2], rtt_text, _RTT_FIELDS)
    return _values_from_fields(main, jitter, rtt)


def _values_from_fields(
    main: Mapping[str, float], jitter: Mapping[str, float], rtt: Mapping[str, float]
) -> tuple[Any, ...]:
    """:class:`LegQuality`'s fields from parsed ``key → number`` maps (see the module docstring)."""
    received = _int(main.get("rxcount"))
    # a channel that received nothing has no loss of its own (Asterisk sometimes says lp=1 there)
    lost = _int(main.get("lp")) if received else 0
    rtt_s = _positive(main.get("rtt")) or _positive(rtt.get("avgrtt"))
    reported = rtt_s is not None
    own_jitter = main.get("txjitter")
    return (
        received,  # received
        lost,  # lost
        _int(main.get("txcount")),  # sent
        _seconds_to_ms(own_jitter) if received else None,  # jitter_ms
        _seconds_to_ms(max(jitter.get("maxrxjitter", 0.0), own_jitter or 0.0)) if received else None,  # jitter_max_ms
        _seconds_to_ms(jitter.get("avgrxjitter")) if received else None,  # jitter_avg_ms
        _int(main.get("rlp")) if reported else None,  # far_lost
        _seconds_to_ms(main.get("rxjitter")) if reported else None,  # far_jitter_ms
        _seconds_to_ms(rtt_s),  # rtt_ms
        _seconds_to_ms(_positive(rtt.get("maxrtt"))) if reported else None,  # rtt_max_ms
        main.get("txmes") if received else None,  # asterisk_mes
    )


_COUNT = r"(\d{1,15})"  # exact as a float too, like the field-by-field path
_NUMBER = r"(\d+\.\d+)"
_SKIP = r"\d+(?:\.\d+)?"
_MAIN_PATTERN = (
    rf"ssrc={_SKIP};themssrc={_SKIP};lp={_COUNT};rxjitter={_NUMBER};rxcount={_COUNT};txjitter={_NUMBER};"
    rf"txcount={_COUNT};rlp={_COUNT};rtt={_NUMBER};rxmes={_SKIP};txmes={_NUMBER}"
)
#: Asterisk 22's exact layouts (rtp_engine.c, ``%u``/``%d``/``%f``): the ingest path reads a leg with three
#: matches instead of split loops; any other text (another order, a padded key, a malformed or negative value)
#: takes :func:`parse_fields`, which names the fault. tests/unit/test_qos.py checks both give the same figures.
_MAIN_LAYOUT = re.compile(_MAIN_PATTERN + ";?")
_JITTER_LAYOUT = re.compile(
    rf"minrxjitter={_SKIP};maxrxjitter={_NUMBER};avgrxjitter={_NUMBER};stdevrxjitter={_SKIP};"
    rf"mintxjitter={_SKIP};maxtxjitter={_SKIP};avgtxjitter={_SKIP};stdevtxjitter={_SKIP};?"
)
_RTT_LAYOUT = re.compile(rf" *minrtt={_SKIP}; *maxrtt={_NUMBER}; *avgrtt={_NUMBER}; *stdevrtt={_SKIP};?")
#: the shipped hangup handler's ``Qos`` header: ``CHANNEL(rtcp,all)`` (RTPAUDIOQOS's text), then four single
#: ``CHANNEL(rtcp,…)`` items under the keys RTPAUDIOQOSJITTER and RTPAUDIOQOSRTT give them (``%f`` each)
_USER_LAYOUT = re.compile(
    _MAIN_PATTERN + rf";maxrxjitter={_NUMBER};avgrxjitter={_NUMBER};maxrtt={_NUMBER};avgrtt={_NUMBER};?"
)


def _asterisk_leg_values(main: str, jitter: str, rtt: str) -> tuple[Any, ...] | None:
    """:func:`_leg_values` for variables that are empty (JITTER, RTT) or in Asterisk's exact layout; None
    when one is not (the caller then parses field by field)."""
    found = _MAIN_LAYOUT.fullmatch(main)
    if found is None:
        return None
    max_jitter = avg_jitter = max_rtt = avg_rtt = None
    if jitter:
        found_jitter = _JITTER_LAYOUT.fullmatch(jitter)
        if found_jitter is None:
            return None
        max_jitter, avg_jitter = found_jitter.groups()
    if rtt:
        found_rtt = _RTT_LAYOUT.fullmatch(rtt)
        if found_rtt is None:
            return None
        max_rtt, avg_rtt = found_rtt.groups()
    lp, rxjitter, rxcount, txjitter, txcount, rlp, rtt_text, txmes = found.groups()
    return _layout_values(
        lp, rxjitter, rxcount, txjitter, txcount, rlp, rtt_text, txmes, max_jitter, avg_jitter, max_rtt, avg_rtt
    )


def _layout_values(
    lp: str,
    rxjitter: str,
    rxcount: str,
    txjitter: str,
    txcount: str,
    rlp: str,
    rtt_text: str,
    txmes: str,
    max_jitter: str | None,
    avg_jitter: str | None,
    max_rtt: str | None,
    avg_rtt: str | None,
) -> tuple[Any, ...]:
    """:class:`LegQuality`'s fields from the numbers a layout match captured (texts known to be numbers);
    the same figures as :func:`_values_from_fields`."""
    received = int(rxcount)
    rtt_s: float | None = float(rtt_text)
    if not rtt_s:
        rtt_s = float(avg_rtt) if avg_rtt is not None else None
        if not rtt_s:
            rtt_s = None
    if received:
        own_jitter = float(txjitter)
        jitter_ms: float | None = own_jitter * 1000
        jitter_max_ms: float | None = max(float(max_jitter) if max_jitter is not None else 0.0, own_jitter) * 1000
        jitter_avg_ms: float | None = float(avg_jitter) * 1000 if avg_jitter is not None else None
    else:
        jitter_ms = jitter_max_ms = jitter_avg_ms = None
    if rtt_s is None:
        return (received, int(lp) if received else 0, int(txcount), jitter_ms, jitter_max_ms, jitter_avg_ms,
                None, None, None, None, float(txmes) if received else None)  # fmt: skip
    rtt_max = float(max_rtt) if max_rtt is not None else 0.0
    return (received, int(lp) if received else 0, int(txcount), jitter_ms, jitter_max_ms, jitter_avg_ms,
            int(rlp), float(rxjitter) * 1000, rtt_s * 1000, rtt_max * 1000 if rtt_max > 0 else None,
            float(txmes) if received else None)  # fmt: skip


def chan_variables(event: Mapping[str, str]) -> dict[str, str]:
    """The ``ChanVariable(NAME)`` entries of a parsed AMI event (see pbx_sla.ami.connection) as NAME → value."""
    out: dict[str, str] = {}
    for key, value in event.items():
        if key.startswith("ChanVariable(") and key.endswith(")"):
            out[key[13:-1]] = value
    return out


# -- E-model ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """Equipment impairment ``ie`` and packet-loss robustness ``bpl`` (ITU-T G.113 Appendix I)."""

    name: str
    ie: float
    bpl: float


#: G.113 App. I values for random loss; Asterisk format names map onto them (``ulaw``/``alaw``: G.711 with
#: packet loss concealment, as Asterisk's jitter buffer / PLC or the phones apply it)
CODECS: dict[str, Codec] = {
    "g711": Codec("G.711 (PLC)", 0.0, 25.1),
    "g711-noplc": Codec("G.711 (no PLC)", 0.0, 4.3),
    "g729": Codec("G.729A + VAD", 11.0, 19.0),
    "g723": Codec("G.723.1 + VAD 6.3 kbit/s", 15.0, 16.1),
    "gsm-efr": Codec("GSM-EFR", 5.0, 10.0),
}
_ALIASES = {"ulaw": "g711", "alaw": "g711", "pcmu": "g711", "pcma": "g711", "g729a": "g729", "g7231": "g723"}


def codec(name: str | None) -> Codec:
    """The E-model values for an Asterisk format name (None or unknown → G.711 with PLC)."""
    key = (name or "g711").strip().lower().replace(".", "")
    return CODECS.get(_ALIASES.get(key, key), CODECS["g711"])


def r_factor(loss_percent: float, jitter_ms: float, rtt_ms: float = 0.0, *, ptime_ms: float = DEFAULT_PTIME_MS,
             codec_values: Codec | None = None) -> float:  # fmt: skip
    """G.107 simplified: d = RTT/2 + 2·J + ptime; Id = 0.024·d + 0.11·(d - 177.3)·H(d - 177.3);
    Ie_eff = Ie + (95 - Ie)·Ppl/(Ppl + Bpl); R = 93.2 - Id - Ie_eff."""
    c = codec_values or CODECS["g711"]
    d = rtt_ms / 2 + 2 * jitter_ms + ptime_ms
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = max(0.0, loss_percent)
    ie_eff = c.ie + (95 - c.ie) * ppl / (ppl + c.bpl) if ppl + c.bpl > 0 else c.ie
    return 93.2 - i_d - ie_eff


def r_to_mos(r: float) -> float:
    """G.107 Annex B: MOS = 1 + 0.035·R + 7·10⁻⁶·R·(R - 60)·(100 - R), clamped to 1..4.5."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return min(4.5, max(1.0, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)))


def mos(loss_percent: float, jitter_ms: float, rtt_ms: float = 0.0, *, ptime_ms: float = DEFAULT_PTIME_MS,
        codec_values: Codec | None = None) -> float:  # fmt: skip
    """MOS of a leg from its loss (%), jitter and round-trip time (ms); see :func:`r_factor`."""
    return r_to_mos(r_factor(loss_percent, jitter_ms, rtt_ms, ptime_ms=ptime_ms, codec_values=codec_values))


def leg_mos(leg: LegQuality, codec_values: Codec | None = None, ptime_ms: float = DEFAULT_PTIME_MS) -> float | None:
    """The leg's MOS; None when it was not measured. Without a far-end report RTT counts as 0 (docs/qos.md)."""
    if not leg.measured:
        return None
    return mos(leg.loss_percent, leg.jitter_ms or 0.0, leg.rtt_ms or 0.0, ptime_ms=ptime_ms,
               codec_values=codec_values)  # fmt: skip


# -- figures of a group of legs (a trunk, a tenant) --------------------------------------------------------


@dataclass(frozen=True)
class MeasuredLeg:
    """What aggregation needs of one measured leg (a stored row)."""

    received: int
    lost: int
    jitter_ms: float
    jitter_max_ms: float
    rtt_ms: float | None
    mos: float


@dataclass(frozen=True)
class QosFigures:
    """The ``qos`` figures of one trunk or tenant (docs/qos.md); a figure without data is None."""

    legs_measured: int
    packets_received: int
    packets_lost: int
    loss_ratio: float | None
    jitter_ms_mean: float | None
    jitter_ms_p95: float | None
    rtt_ms_p95: float | None
    rtt_coverage: float | None
    mos_mean: float | None
    poor_calls: int
    poor_ratio: float | None

    def metric(self, name: str) -> float | None:
        """The figure a ``qos_…`` target or credit rule names (see :data:`QOS_METRICS`)."""
        value: float | None = getattr(self, QOS_METRICS[name])
        return value


#: target / credit metric name → figure; a ``max`` metric breaches above its target, ``min`` below
QOS_METRICS: dict[str, str] = {
    "qos_loss": "loss_ratio",
    "qos_jitter_ms": "jitter_ms_mean",
    "qos_rtt_ms": "rtt_ms_p95",
    "qos_mos": "mos_mean",
    "qos_poor_ratio": "poor_ratio",
}
QOS_HIGHER_IS_BETTER = frozenset({"qos_mos"})


@dataclass(frozen=True)
class QosTotals:
    """What :func:`figures` takes from a group of measured legs: counts and sums, and the two nearest-rank
    p95s (the ⌈0.95·n⌉-th smallest; None without values). The ``sla`` report gets them per tenant from SQL
    (:func:`pbx_sla.store.qos.tenant_totals`): the same counts and p95s; the float sums add the same values
    in another order, so they can differ from :func:`totals`'s in their last bits."""

    legs: int
    received: int
    lost: int
    jitter_weighted: float  # Σ jitter_ms · received
    jitter_max_p95: float | None
    rtt_p95: float | None
    rtt_legs: int  # legs with an RTT (far-end reports)
    mos_sum: float
    poor: int  # legs with MOS below the poor threshold


def totals(legs: Iterable[MeasuredLeg], poor_mos: float = DEFAULT_POOR_MOS) -> QosTotals:
    """The counts, sums and p95s of measured legs; the float sums add the legs one after the other in their
    order (as ``sum()`` did before Python 3.12, and as :func:`figures` always did)."""
    items = list(legs)
    rtts = [leg.rtt_ms for leg in items if leg.rtt_ms is not None]
    jitter_weighted = mos_sum = 0.0
    for leg in items:
        jitter_weighted += leg.jitter_ms * leg.received
        mos_sum += leg.mos
    return QosTotals(
        legs=len(items),
        received=sum(leg.received for leg in items),
        lost=sum(leg.lost for leg in items),
        jitter_weighted=jitter_weighted,
        jitter_max_p95=nearest_rank([leg.jitter_max_ms for leg in items]),
        rtt_p95=nearest_rank(rtts),
        rtt_legs=len(rtts),
        mos_sum=mos_sum,
        poor=sum(1 for leg in items if leg.mos < poor_mos),
    )


def figures_of(t: QosTotals) -> QosFigures:
    """The figures of a group from its totals: loss from summed packets, packet-weighted mean jitter, p95 of
    per-leg maximum jitter, RTT p95 over legs with far-end reports (and that share), mean MOS, poor legs."""
    n = t.legs
    total = t.received + t.lost
    return QosFigures(
        legs_measured=n,
        packets_received=t.received,
        packets_lost=t.lost,
        loss_ratio=t.lost / total if total else None,
        jitter_ms_mean=t.jitter_weighted / t.received if t.received else None,
        jitter_ms_p95=t.jitter_max_p95,
        rtt_ms_p95=t.rtt_p95,
        rtt_coverage=t.rtt_legs / n if n else None,
        mos_mean=t.mos_sum / n if n else None,
        poor_calls=t.poor,
        poor_ratio=t.poor / n if n else None,
    )


def figures(legs: Iterable[MeasuredLeg], poor_mos: float = DEFAULT_POOR_MOS) -> QosFigures:
    """Aggregate measured legs (:func:`figures_of` their :func:`totals`)."""
    return figures_of(totals(legs, poor_mos))


# -- the hangup handler's UserEvent, or the Hangup event's variables → a ``qos_leg`` record -----------------

KIND = "qos_leg"
HANGUP = "Hangup"
USER_EVENT = "UserEvent"
#: ``UserEvent: PbxSlaQos``, sent once per leg by asterisk_conf/extensions.conf's hangup handler
QOS_USER_EVENT = "PbxSlaQos"
#: the handler's headers. ``Qos``: ``CHANNEL(rtcp,all)``, the text of ``RTPAUDIOQOS`` (chan_pjsip's
#: channel_read_rtcp and the variable both print ``ast_rtp_instance_get_quality``), then ``local_maxjitter``,
#: ``local_normdevjitter``, ``maxrtt`` and ``normdevrtt`` under the keys RTPAUDIOQOSJITTER and RTPAUDIOQOSRTT
#: print them with (``maxrxjitter``, ``avgrxjitter``, ``maxrtt``, ``avgrtt``). ``Codec``:
#: ``CHANNEL(audionativeformat)``. ``Jitter``/``Rtt`` (``CHANNEL(rtcp,all_jitter|all_rtt)``): also read.
USER_EVENT_HEADERS = ("Qos", "Codec", "Jitter", "Rtt")
_USER_EVENT_LABELS = ("PbxSlaQos Qos", "PbxSlaQos Jitter", "PbxSlaQos Rtt")
_USER_FIELDS = _MAIN_FIELDS | _JITTER_FIELDS | _RTT_FIELDS


def hangup_record(server: str, event: Mapping[str, str]) -> dict[str, Any] | None:
    """A ``Hangup`` event's leg quality (manager.conf ``channelvars``) as a ``qos_leg`` record's data; None
    when the channel had no RTP (or the event carries no QoS variables). Raises ParseError / QosParseError
    naming the field at fault."""
    main = event.get(_MAIN_KEY)
    if main is None:
        return None
    # once per leg: Asterisk's own layout in three matches, anything else field by field
    values = _asterisk_leg_values(main, event.get(_JITTER_KEY) or "", event.get(_RTT_KEY) or "")
    if values is None:
        values = _leg_values({name: event[key] for name, key in _EVENT_KEYS if key in event})
        if values is None:
            return None
    return _leg_record(server, event, HANGUP, values, event.get(CODEC_KEY))


def user_event_record(server: str, event: Mapping[str, str]) -> dict[str, Any] | None:
    """A ``UserEvent: PbxSlaQos`` (the dialplan's hangup handler, one per leg) as the same ``qos_leg`` record
    as :func:`hangup_record` gives for the leg's variables. None when the leg had no RTP session (the handler
    then sends an empty ``Qos``: no data, not 0). Raises ParseError / QosParseError naming the header and the
    field at fault; every value is read as a number or refused, none is kept as text but the codec's name.

    ``Qos`` is ``CHANNEL(rtcp,all)`` followed by ``;maxrxjitter=…;avgrxjitter=…;maxrtt=…;avgrtt=…``
    (asterisk_conf/extensions.conf); a handler written with separate ``Jitter:`` and ``Rtt:`` headers
    (``CHANNEL(rtcp,all_jitter)``, ``CHANNEL(rtcp,all_rtt)``) is read as well.

    Once per call leg on the ingest path: the shipped handler's one-header form in Asterisk's layout takes
    :func:`_user_layout_record` (one match, one dict); anything else :func:`_user_event_record_any`, which
    gives the same record (tests/unit/test_qos_fast_path.py) and names a fault."""
    text = event.get("Qos")
    if text is not None and "Jitter" not in event and "Rtt" not in event:
        found = _USER_LAYOUT.fullmatch(text)
        if found is not None:
            return _user_layout_record(server, event, found)
    return _user_event_record_any(server, event)


def _user_layout_record(server: str, event: Mapping[str, str], found: re.Match[str]) -> dict[str, Any]:
    """:func:`_leg_record` of :func:`_layout_values` for a ``Qos`` that matched :data:`_USER_LAYOUT` (its texts
    are numbers)."""
    uniqueid = (event.get("Uniqueid") or event.get("UniqueID") or "").strip()
    if not uniqueid:
        raise ParseError(QOS_USER_EVENT, "Uniqueid", "is missing or empty")
    channel = (event.get("Channel") or "").strip()
    return _layout_record(
        server,
        uniqueid,
        (event.get("Linkedid") or event.get("LinkedID") or "").strip() or None,
        channel,
        endpoint(channel),
        _instant(event, QOS_USER_EVENT),
        native_format(event.get("Codec")),
        *found.groups(),
    )


#: a zero as Asterisk prints it (``%f``)
_ZERO = "0.000000"


def _layout_record(
    server: str,
    uniqueid: str,
    linkedid: str | None,
    channel: str,
    endpoint_name: str | None,
    at: str,
    codec_name: str | None,
    lp: str,
    rxjitter: str,
    rxcount: str,
    txjitter: str,
    txcount: str,
    rlp: str,
    rtt_text: str,
    txmes: str,
    max_jitter: str,
    avg_jitter: str,
    max_rtt: str,
    avg_rtt: str,
) -> dict[str, Any]:
    """The record of one leg whose ``Qos`` matched :data:`_USER_LAYOUT` (the texts are numbers) in one dict
    literal: no values tuple, no call per step; the same figures as :func:`_layout_values`."""
    received = int(rxcount)
    # 0: no far-end report, then the RTT items' average (Asterisk's zero, the usual case, read without float())
    rtt_s = 0.0 if rtt_text == _ZERO else float(rtt_text)
    if not rtt_s and avg_rtt != _ZERO:
        rtt_s = float(avg_rtt)
    if received:
        own_jitter = float(txjitter)
        jitter_max = float(max_jitter)
        jitter_ms: float | None = own_jitter * 1000
        jitter_max_ms: float | None = (own_jitter if own_jitter > jitter_max else jitter_max) * 1000  # max()
        jitter_avg_ms: float | None = float(avg_jitter) * 1000
        mes: float | None = float(txmes)
    else:
        jitter_ms = jitter_max_ms = jitter_avg_ms = mes = None
    if rtt_s:
        rtt_max = float(max_rtt)
        far_lost: int | None = int(rlp)
        far_jitter_ms: float | None = float(rxjitter) * 1000
        rtt_ms: float | None = rtt_s * 1000
        rtt_max_ms: float | None = rtt_max * 1000 if rtt_max > 0 else None
    else:
        far_lost = far_jitter_ms = rtt_ms = rtt_max_ms = None
    return {
        "server": server,
        "uniqueid": uniqueid,
        "linkedid": linkedid,
        "channel": channel,
        "endpoint": endpoint_name,
        "at": at,
        "codec": codec_name,
        "received": received,
        "lost": int(lp) if received else 0,
        "sent": int(txcount),
        "jitter_ms": jitter_ms,
        "jitter_max_ms": jitter_max_ms,
        "jitter_avg_ms": jitter_avg_ms,
        "far_lost": far_lost,
        "far_jitter_ms": far_jitter_ms,
        "rtt_ms": rtt_ms,
        "rtt_max_ms": rtt_max_ms,
        "asterisk_mes": mes,
    }


#: the ``Qos`` line in :data:`_USER_LAYOUT`'s form: ``%u`` a count (exact as a float too), ``%f`` a number as
#: Asterisk prints it (``float()`` reads every one), ``%s`` a field nobody reads; ASCII digits only (``[0-9]``
#: costs less than ``\d``; other digits take the general path)
_MESSAGE_QOS = (
    "ssrc=%s;themssrc=%s;lp=%u;rxjitter=%f;rxcount=%u;txjitter=%f;txcount=%u;rlp=%u;rtt=%f;rxmes=%s;txmes=%f;"
    "maxrxjitter=%f;avgrxjitter=%f;maxrtt=%f;avgrtt=%f"
)
#: the hangup handler's whole message in Asterisk 22's exact layout: pbx_sla.ami.connection's reader layout
#: (``_QOS_USER_EVENT``) with :data:`_USER_LAYOUT` in its ``Qos`` line, the ``Timestamp`` in Asterisk's
#: ``%ld.%06lu``, and the identity values without blanks (what the general path strips). The channel is
#: ``Tech/name-<hex>`` with ``name`` captured: what :func:`pbx_sla.domain.cdr.endpoint` gives for it. A line's
#: value is ``.*`` (stops only at ``\n``; each ``\n`` must end a ``\r\n`` the pattern names).
_USER_EVENT_MESSAGE = re.compile(
    r"Event: UserEvent\r\nPrivilege: .*\r\nTimestamp: ([0-9]+)\.([0-9]{6})\r\n(?:SystemName: .*\r\n)?"
    r"Channel: ([^\s/]*/(\S+)-[0-9a-fA-F]+)\r\nChannelState: .*\r\nChannelStateDesc: .*\r\n"
    r"CallerIDNum: .*\r\nCallerIDName: .*\r\nConnectedLineNum: .*\r\nConnectedLineName: .*\r\n"
    r"Language: .*\r\nAccountCode: .*\r\nContext: .*\r\nExten: .*\r\nPriority: .*\r\n"
    r"Uniqueid: (\S+)\r\nLinkedid: (\S+)\r\n(?:ChanVariable: .*\r\n)*"
    r"UserEvent: PbxSlaQos\r\nQos: "
    + _MESSAGE_QOS.replace("%u", "([0-9]{1,15})").replace("%f", "([0-9]+\\.[0-9]+)").replace("%s", "[0-9.]+")
    + r";?\r\nCodec: (.*)"
)


#: the message path's caches (a dict look-up, not an lru_cache call): epoch second → its ISO date and time,
#: ``Codec`` value → :func:`native_format` (valid ones only); a few entries live at a time, cleared when full
_SECONDS: dict[str, str] = {}
_CODECS: dict[str, str | None] = {}
_UNSEEN = "\x00unseen"


def user_event_message_record(server: str, message: str) -> dict[str, Any] | None:
    """The ``qos_leg`` record of a raw ``UserEvent: PbxSlaQos`` message (its ``Key: Value`` lines joined by CRLF)
    in the shipped handler's exact layout (:data:`_USER_EVENT_MESSAGE`), read in one match without a dict of
    its headers: the same record as :func:`user_event_record` gives for the message's parsed headers
    (tests/unit/test_qos_fast_path.py). None for any other message or layout, and for a value the general path
    would refuse (a codec that is not a format name, a time out of range): the caller then parses the message
    and takes the general path, which names the fault. Once per call leg on the daemon's ingest path."""
    found = _USER_EVENT_MESSAGE.fullmatch(message)
    if found is None:
        return None
    (seconds, fraction, channel, name, uniqueid, linkedid, lp, rxjitter, rxcount, txjitter, txcount, rlp, rtt, txmes,
     max_jitter, avg_jitter, max_rtt, avg_rtt, codec_text) = found.groups()  # fmt: skip
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        prefix = _second_iso(seconds)
        if prefix is None:
            return None
        if len(_SECONDS) >= 64:
            _SECONDS.clear()
        _SECONDS[seconds] = prefix
    codec_name = _CODECS.get(codec_text, _UNSEEN)
    if codec_name is _UNSEEN:
        try:
            codec_name = native_format(codec_text)
        except QosParseError:
            return None
        if len(_CODECS) >= 64:
            _CODECS.clear()
        _CODECS[codec_text] = codec_name
    return _layout_record(
        server, uniqueid, linkedid, channel, name, f"{prefix}.{fraction}+00:00", codec_name, lp, rxjitter, rxcount,
        txjitter, txcount, rlp, rtt, txmes, max_jitter, avg_jitter, max_rtt, avg_rtt,
    )  # fmt: skip


def _user_event_record_any(server: str, event: Mapping[str, str]) -> dict[str, Any] | None:
    """:func:`user_event_record` of any form and spelling the handler may send (field by field when the
    layout differs), naming a fault."""
    headers = event if "Qos" in event else _headers_any_case(event)
    text = headers.get("Qos")
    if text is None:
        raise ParseError(QOS_USER_EVENT, "Qos", "is missing")
    if not text or text.isspace():
        return None
    jitter = headers.get("Jitter")
    rtt = headers.get("Rtt")
    values = None
    if jitter is None and rtt is None:
        found = _USER_LAYOUT.fullmatch(text)
        if found is not None:
            values = _layout_values(*found.groups())
    else:
        values = _asterisk_leg_values(text, (jitter or "").strip(), (rtt or "").strip())
    if values is None:  # another layout or a fault: field by field, naming it
        fields = parse_fields(_USER_EVENT_LABELS[0], text, _USER_FIELDS)
        if jitter:
            fields.update(parse_fields(_USER_EVENT_LABELS[1], jitter, _JITTER_FIELDS))
        if rtt:
            fields.update(parse_fields(_USER_EVENT_LABELS[2], rtt, _RTT_FIELDS))
        if "rxcount" not in fields:
            raise QosParseError(f"{_USER_EVENT_LABELS[0]}: field 'rxcount' is missing")
        values = _values_from_fields(fields, fields, fields)
    return _leg_record(server, event, QOS_USER_EVENT, values, headers.get("Codec"))


def _headers_any_case(event: Mapping[str, str]) -> dict[str, str]:
    """The handler's headers whatever their case (``QoS:``, ``RTT:`` written by an admin)."""
    wanted = {name.lower(): name for name in USER_EVENT_HEADERS}
    return {wanted[key.lower()]: value for key, value in event.items() if key.lower() in wanted}


def _leg_record(
    server: str, event: Mapping[str, str], source: str, values: tuple[Any, ...], native: str | None
) -> dict[str, Any]:
    """The record of one leg: the channel snapshot's identity and time, the figures, the codec (once per leg on
    the ingest path: one dict literal, no zip)."""
    uniqueid = (event.get("Uniqueid") or event.get("UniqueID") or "").strip()
    if not uniqueid:
        raise ParseError(source, "Uniqueid", "is missing or empty")
    channel = (event.get("Channel") or "").strip()
    received, lost, sent, jitter, jitter_max, jitter_avg, far_lost, far_jitter, rtt, rtt_max, mes = values
    return {
        "server": server,
        "uniqueid": uniqueid,
        "linkedid": (event.get("Linkedid") or event.get("LinkedID") or "").strip() or None,
        "channel": channel,
        "endpoint": endpoint(channel),
        "at": _instant(event, source),
        "codec": native_format(native),
        # LegQuality's fields, in its order (tests/unit/test_qos.py checks the names)
        "received": received,
        "lost": lost,
        "sent": sent,
        "jitter_ms": jitter,
        "jitter_max_ms": jitter_max,
        "jitter_avg_ms": jitter_avg,
        "far_lost": far_lost,
        "far_jitter_ms": far_jitter,
        "rtt_ms": rtt,
        "rtt_max_ms": rtt_max,
        "asterisk_mes": mes,
    }


def _instant(event: Mapping[str, str], source: str) -> str:
    """The event's ``Timestamp`` as ISO 8601 UTC (what the record carries): Asterisk's ``%ld.%06lu`` with the
    date part of its second cached (one record per leg: this is on the ingest path); other forms through
    :func:`parse_timestamp`, which names a fault."""
    seconds, _, fraction = (event.get("Timestamp") or "").partition(".")
    if len(fraction) == 6 and fraction.isdigit() and seconds.isdigit() and (seconds + fraction).isascii():
        prefix = _second_iso(seconds)
        if prefix is not None:
            return f"{prefix}.{fraction}+00:00"
    return parse_timestamp(event, source).isoformat()


@lru_cache(maxsize=256)
def _second_iso(seconds: str) -> str | None:
    try:
        return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None  # parse_timestamp says why


#: manager.conf ``channelvars`` may name a function: CHANNEL(audionativeformat) gives ``(ulaw)`` or ``(ulaw|alaw)``
CODEC_KEY = "ChanVariable(CHANNEL(audionativeformat))"
_FORMAT_NAME = re.compile(r"[a-z0-9_.\-]{1,32}", re.IGNORECASE)


@lru_cache(maxsize=64)
def native_format(value: str | None) -> str | None:
    """``(ulaw|alaw)`` → ``ulaw`` (the first of the channel's native formats); empty or absent → None.

    A format name is letters, digits, ``_.-`` (Asterisk's names): anything else raises QosParseError (not
    cached). Cached: a PBX has a handful of format lists."""
    first = (value or "").strip().strip("()").split("|")[0].strip()
    if not first:
        return None
    if _FORMAT_NAME.fullmatch(first) is None:
        raise QosParseError(f"codec: not a format name: {_shown(first)}")
    return first


_LEG_FIELDS = tuple(f.name for f in fields(LegQuality))
_EVENT_KEYS = tuple((name, f"ChanVariable({name})") for name in QOS_VARIABLES)
_MAIN_KEY, _JITTER_KEY, _, _RTT_KEY, _ = (key for _, key in _EVENT_KEYS)


def leg_from_record(data: Mapping[str, Any]) -> LegQuality:
    """The inverse of the leg part of :func:`hangup_record` (stored rows, spooled records)."""
    return LegQuality(**{name: data[name] for name in _LEG_FIELDS if name in data})


# -- targets and breaches ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QosTargets:
    """Voice-quality targets of a tier or a trunk (catalogue ``qos`` table); None: no target.

    ``max_loss`` and ``max_poor_ratio`` are ratios (0..1); ``poor_mos`` is the MOS below which a leg is poor.
    """

    max_loss: Decimal | None = None
    max_jitter_ms: Decimal | None = None
    max_rtt_ms: Decimal | None = None
    min_mos: Decimal | None = None
    max_poor_ratio: Decimal | None = None
    poor_mos: Decimal | None = None

    def by_metric(self) -> dict[str, Decimal | None]:
        return {
            "qos_loss": self.max_loss,
            "qos_jitter_ms": self.max_jitter_ms,
            "qos_rtt_ms": self.max_rtt_ms,
            "qos_mos": self.min_mos,
            "qos_poor_ratio": self.max_poor_ratio,
        }

    @property
    def poor_threshold(self) -> float:
        return DEFAULT_POOR_MOS if self.poor_mos is None else float(self.poor_mos)


@dataclass(frozen=True)
class QosBreach:
    metric: str
    target: Decimal
    actual: float


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


def missed(metric: str, actual: float | None, threshold: Decimal | None) -> bool:
    """``actual`` is on the wrong side of ``threshold``: below it for MOS, above it for the others.
    Unknown figures or thresholds never miss."""
    if actual is None or threshold is None:
        return False
    if metric in QOS_HIGHER_IS_BETTER:
        return _dec(actual) < threshold
    return _dec(actual) > threshold


def breaches(f: QosFigures, targets: QosTargets | None) -> list[QosBreach]:
    """Each ``qos_…`` figure on the wrong side of its target, in :data:`QOS_METRICS` order."""
    if targets is None:
        return []
    out = []
    for metric, target in targets.by_metric().items():
        actual = f.metric(metric)
        if target is not None and actual is not None and missed(metric, actual, target):
            out.append(QosBreach(metric, target, actual))
    return out
