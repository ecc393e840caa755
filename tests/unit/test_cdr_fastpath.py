"""The leg path's shortcuts (``LocalClock``'s per-hour cache, digit and disposition shortcuts) give what
the general path gives, and the times are the ones the fold rule defines, computed here independently with
``zoneinfo``: same rows, same errors, including around DST changes and in zones whose offset changes at odd
minutes."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.domain.cdr import CdrError, LocalClock, endpoint, read_leg

ZONES = ["Europe/Prague", "Australia/Lord_Howe", "America/St_Johns", "UTC", "Asia/Kathmandu"]


class UncachedClock(LocalClock):
    """Every time through ``zoneinfo`` (the general path): caches no hour."""

    MAX_HOURS = 0


def readings(text: str, tz: ZoneInfo) -> tuple[int, int]:
    naive = datetime(*(int(part) for part in re.split("[- :]", text.strip())))  # int() reads any Unicode digit
    return tuple(int(naive.replace(tzinfo=tz, fold=f).timestamp()) for f in (0, 1))  # type: ignore[return-value]


def expected_times(row: list[str], tz: ZoneInfo) -> tuple[int, int | None, int]:
    """start: fold 0; end: the reading nearest start + duration; answer: nearest end - billsec (fold 0 on ties)."""
    start = readings(row[9], tz)[0]
    end = min(readings(row[11], tz), key=lambda t: abs(t - start - int(row[12])))
    answer = None if not row[10] else min(readings(row[10], tz), key=lambda t: abs(end - t - int(row[13])))
    return start, answer, end


def reference(server: str, row: list[str], tz: ZoneInfo):
    try:
        leg = read_leg(server, row, UncachedClock(tz))
    except CdrError as exc:
        return ("error", str(exc))
    assert (leg.start, leg.answer, leg.end) == expected_times(row, tz), row
    return leg


def fast(server: str, row: list[str], clock: LocalClock):
    try:
        return read_leg(server, row, clock)
    except CdrError as exc:
        return ("error", str(exc))


def local_text(rnd: random.Random, base: datetime) -> str:
    """A local wall-clock text near ``base`` (times around DST changes included), sometimes malformed."""
    t = base + timedelta(seconds=rnd.randint(-3 * 3600, 3 * 3600))
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    r = rnd.random()
    if r < 0.02:
        return text[:-1] + "x"
    if r < 0.04:
        return text.replace(":", ":6", 1)[:19]
    if r < 0.06:
        return f" {text} "
    if r < 0.07:
        return text[:14] + "60:00"
    if r < 0.08:
        return text[:14] + "٠٥:00"  # Arabic-Indic digits: the regex accepts them, so must the fast path
    return text


def random_row(rnd: random.Random, base: datetime) -> list[str]:
    start = local_text(rnd, base)
    answer = "" if rnd.random() < 0.3 else local_text(rnd, base)
    end = local_text(rnd, base)
    duration = str(rnd.choice([0, 5, 65, 3600, 3605, 7200, -1]))
    billsec = rnd.choice(["0", "60", "3600", "x", " 7 "])
    row = [
        rnd.choice(["acme", ""]), "777000001", rnd.choice(["221000111", "s"]), "from-trunk",
        '"Jana" <777000001>', "PJSIP/trunk-a-0000001a", rnd.choice(["PJSIP/agent1-00000002", ""]), "Dial", "x",
        start, answer, end, duration, billsec, rnd.choice(["ANSWERED", "busy", "NO ANSWER", "BOGUS"]),
        "DOCUMENTATION",
    ]  # fmt: skip
    tail = rnd.choice(
        [
            [],
            ["1773129600.1"],
            ["vip"],
            ["1773129600.1", "vip"],
            ["1773129600.1", "vip", "", "1773129600.0", str(rnd.randint(0, 9))],
            ["", "", "", "", rnd.choice(["", "3", "-2"])],
        ]
    )
    return row + tail


@pytest.mark.parametrize("zone", ZONES)
def test_fast_path_equals_reference_around_dst_changes(zone):
    tz = ZoneInfo(zone)
    rnd = random.Random(zone)
    clock = LocalClock(tz)
    # the zone's changes in 2026 (found by scanning), plus ordinary days
    bases = [datetime(2026, 1, 15, 12), datetime(2026, 7, 1, 0)]
    t = datetime(2026, 1, 1, tzinfo=UTC)
    while t.year == 2026:
        nxt = t + timedelta(hours=1)
        if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            bases.append(nxt.astimezone(tz).replace(tzinfo=None))
        t = nxt
    for _ in range(3000):
        row = random_row(rnd, rnd.choice(bases))
        assert fast("pbx1", row, clock) == reference("pbx1", row, tz), row


def test_fast_path_reports_the_first_bad_field_like_the_reference():
    clock = LocalClock(ZoneInfo("Europe/Prague"))
    row = ["a", "1", "2", "c", "x", "PJSIP/t-1", "", "Dial", "", "2026-03-10 09:00:00", "", "2026-03-10 08:59:00"]
    row += ["60", "0", "NO ANSWER", "DOCUMENTATION"]
    expected = "field 'end': '2026-03-10 08:59:00' is before start '2026-03-10 09:00:00'"
    assert fast("s", row, clock) == ("error", expected)
    assert fast("s", row[:10], clock) == reference("s", row[:10], clock.tz)


def test_call_key_without_ids_is_the_leg_fingerprint():
    tz = ZoneInfo("UTC")
    row = ["", "1", "2", "c", "x", "PJSIP/t-1", "", "Dial", "", "2026-03-10 09:00:00", "", "2026-03-10 09:00:10"]
    row += ["10", "0", "FAILED", "DOCUMENTATION"]
    got = read_leg("s", row, LocalClock(tz))
    assert got.call_key == f"leg:{uuid.UUID(hex=got.fingerprint)}"


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="PJSIP/Local@;-_.abcfxAF0129 \n٣", max_size=24),
        st.builds(
            lambda tech, name, suffix, local: f"{tech}/{name}-{suffix}{local}",
            st.sampled_from(["PJSIP", "SIP", "Local", "IAX2"]),
            st.text(alphabet="abc-_@.0129", max_size=10),
            st.text(alphabet="0123456789abcdefABCDEFg", max_size=9),
            st.sampled_from(["", ";1", ";2", ";x"]),
        ),
    )
)
def test_endpoint_shortcut_equals_the_suffix_pattern(channel):
    """endpoint()'s shortcut for ``Tech/name-<hex>`` gives what removing the suffix pattern gives."""
    expected = None
    if "/" in channel:
        expected = re.sub(r"-[0-9a-fA-F]+(?:;\d+)?$", "", channel.split("/", 1)[1]) or None
    assert endpoint(channel) == expected
