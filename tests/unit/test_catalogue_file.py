"""parse_catalogue: the example as written, every validation rule (all problems, each naming its key path),
the JSON document round trip and PIN sealing."""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pbx_sla.domain import catalogue_file
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
from pbx_sla.domain.catalogue_document import document_sha256, from_document, to_document
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.pins import hash_pin, seal_pins, verify_pin
from pbx_sla.domain.qos import QosTargets
from pbx_sla.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"
with EXAMPLE.open("rb") as _fh:
    BASE = tomllib.load(_fh)


def example() -> dict:
    return copy.deepcopy(BASE)


def problems(data: dict) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_catalogue(data, "c.toml")
    assert str(info.value) == f"c.toml: catalogue invalid ({len(info.value.problems)} problem" + (
        "s)" if len(info.value.problems) != 1 else ")"
    )
    return info.value.problems


def test_example_as_written() -> None:
    cat = parse_catalogue(example(), "contracts.toml")
    assert (cat.timezone, cat.country_code) == ("Europe/Prague", "420")
    assert list(cat.tiers) == ["tier1", "tier2", "tier3", "tier4"]
    t1, t3, t4 = cat.tiers["tier1"], cat.tiers["tier3"], cat.tiers["tier4"]
    assert t1.price_per_year == Decimal("25000") and t1.currency == "CZK"
    assert t1.service_level_target == Decimal("0.80") and t1.availability_target == Decimal("0.995")
    assert t1.credits == (CreditRule(Decimal("0.995"), Decimal(5)), CreditRule(Decimal("0.99"), Decimal(10)))
    assert t1.out_of_hours == OutOfHours("closed")
    assert cat.tiers["tier2"].out_of_hours == OutOfHours("voicemail")
    assert t3.out_of_hours == OutOfHours("queue", "support-oncall")
    assert (t4.max_calls_per_day, t4.max_employees) == (None, None)
    business = cat.calendars["business"]
    assert not business.always and business.hours[0] == (TimeRange(540, 1080),) and 5 not in business.hours
    assert date(2026, 12, 24) in business.holidays
    assert cat.calendars["always"].always
    acme, bistro = cat.tenants["acme"], cat.tenants["bistro"]
    assert acme.requesters[0].phones == ("+420777000001", "+420221000199")  # national number normalised
    petr = acme.requesters[1]
    assert petr.pin == "4711" and petr.pin_hash is None and "4711" not in repr(petr)
    assert acme.trunks == ("trunk-a",) and acme.contract_end is None
    assert bistro.contract_end == date(2027, 2, 28) and bistro.trunks == ()
    assert [(t.server, t.name, t.availability_target) for t in cat.trunks] == [
        ("pbx1", "trunk-a", Decimal("0.999")),
        ("pbx1", "trunk-b", None),
    ]
    (window,) = cat.maintenance
    assert (window.server, window.trunk, window.reason) == ("pbx1", "trunk-a", "carrier maintenance")
    assert window.start == datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


def test_missing_tier_named() -> None:
    data = example()
    data["tenants"][1]["tier"] = "gold"
    assert problems(data) == ["tenants[1].tier: unknown tier 'gold'"]


def test_all_problems_collected() -> None:
    data = example()
    data["timezone"] = "Europe/Praha"
    data["country_code"] = "0420"
    data["colour"] = "blue"
    data["calendars"]["business"]["hours"]["mon"] = "18:00-09:00"
    data["calendars"]["business"]["hours"]["tue"] = ["09:00-12:00", "11:00-18:00"]
    data["calendars"]["business"]["hours"]["fun"] = "09:00-10:00"
    data["calendars"]["business"]["holidays"].append("2026-02-30")
    data["calendars"]["always"]["holidays"] = ["2026-12-24"]
    data["tiers"]["tier1"]["calendar"] = "weekend"
    data["tiers"]["tier1"]["price_per_year"] = 25000.5
    data["tiers"]["tier2"]["currency"] = "czk"
    data["tiers"]["tier2"]["out_of_hours"] = "queue:"
    data["tiers"]["tier2"]["availability_target"] = 99.5
    data["tiers"]["tier3"]["answer_target_seconds"] = 0
    data["tiers"]["tier3"]["credits"].append({"below": 0.99, "percent": 30})
    data["tiers"]["tier4"]["credits"][0]["metric"] = "uptime"
    del data["tiers"]["tier4"]["queue"]
    data["trunks"].append({"name": "trunk-a", "server": "pbx1"})
    data["tenants"][0]["trunks"] = ["trunk-z"]
    data["tenants"][0]["contract_end"] = "2025-12-31"
    data["tenants"][0]["employees"] = "45"
    data["tenants"][1]["dids"] = ["+420221000111"]
    data["tenants"][1]["accountcodes"] = ["acme"]
    data["tenants"][1]["contract_start"] = "1.3.2026"
    data["tenants"][1]["requesters"][0]["phones"] = ["+420777000001", "+4207"]
    data["tenants"][0]["requesters"][1]["pin"] = 4711
    data["tenants"][0]["requesters"][0]["email"] = "jana@example.com"
    data["maintenance"].append(
        {"trunk": "trunk-a", "start": "2026-11-01T03:00:00+01:00", "end": "2026-11-01T05:00:00+01:00"}
    )
    data["maintenance"].append({"start": "2026-11-02T03:00:00", "end": "2026-11-02T02:00:00+01:00"})
    found = problems(data)
    expected = [
        "colour: unknown key",
        "timezone: unknown time zone 'Europe/Praha' (use an IANA name like Europe/Prague)",
        "country_code: must be 1-3 digits like \"420\", got '0420'",
        "calendars.business.hours.mon: '18:00-09:00': the end must be after the start",
        "calendars.business.hours.tue: ranges 09:00-12:00 and 11:00-18:00 overlap",
        "calendars.business.hours.fun: unknown day (use mon, tue, wed, thu, fri, sat, sun)",
        "calendars.business.holidays[4]: '2026-02-30' is not a date YYYY-MM-DD",
        "calendars.always.holidays: a 24/7 calendar is open on holidays too; remove them or give opening hours",
        "tiers.tier1.price_per_year: must be a string or an integer (money is exact: quote decimals), got float",
        "tiers.tier1.calendar: unknown calendar 'weekend'",
        "tiers.tier2.currency: must be an ISO 4217 code like CZK or EUR, got 'czk'",
        'tiers.tier2.out_of_hours: must be "closed", "voicemail" or "queue:<name>", got \'queue:\'',
        "tiers.tier2.availability_target: must be a ratio between 0 and 1, got 99.5 (write 99.5 % as 0.995)",
        "tiers.tier3.answer_target_seconds: must be at least 1, got 0",
        "tiers.tier3.credits[3]: a second credit rule for availability below 0.99",
        "tiers.tier4.queue: missing required key",
        'tiers.tier4.credits[0].metric: must be one of "availability", "service_level", "qos_mos", "qos_loss", '
        '"qos_jitter_ms", "qos_rtt_ms", "qos_poor_ratio", "reaction", got \'uptime\'',
        "trunks[2]: trunk pbx1/trunk-a is also trunks[0]",
        "tenants[0].employees: must be an integer, got string",
        "tenants[0].contract_end: 2025-12-31 is before contract_start 2026-01-01",
        "tenants[0].trunks[0]: unknown trunk 'trunk-z'",
        "tenants[0].requesters[0].email: unknown key",
        "tenants[0].requesters[1].pin: must be a string of 4 to 12 digits, got an integer (quote it so leading "
        "zeros survive)",
        "tenants[1].contract_start: '1.3.2026' is not a date YYYY-MM-DD",
        "tenants[1].accountcodes[0]: account code acme is also tenants[0].accountcodes[0]",
        "tenants[1].dids[0]: DID +420221000111 is also tenants[0].dids[0]",
        "tenants[1].requesters[0].phones[0]: phone number +420777000001 is also tenants[0].requesters[0].phones[0]",
        "tenants[1].requesters[0].phones[1]: '+4207' is not a valid number",
        "maintenance[2].start: 2026-11-02T03:00:00 has no UTC offset (write e.g. 2026-11-02T03:00:00+01:00)",
        "maintenance[1]: overlaps maintenance[0] on trunk pbx1/trunk-a",
    ]
    assert sorted(found) == sorted(expected)
    # the bad country code does not cascade into a problem for every national number
    assert not any("221000199" in f for f in found)


def test_missing_and_wrong_types_at_top() -> None:
    found = problems({"tiers": [], "tenants": {}, "trunks": "x"})
    assert sorted(found) == sorted(
        [
            "timezone: missing required key",
            "country_code: missing required key",
            "tiers: must be a table, got array",
            "tenants: must be an array of tables ([[tenants]]), got table",
            "trunks: must be an array of tables ([[trunks]]), got string",
        ]
    )


def test_pin_never_echoed() -> None:
    data = example()
    data["tenants"][0]["requesters"][1]["pin"] = "47a1x"
    (found,) = problems(data)
    assert found.startswith("tenants[0].requesters[1].pin:") and "47a1x" not in found


def test_requester_needs_phone_or_pin() -> None:
    data = example()
    data["tenants"][1]["requesters"].append({"name": "Nobody"})
    data["tenants"][1]["requesters"].append({"name": "Karel Dvorak", "pin": "1234"})
    assert sorted(problems(data)) == [
        "tenants[1].requesters[1]: a requester needs phones, a pin or a pin_hash to be recognised",
        "tenants[1].requesters[2].name: requester 'Karel Dvorak' is also tenants[1].requesters[0]",
    ]


def test_trunk_references_by_server_when_ambiguous() -> None:
    data = example()
    data["trunks"].append({"name": "trunk-a", "server": "pbx2"})
    assert problems(data) == [
        "tenants[0].trunks[0]: trunk 'trunk-a' is ambiguous (pbx1/trunk-a, pbx2/trunk-a): write server/name",
        "maintenance[0].trunk: trunk 'trunk-a' is ambiguous (pbx1/trunk-a, pbx2/trunk-a): write server/name",
    ]
    data["tenants"][0]["trunks"] = ["pbx2/trunk-a"]
    data["maintenance"][0]["server"] = "pbx1"
    cat = parse_catalogue(data, "c.toml")
    assert cat.trunk("pbx2/trunk-a").server == "pbx2" and cat.trunk("trunk-a") is None
    assert (cat.maintenance[0].server, cat.maintenance[0].trunk) == ("pbx1", "trunk-a")


def test_maintenance_scopes() -> None:
    data = example()
    data["maintenance"] += [
        {"start": "2026-11-01T03:00:00+01:00", "end": "2026-11-01T05:00:00+01:00"},  # all trunks: no clash
        {"server": "pbx1", "start": "2026-12-01T00:00:00Z", "end": "2026-12-01T01:00:00Z"},
        {"server": "pbx9", "start": "2026-12-01T00:00:00Z", "end": "2026-12-01T01:00:00Z"},
        {"trunk": "trunk-b", "server": "pbx9", "start": "2026-12-02T00:00:00Z", "end": "2026-12-02T01:00:00Z"},
    ]
    assert problems(data) == [
        "maintenance[3].server: no trunk of the catalogue is on server 'pbx9'",
        "maintenance[4].trunk: unknown trunk 'pbx9/trunk-b'",
    ]
    del data["maintenance"][3:]
    cat = parse_catalogue(data, "c.toml")
    assert [(w.server, w.trunk) for w in cat.maintenance] == [("pbx1", "trunk-a"), (None, None), ("pbx1", None)]


def test_hours_forms() -> None:
    data = example()
    data["calendars"]["business"]["hours"] = {"mon": ["08:00-12:00", "13:00-17:00"], "sat": "00:00-24:00"}
    cal = parse_catalogue(data, "c.toml").calendars["business"]
    assert cal.hours == {0: (TimeRange(480, 720), TimeRange(780, 1020)), 5: (TimeRange(0, 1440),)}
    data["calendars"]["business"]["hours"] = {}
    assert problems(data) == ['calendars.business.hours: no opening hours on any day (use "24/7" for always open)']
    data["calendars"]["business"]["hours"] = "always"
    assert problems(data) == ["calendars.business.hours: must be \"24/7\" or a table of days, got 'always'"]


def test_decimals_and_ratios() -> None:
    data = example()
    data["tiers"]["tier1"]["price_per_year"] = 25000
    data["tiers"]["tier2"]["price_per_year"] = "46000.50"
    data["tiers"]["tier3"]["service_level_target"] = "0.9"
    data["tiers"]["tier4"]["availability_target"] = 1
    cat = parse_catalogue(data, "c.toml")
    assert cat.tiers["tier1"].price_per_year == Decimal(25000)
    assert str(cat.tiers["tier2"].price_per_year) == "46000.50"
    assert cat.tiers["tier3"].service_level_target == Decimal("0.9")
    data["tiers"]["tier2"]["price_per_year"] = "46000.505"
    data["tiers"]["tier3"]["service_level_target"] = 0.1234567
    data["tiers"]["tier4"]["price_per_year"] = "lots"
    assert sorted(problems(data)) == [
        "tiers.tier2.price_per_year: must be at least 0 with at most 2 decimal places, got 46000.505",
        "tiers.tier3.service_level_target: 0.1234567 has more than 5 decimal places",
        "tiers.tier4.price_per_year: 'lots' is not a number",
    ]


def test_country_code_as_integer_and_plus() -> None:
    data = example()
    data["country_code"] = 420
    assert parse_catalogue(data, "c.toml").country_code == "420"
    data["country_code"] = "+420"
    assert parse_catalogue(data, "c.toml").country_code == "420"


def test_toml_dates_accepted() -> None:
    text = EXAMPLE.read_text().replace('contract_start = "2026-01-01"', "contract_start = 2026-01-01")
    text = text.replace('start = "2026-11-01T02:00:00+01:00"', "start = 2026-11-01T02:00:00+01:00")
    cat = parse_catalogue(tomllib.loads(text), "c.toml")
    assert cat == parse_catalogue(example(), "c.toml")


def test_document_round_trip_is_exact() -> None:
    cat = seal_pins(parse_catalogue(example(), "c.toml"), {})
    doc = to_document(cat)
    text = json.dumps(doc)
    assert "4711" not in text
    back = from_document(json.loads(text))
    assert back == cat
    assert to_document(back) == doc and document_sha256(to_document(back)) == document_sha256(doc)
    assert doc["tiers"][0]["service_level_target"] == "0.8"  # a TOML float, read via its shortest repr
    assert doc["tiers"][0]["price_per_year"] == "25000"
    assert [t["name"] for t in doc["tiers"]] == ["tier1", "tier2", "tier3", "tier4"]


def test_unsealed_pins_refused_by_document() -> None:
    with pytest.raises(ValueError, match="unsealed PIN"):
        to_document(parse_catalogue(example(), "c.toml"))


def test_seal_reuses_a_hash_that_verifies() -> None:
    cat = parse_catalogue(example(), "c.toml")
    old = hash_pin("4711")
    sealed = seal_pins(cat, {("acme", "Petr Svoboda"): old})
    petr = sealed.tenants["acme"].requesters[1]
    assert petr.pin_hash == old and petr.pin is None
    fresh = seal_pins(cat, {("acme", "Petr Svoboda"): hash_pin("0000")}).tenants["acme"].requesters[1]
    assert fresh.pin_hash != old and verify_pin("4711", fresh.pin_hash)
    assert sealed.tenants["acme"].requesters[0].pin_hash is None


# The file's keys are the dataclasses' fields: every field must be read (and checked) by the parser.
SECTIONS = [  # (dataclass, fields that are not file keys, where its table sits in the example)
    (Catalogue, set(), ()),
    (Calendar, {"name", "always"}, ("calendars", "business")),
    (Tier, {"name"}, ("tiers", "tier1")),
    (CreditRule, set(), ("tiers", "tier1", "credits", 0)),
    (Trunk, set(), ("trunks", 0)),
    (Tenant, set(), ("tenants", 0)),
    (Requester, {"pin_hash"}, ("tenants", 0, "requesters", 0)),
    (MaintenanceWindow, set(), ("maintenance", 0)),
]


def _key_path(where: tuple) -> str:
    path = ""
    for step in where:
        path += f"[{step}]" if isinstance(step, int) else f".{step}" if path else step
    return path


@pytest.mark.parametrize(("cls", "not_in_file", "where"), SECTIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_field_is_a_checked_file_key(cls: type, not_in_file: set[str], where: tuple) -> None:
    for f in dataclasses.fields(cls):
        if f.name in not_in_file:
            continue
        data = example()
        node = data
        for step in where:
            node = node[step]
        node[f.name] = {"bogus": {"nested": 1}}  # no key of the file takes a table of tables
        key = (_key_path(where) + "." if where else "") + f.name
        assert any(x.startswith(key) for x in problems(data)), f"{key} is not checked"
    data = example()
    node = data
    for step in where:
        node = node[step]
    node["surely_not_a_key"] = 1
    assert (_key_path(where) + "." if where else "") + "surely_not_a_key: unknown key" in problems(data)


def test_a_field_without_its_check_fails_loudly() -> None:
    values = {f.name: None for f in dataclasses.fields(Trunk) if f.name != "availability_target"}
    with pytest.raises(TypeError, match=r"Trunk: keys without a check \['availability_target'\]"):
        catalogue_file._build(Trunk, frozenset(f.name for f in dataclasses.fields(Trunk)), values)


def test_a_document_written_before_a_field_existed_loads_its_default() -> None:
    doc = to_document(seal_pins(parse_catalogue(example(), "c.toml"), {}))
    for tier in doc["tiers"]:
        del tier["priority"], tier["credits"]
    del doc["tenants"][0]["contract_end"]
    cat = from_document(doc)
    assert all(t.priority == 0 and t.credits == () for t in cat.tiers.values())
    assert cat.tenants["acme"].contract_end is None


# -- voice quality (issue 14) -----------------------------------------------------------------------------


def _qos_data(**tier_extra: object) -> dict:
    data = example()
    data["tiers"]["tier3"].update(tier_extra)
    return data


def test_qos_targets_and_credit_rules_round_trip() -> None:
    data = _qos_data(
        qos={"max_loss": 0.01, "max_jitter_ms": 30, "max_rtt_ms": 300, "min_mos": 4, "max_poor_ratio": 0.05,
             "poor_mos": 3.6},
        credits=[{"below": 0.999, "percent": 5}, {"metric": "qos_mos", "below": 3.8, "percent": 5},
                 {"metric": "qos_loss", "above": 0.02, "percent": 10}],
    )  # fmt: skip
    data["trunks"][0]["qos"] = {"max_loss": "0.005"}
    cat = parse_catalogue(data, "c.toml")
    tier = cat.tiers["tier3"]
    assert tier.qos == QosTargets(
        max_loss=Decimal("0.01"),
        max_jitter_ms=Decimal(30),
        max_rtt_ms=Decimal(300),
        min_mos=Decimal(4),
        max_poor_ratio=Decimal("0.05"),
        poor_mos=Decimal("3.6"),
    )
    assert [(r.metric, r.below, r.above) for r in tier.credits] == [
        ("availability", Decimal("0.999"), None),
        ("qos_mos", Decimal("3.8"), None),
        ("qos_loss", None, Decimal("0.02")),
    ]
    assert cat.trunks[0].qos == QosTargets(max_loss=Decimal("0.005"))
    sealed = seal_pins(cat, {})
    assert from_document(json.loads(json.dumps(to_document(sealed)))) == sealed


def test_catalogue_without_qos_keeps_its_document() -> None:
    doc = to_document(seal_pins(parse_catalogue(example(), "c.toml"), {}))
    assert all("qos" not in t for t in doc["tiers"]) and all("qos" not in t for t in doc["trunks"])
    assert all(set(c) == {"below", "percent", "metric"} for t in doc["tiers"] for c in t["credits"])


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"qos": {"max_loss": 2}}, "tiers.tier3.qos.max_loss: must be a ratio between 0 and 1"),
        ({"qos": {"min_mos": 5}}, "tiers.tier3.qos.min_mos: must be between 1 and 4.5, got 5"),
        ({"qos": {"max_rtt_ms": -1}}, "tiers.tier3.qos.max_rtt_ms: must be at least 0, got -1"),
        ({"qos": {"max_lost": 0.1}}, "tiers.tier3.qos.max_lost: unknown key"),
        ({"credits": [{"metric": "qos_loss", "below": 0.1, "percent": 5}]},
         "tiers.tier3.credits[0].below: a qos_loss rule is triggered above a value: use above = ..."),
        ({"credits": [{"metric": "qos_mos", "percent": 5}]}, "tiers.tier3.credits[0]: missing key 'below'"),
        ({"credits": [{"metric": "qos_mos", "below": 7, "percent": 5}]},
         "tiers.tier3.credits[0].below: must be between 1 and 4.5, got 7"),
    ],
)  # fmt: skip
def test_qos_problems_name_the_key(extra: dict, problem: str) -> None:
    found = problems(_qos_data(**extra))
    assert any(line.startswith(problem) for line in found), found


def test_pin_hash_instead_of_a_pin() -> None:
    encoded = hash_pin("4711")
    data = example()
    petr = data["tenants"][0]["requesters"][1]
    del petr["pin"]
    petr["pin_hash"] = encoded
    cat = parse_catalogue(data, "c.toml")
    r = cat.tenants["acme"].requesters[1]
    assert (r.pin, r.pin_hash) == (None, encoded)
    assert seal_pins(cat, {}) == cat  # nothing to seal
    assert from_document(to_document(cat)).tenants["acme"].requesters[1].pin_hash == encoded


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"pin_hash": "scrypt$16384$8$1$AAAA"}, "requesters[1].pin_hash: must be a hash made by `pbx-sla pin hash`"),
        ({"pin_hash": 4711}, "requesters[1].pin_hash"),
        ({"pin_hash": "HASH"}, "requesters[1]: give either pin or pin_hash, not both"),
    ],
)
def test_pin_hash_problems(change: dict, needle: str) -> None:
    data = example()
    petr = data["tenants"][0]["requesters"][1]
    petr.update({k: (hash_pin("1234") if v == "HASH" else v) for k, v in change.items()})
    if "not both" not in needle:
        del petr["pin"]
    assert any(needle in p for p in problems(data)), problems(data)
