"""The ingest fast path of ``UserEvent: PbxSlaQos`` gives exactly what the general path gives.

Shortcuts taken once per call leg (bench/ami_ingest_qos.py):

* the daemon offers the raw message to the QoS feature first
  (:func:`pbx_sla.domain.qos.user_event_message_record`, one match of the whole message, no header dict): it
  gives the record the general path gives for the parsed message, or declines (None) and the message takes
  the paths below;

* the AMI reader (:func:`pbx_sla.ami.connection.read_message`) picks the few headers the QoS feature reads
  from a message in Asterisk's exact layout, by one regex, instead of :func:`parse_message`'s dict of every
  line: its dict must always be a sub-dict of :func:`parse_message`'s holding every header anyone reads;
* :func:`pbx_sla.domain.qos.user_event_record` builds the record from one match of the shipped ``Qos`` layout
  (:func:`~pbx_sla.domain.qos._user_layout_record`) instead of the general, field-by-field
  :func:`~pbx_sla.domain.qos._user_event_record_any`: same record, or the same error, on any input.

Messages and values are generated around the real capture (tests/unit/test_qos_user_event.py): values of any
text (a lone CR or LF, ``": "``, non-ASCII), headers added, missing, repeated or reordered, numbers in and out
of Asterisk's ``%f``/``%u`` forms.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbx_sla.ami.connection import parse_message, read_message
from pbx_sla.domain import qos
from pbx_sla.domain.events import ParseError
from tests.unit.test_qos_user_event import AGENT, REAL, SEPARATE

#: every header of a UserEvent that pbx-sla (reader, collector, router, QoS feature) reads
READ = ("Event", "Timestamp", "Channel", "Uniqueid", "UniqueID", "Linkedid", "LinkedID", "UserEvent", "Qos",
        "Codec", "Jitter", "Rtt", "ActionID", "Response")  # fmt: skip

SNAPSHOT_KEYS = ("Privilege", "Timestamp", "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum",
                 "CallerIDName", "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context",
                 "Exten", "Priority", "Uniqueid", "Linkedid")  # fmt: skip
REAL_HEADERS = parse_message(REAL)
QOS_FIELDS = ("ssrc", "themssrc", "lp", "rxjitter", "rxcount", "txjitter", "txcount", "rlp", "rtt", "rxmes", "txmes",
              "maxrxjitter", "avgrxjitter", "maxrtt", "avgrtt")  # fmt: skip
COUNTS = {"ssrc", "themssrc", "lp", "rxcount", "txcount", "rlp"}

values = st.one_of(
    st.sampled_from(["", " ", "x", "a: b", "Uniqueid: 1", "\r", "x\ry", "x\ny", "\n", "é", "PbxSlaQos", " 1.2 "]),
    st.text(alphabet=st.sampled_from("ab1.: \r\n;=é"), max_size=12),
)


def _block(headers: list[tuple[str, str]]) -> str:
    return "\r\n".join(f"{k}: {v}" for k, v in headers)


def _real_lines() -> list[tuple[str, str]]:
    return [tuple(line.split(": ", 1)) for line in REAL.split("\r\n")]  # type: ignore[misc]


def _record(event: dict[str, str], general: bool = False) -> Any:
    """The record, or the exception's type and text."""
    try:
        if general:
            return qos._user_event_record_any("pbx1", event)
        return qos.user_event_record("pbx1", event)
    except (ParseError, qos.QosParseError) as exc:
        return (type(exc).__name__, str(exc))


def _message_agrees(block: str) -> bool:
    """The raw-message path declines or gives the general path's record for the parsed message (a record, not
    an error nor None: it never reads what the general path refuses or skips); True when it read the message."""
    taken = qos.user_event_message_record("pbx1", block)
    if taken is None:
        return False
    full = parse_message(block)
    assert full.get("Event") == "UserEvent" and full.get("UserEvent") == "PbxSlaQos"
    assert taken == _record(full, general=True)
    return True


def _agrees(block: str) -> bool:
    """read_message's dict is parse_message's for every header read, and the record is the same (the raw-message
    path's too, when it reads the message); True when the reader's fast path was taken."""
    fast, full = read_message(block), parse_message(block)
    assert all(full[key] == value for key, value in fast.items())
    assert {k: fast[k] for k in READ if k in fast} == {k: full[k] for k in READ if k in full}
    if full.get("Event") == "UserEvent" and full.get("UserEvent") == "PbxSlaQos":
        assert _record(fast) == _record(full)
    _message_agrees(block)
    return fast != full


def test_real_captures_take_the_fast_paths() -> None:
    for block in (REAL, AGENT):
        assert _message_agrees(block)
        fast = read_message(block)
        assert sorted(fast) == sorted(("Event", "Timestamp", "Channel", "Uniqueid", "Linkedid", "UserEvent", "Qos",
                                       "Codec"))  # fmt: skip
        assert _agrees(block)
        assert qos.user_event_record("pbx1", fast) == qos._user_event_record_any("pbx1", parse_message(block))
    # the separate Jitter/Rtt headers' form is not the fast layout: read whole, same record as before
    assert read_message(SEPARATE) == parse_message(SEPARATE)
    assert qos.user_event_message_record("pbx1", SEPARATE) is None


CODECS = ["(ulaw)", "(alaw|ulaw)", "", " ", "(bad name!)", "(ulaw)\r", "é"]
STAMPS = ["1796140966.447903", "99999999999999999999.000000", "1796140966.4479", "٧.447903"]


@given(st.sampled_from(CODECS), st.sampled_from(STAMPS))
def test_message_path_declines_what_it_must_not_read(codec: str, stamp: str) -> None:
    """A codec that is no format name, a time out of range or in another form: the message path declines and
    the general path names the fault (or reads the other form)."""
    block = REAL.replace("(ulaw)", codec).replace("1796140966.447903", stamp)
    _agrees(block)
    assert (qos.user_event_message_record("pbx1", block) is not None) == (
        codec in ("(ulaw)", "(alaw|ulaw)", "", " ", "(ulaw)\r") and stamp == "1796140966.447903"
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 19), values), max_size=4))
@example([(3, "\r")])
@example([(19, "x\ry")])
def test_reader_any_values(changes: list[tuple[int, str]]) -> None:
    """Any value in any line: the fast dict agrees with parse_message's (or is parse_message's)."""
    lines = _real_lines()
    for index, value in changes:
        lines[index] = (lines[index][0], value)
    _agrees(_block(lines))


edits = st.sampled_from(["drop", "duplicate", "insert-before", "swap", "rename"])
extra = st.sampled_from(["ActionID", "Response", "Uniqueid", "Qos", "Codec", "Jitter", "Rtt", "ChanVariable",
                         "SystemName", "UniqueID", "Event", "UserEvent", "Timestamp", "X-Other"])  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(edits, st.integers(0, 19), extra, values), min_size=1, max_size=3))
@example([("insert-before", 4, "SystemName", "pbx-a")])  # manager.conf systemname: still the fast layout
@example([("insert-before", 17, "ChanVariable", "FOO=1")])  # channelvars set: still the fast layout
@example([("insert-before", 17, "Uniqueid", "spoofed")])  # a second Uniqueid: the first wins either way
@example([("insert-before", 19, "ActionID", "1")])
def test_reader_any_layout(changes: list[tuple[str, int, str, str]]) -> None:
    """Lines dropped, repeated, added, swapped or renamed: the fast dict agrees with parse_message's."""
    lines = _real_lines()
    for edit, index, key, value in changes:
        index %= len(lines)
        if edit == "drop" and len(lines) > 1:
            del lines[index]
        elif edit == "duplicate":
            lines.insert(index, lines[index])
        elif edit == "insert-before":
            lines.insert(index, (key, value))
        elif edit == "swap" and index + 1 < len(lines):
            lines[index], lines[index + 1] = lines[index + 1], lines[index]
        elif edit == "rename":
            lines[index] = (key, lines[index][1])
    _agrees(_block(lines))


def test_optional_lines_keep_the_fast_path() -> None:
    lines = _real_lines()
    with_name = [*lines[:3], ("SystemName", "pbx-a"), *lines[3:]]
    with_vars = [*lines[:17], ("ChanVariable", "FOO=1"), ("ChanVariable", "BAR="), *lines[17:]]
    for block in (_block(with_name), _block(with_vars)):
        assert _agrees(block)


def _number(field: str) -> st.SearchStrategy[str]:
    if field in COUNTS:
        asterisk = st.integers(0, 4_294_967_295).map(str)
    else:
        asterisk = st.floats(0, 1e6, allow_nan=False).map(lambda x: f"{x:f}")
    odd = st.sampled_from(["", "-1", "-0.000000", "1e3", "nan", "inf", " 1.5", "1_0", "0x1", "1.", ".5", "00.5",
                           "99999999999999999", "1.0000001", "0", "0.000000", "x"])  # fmt: skip
    return st.one_of(asterisk, odd)


def _asterisk(field: str) -> st.SearchStrategy[str]:
    if field in COUNTS:
        return st.integers(0, 4_294_967_295).map(str)
    return st.one_of(st.just(0.0), st.floats(0, 1e6, allow_nan=False)).map(lambda x: f"{x:f}")


@st.composite
def qos_texts(draw: st.DrawFn) -> str:
    parts = [f"{field}={draw(_asterisk(field))}" for field in QOS_FIELDS]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # most in Asterisk's form: the fast path
        at = draw(st.integers(0, len(parts) - 1))
        field = QOS_FIELDS[at]
        parts[at] = f"{field}={draw(_number(field))}"
    change = draw(st.sampled_from(["none", "none", "none", "swap", "drop", "pad", "trailing", "upper", "extra"]))
    at = draw(st.integers(0, len(parts) - 2))
    if change == "swap":
        parts[at], parts[at + 1] = parts[at + 1], parts[at]
    elif change == "drop":
        del parts[at]
    elif change == "pad":
        parts[at] = "  " + parts[at]
    elif change == "upper":
        parts[at] = parts[at].upper()
    elif change == "extra":
        parts.insert(at, "foo=1")
    return ";".join(parts) + (";" if change == "trailing" else "")


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(qos_texts(), st.sampled_from(["(ulaw)", "(alaw|ulaw)", "", "(g729)", "(bad name!)"]))
@example(REAL_HEADERS["Qos"], "(ulaw)")
@example(REAL_HEADERS["Qos"].replace("rlp=0;rtt=0.000000", "rlp=4;rtt=0.052000"), "(ulaw)")
@example(REAL_HEADERS["Qos"].replace("avgrtt=0.000000", "avgrtt=0.030000"), "(ulaw)")  # RTT items only
@example(REAL_HEADERS["Qos"].replace("maxrxjitter=0.006750", "maxrxjitter=0.000000"), "(ulaw)")  # own jitter max
@example(REAL_HEADERS["Qos"].replace("rxcount=380", "rxcount=0"), "(ulaw)")
def test_record_fast_and_general_paths_agree(text: str, codec: str) -> None:
    event = {**REAL_HEADERS, "Qos": text, "Codec": codec}
    assert _record(event) == _record(event, general=True)
    block = REAL.replace(REAL_HEADERS["Qos"], text).replace("(ulaw)", codec)
    picked = read_message(block)
    assert _record(picked) == _record(event, general=True)
    _message_agrees(block)


@given(st.sampled_from(["", " ", "x", "1796140966", "1796140966.44790", "1796140966.447903 ", "١٧٩٦١٤٠٩٦٦.447903"]),
       st.sampled_from(["", " 1.7 ", "PJSIP/trunk-a-00000003", "Local/100@ctx-0000002a;1", "garbage"]))  # fmt: skip
def test_record_identity_fields_agree(stamp: str, channel: str) -> None:
    for uniqueid in ("", " ", "1796140956.7", " 1796140956.7 "):
        event = {**REAL_HEADERS, "Timestamp": stamp, "Channel": channel, "Uniqueid": uniqueid}
        assert _record(event) == _record(event, general=True)
        block = REAL.replace("1796140966.447903", stamp).replace("PJSIP/trunk-a-00000003", channel)
        _message_agrees(block.replace("Uniqueid: 1796140956.7", f"Uniqueid: {uniqueid}"))
    for channel_name in ("PJSIP/trunk-b-0000abcd", "PJSIP/a-b-c-1", "SIP/x-zz", "PJSIP/-1", "/x-1", "PJSIP/x-1;2"):
        block = REAL.replace("PJSIP/trunk-a-00000003", channel_name)
        _message_agrees(block)
    event = {k: v for k, v in REAL_HEADERS.items() if k not in ("Uniqueid", "Linkedid")}
    event |= {"UniqueID": "1.2", "LinkedID": " 1.1 "}
    assert _record(event) == _record(event, general=True)


def test_many_asterisk_layout_legs_take_the_fast_path_with_the_same_record() -> None:
    import random

    rng = random.Random(14)
    taken = 0
    for _ in range(3000):
        numbers = {f: str(rng.randrange(0, 70_000)) if f in COUNTS else f"{rng.choice([0.0, rng.random() / 10]):f}"
                   for f in QOS_FIELDS}  # fmt: skip
        text = ";".join(f"{f}={numbers[f]}" for f in QOS_FIELDS)
        block = REAL.replace(REAL_HEADERS["Qos"], text)
        fast = read_message(block)
        taken += len(fast) == 8 and qos._USER_LAYOUT.fullmatch(text) is not None and _message_agrees(block)
        assert _record(fast) == _record(parse_message(block), general=True)
    assert taken == 3000
