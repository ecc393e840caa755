"""CDR legs from AMI events and Master.csv rows: fields, layouts, time zones, errors naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pbx_sla.domain.cdr import (
    CdrError,
    LegRow,
    LocalClock,
    ami_leg,
    ami_row,
    csv_layout,
    endpoint,
    foreign_layout,
    leg_from_data,
    leg_to_data,
    read_leg,
)

PRAGUE = ZoneInfo("Europe/Prague")


def leg_from_csv(server: str, row: list[str], tz: ZoneInfo) -> LegRow:
    return read_leg(server, row, LocalClock(tz))


def leg_from_ami(server: str, event: dict[str, str], tz: ZoneInfo) -> LegRow:
    return ami_leg(server, event, LocalClock(tz))


def epoch(*args: int) -> int:
    """UTC epoch seconds of a UTC wall-clock time."""
    return int(datetime(*args, tzinfo=UTC).timestamp())


# one leg as cdr_csv writes it with loguniqueid, loguserfield and newcdrcolumns (21 fields)
ROW21 = [
    "acme", "777000001", "221000111", "from-trunk", '"Jana ""J"" N" <777000001>', "PJSIP/trunk-a-00000001",
    "PJSIP/agent1-00000002", "Dial", "PJSIP/agent1,30", "2026-03-10 09:00:00", "2026-03-10 09:00:05",
    "2026-03-10 09:01:05", "65", "60", "ANSWERED", "DOCUMENTATION", "1773129600.1", "vip", "", "1773129600.1", "7",
]  # fmt: skip

AMI = {
    "Event": "Cdr",
    "AccountCode": "acme",
    "Source": "777000001",
    "Destination": "221000111",
    "DestinationContext": "from-trunk",
    "CallerID": '"Jana ""J"" N" <777000001>',
    "Channel": "PJSIP/trunk-a-00000001",
    "DestinationChannel": "PJSIP/agent1-00000002",
    "LastApplication": "Dial",
    "LastData": "PJSIP/agent1,30",
    "StartTime": "2026-03-10 09:00:00",
    "AnswerTime": "2026-03-10 09:00:05",
    "EndTime": "2026-03-10 09:01:05",
    "Duration": "65",
    "BillableSeconds": "60",
    "Disposition": "ANSWERED",
    "AMAFlags": "DOCUMENTATION",
    "UniqueID": "1773129600.1",
    "UserField": "vip",
    "LinkedID": "1773129600.1",
    "Sequence": "7",
}


def test_csv_row_with_every_column():
    leg = leg_from_csv("pbx1", ROW21, PRAGUE)
    assert leg.accountcode == "acme"
    assert leg.clid == '"Jana ""J"" N" <777000001>'
    assert leg.start == epoch(2026, 3, 10, 8, 0)
    assert leg.answer == epoch(2026, 3, 10, 8, 0, 5)
    assert (leg.duration, leg.billsec, leg.disposition) == (65, 60, "ANSWERED")
    assert (leg.uniqueid, leg.userfield, leg.linkedid, leg.sequence) == ("1773129600.1", "vip", "1773129600.1", 7)
    assert leg.call_key == "1773129600.1"


def test_ami_and_csv_give_the_same_leg_and_fingerprint():
    a = leg_from_ami("pbx1", AMI, PRAGUE)
    c = leg_from_csv("pbx1", ROW21, PRAGUE)
    assert a == c
    assert a.fingerprint == c.fingerprint
    assert ami_row(AMI) == ROW21  # an AMI event is laid out as the 21-column cdr_csv row, then read the same way


def test_without_newcdrcolumns_the_call_key_falls_back_to_uniqueid():
    old = leg_from_csv("pbx1", ROW21[:18], PRAGUE)  # no newcdrcolumns
    assert old.linkedid == "" and old.sequence is None
    assert old.call_key == "1773129600.1"


def test_ami_and_csv_copies_collide_with_and_without_the_new_columns():
    """The same leg from both sources has one fingerprint, with the shipped configuration (AMI mapping
    LinkedID and Sequence, cdr_csv with newcdrcolumns) and without (no mapping, no newcdrcolumns)."""
    assert leg_from_ami("pbx1", AMI, PRAGUE).fingerprint == leg_from_csv("pbx1", ROW21, PRAGUE).fingerprint
    bare = {k: v for k, v in AMI.items() if k not in ("LinkedID", "Sequence")}
    assert leg_from_ami("pbx1", bare, PRAGUE).fingerprint == leg_from_csv("pbx1", ROW21[:18], PRAGUE).fingerprint


def test_fingerprint_does_not_depend_on_the_zone_the_times_are_read_in():
    prague, utc = leg_from_csv("pbx1", ROW21, PRAGUE), leg_from_csv("pbx1", ROW21, ZoneInfo("UTC"))
    assert prague.start != utc.start  # the instants differ by the offset...
    assert prague.fingerprint == utc.fingerprint  # ...the leg is the same


def test_legs_equal_but_for_their_sequence_are_two_legs():
    other = list(ROW21)
    other[20] = "8"
    assert leg_from_csv("pbx1", other, PRAGUE).fingerprint != leg_from_csv("pbx1", ROW21, PRAGUE).fingerprint
    linked = list(ROW21)
    linked[19] = "1773129600.9"  # linkedid groups legs; it does not tell them apart
    assert leg_from_csv("pbx1", linked, PRAGUE).fingerprint == leg_from_csv("pbx1", ROW21, PRAGUE).fingerprint


def test_ami_headers_are_read_whatever_their_capitalisation():
    """cdr_manager.conf [mappings] name the header as written there: ``linkedid => Linkedid``."""
    event = {k: v for k, v in AMI.items() if k not in ("LinkedID", "Sequence")}
    event |= {"Linkedid": "1773129600.0", "sequence": "9", "uniqueid": event.pop("UniqueID")}
    leg = leg_from_ami("pbx1", event, PRAGUE)
    assert (leg.linkedid, leg.sequence, leg.uniqueid, leg.call_key) == (
        "1773129600.0",
        9,
        "1773129600.1",
        "1773129600.0",
    )


def test_foreign_layouts_are_recognised():
    custom = [ROW21[4], *ROW21[1:4], *ROW21[5:16], ROW21[0], ROW21[16], ROW21[17], ROW21[20]]  # cdr_custom's order
    assert len(custom) == 19
    assert "cdr_custom" in (foreign_layout(custom) or "")
    with pytest.raises(CdrError, match="billsec"):
        leg_from_csv("pbx1", custom, PRAGUE)  # what cdr_csv's reading says about such a row
    moved = [*ROW21[:14], "DOCUMENTATION", "ANSWERED", *ROW21[16:]]
    assert foreign_layout(moved) == "a layout with the disposition in column 16 of 21 (cdr_csv has it in column 15)"
    bad_start = list(ROW21)
    bad_start[9] = "yesterday"
    assert foreign_layout(bad_start) is None  # a bad cdr_csv row is just a bad row
    assert foreign_layout(["a", "b"]) is None


def test_fingerprint_tells_legs_apart():
    other = list(ROW21)
    other[6] = "PJSIP/agent2-00000003"
    assert leg_from_csv("pbx1", other, PRAGUE).fingerprint != leg_from_csv("pbx1", ROW21, PRAGUE).fingerprint
    assert leg_from_csv("pbx2", ROW21, PRAGUE).fingerprint != leg_from_csv("pbx1", ROW21, PRAGUE).fingerprint


@pytest.mark.parametrize(
    ("row", "tail"),
    [
        (ROW21[:16], ()),
        (ROW21[:17], ("uniqueid",)),
        ([*ROW21[:16], "vip"], ("userfield",)),
        (ROW21[:18], ("uniqueid", "userfield")),
        (ROW21[:16] + ROW21[18:], ("peeraccount", "linkedid", "sequence")),
        (ROW21[:17] + ROW21[18:], ("uniqueid", "peeraccount", "linkedid", "sequence")),
        (ROW21, ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")),
    ],
)
def test_csv_layouts_by_option(row, tail):
    assert csv_layout(row)[16:] == tail


@pytest.mark.parametrize("n", [0, 5, 15, 22, 30])
def test_wrong_field_count_is_rejected(n):
    with pytest.raises(CdrError, match=f"got {n}"):
        leg_from_csv("pbx1", (ROW21 * 2)[:n], PRAGUE)


@pytest.mark.parametrize(
    ("index", "value", "field"),
    [
        (9, "2026-03-10 9:00", "start"),
        (9, "", "start"),
        (11, "2026-02-30 10:00:00", "end"),
        (10, "yesterday", "answer"),
        (12, "sixty", "duration"),
        (13, "-4", "billsec"),
        (14, "MAYBE", "disposition"),
        (20, "x", "sequence"),
    ],
)
def test_errors_name_the_field(index, value, field):
    row = list(ROW21)
    row[index] = value
    with pytest.raises(CdrError) as info:
        leg_from_csv("pbx1", row, PRAGUE)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)


def test_end_before_start_is_rejected():
    row = list(ROW21)
    row[11] = "2026-03-10 08:00:00"
    with pytest.raises(CdrError, match="'end'"):
        leg_from_csv("pbx1", row, PRAGUE)


def test_ami_event_without_times_names_the_header():
    event = dict(AMI)
    del event["StartTime"]
    with pytest.raises(CdrError, match="StartTime"):
        leg_from_ami("pbx1", event, PRAGUE)


def test_unanswered_leg_has_no_answer_time():
    row = list(ROW21)
    row[10], row[13], row[14] = "", "0", "NO ANSWER"
    leg = leg_from_csv("pbx1", row, PRAGUE)
    assert leg.answer is None and leg.disposition == "NO ANSWER"


def test_autumn_repeated_hour_end_follows_duration():
    # 2026-10-25: Prague clocks go 03:00 CEST -> 02:00 CET. A call 02:50 (CEST) .. 02:10 (CET) lasts 20 min.
    row = list(ROW21)
    row[9], row[10], row[11], row[12], row[13] = (
        "2026-10-25 02:50:00",
        "2026-10-25 02:50:00",
        "2026-10-25 02:10:00",
        "1200",
        "1200",
    )
    leg = leg_from_csv("pbx1", row, PRAGUE)
    assert leg.start == epoch(2026, 10, 25, 0, 50)  # fold=0: the first 02:50 (CEST)
    assert leg.end == epoch(2026, 10, 25, 1, 10)
    assert leg.end - leg.start == 1200


def test_spring_skipped_hour_reads_with_the_offset_before_the_change():
    # 2026-03-29: Prague clocks go 02:00 CET -> 03:00 CEST; 02:30 does not exist.
    row = list(ROW21)
    row[9], row[10], row[11], row[12], row[13] = ("2026-03-29 02:30:00", "", "2026-03-29 03:40:00", "600", "0")
    row[14] = "NO ANSWER"
    leg = leg_from_csv("pbx1", row, PRAGUE)
    assert leg.start == epoch(2026, 3, 29, 1, 30)
    assert leg.end == epoch(2026, 3, 29, 1, 40)


def test_round_trip_through_record_data():
    leg = leg_from_csv("pbx1", ROW21, PRAGUE)
    import json

    assert leg_from_data(json.loads(json.dumps(leg_to_data(leg)))) == leg


@pytest.mark.parametrize(
    ("channel", "name"),
    [
        ("PJSIP/trunk-a-0000001", "trunk-a"),
        ("PJSIP/trunk-a-0000001a", "trunk-a"),
        ("SIP/provider-00000abc", "provider"),
        ("Local/100@from-internal-00000002;1", "100@from-internal"),
        ("", None),
        ("garbage", None),
    ],
)
def test_endpoint_from_channel_name(channel, name):
    assert endpoint(channel) == name
