"""Catalogue keys of support requests and prepaid hours: reaction targets, [support] staff and callback
minimum, tenants' support hours per contract year and packages; errors name the key at fault."""

from __future__ import annotations

import copy
import json
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from pbx_sla.domain.catalogue import SupportPackage, SupportSettings
from pbx_sla.domain.catalogue_document import from_document, to_document
from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.domain.pins import seal_pins
from pbx_sla.errors import InputError

SHARED_FORM = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"
BASE = tomllib.loads(SHARED_FORM.read_text(encoding="utf-8"))


def with_keys() -> dict:
    data = copy.deepcopy(BASE)
    data["support"] = {"staff": ["agent1", "staff"], "callback_min_seconds": 20, "line_contexts": ["support-in"]}
    data["tiers"]["tier1"] |= {"reaction_target": "48h", "reaction_share_target": 0.9}
    data["tiers"]["tier3"] |= {"reaction_target": "4h", "reaction_share_target": 0.95}
    data["tiers"]["tier3"]["credits"].append({"below": 0.9, "percent": 5, "metric": "reaction"})
    data["tenants"][0] |= {
        "support_hours_per_year": 20,
        "support_packages": [{"hours": "7.5", "start": "2026-06-01", "end": "2026-12-31"}],
    }
    return data


def problems(data: dict) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_catalogue(data, "c.toml")
    return info.value.problems


def test_keys_parsed() -> None:
    cat = parse_catalogue(with_keys(), "c.toml")
    assert cat.support == SupportSettings(("agent1", "staff"), 20, ("support-in",))
    assert (cat.tiers["tier1"].reaction_target, cat.tiers["tier1"].reaction_share_target) == (172800, Decimal("0.9"))
    assert cat.tiers["tier3"].reaction_target == 14400
    assert cat.tiers["tier3"].credits[-1].metric == "reaction"
    assert cat.tiers["tier2"].reaction_target is None
    acme = cat.tenants["acme"]
    assert acme.support_hours_per_year == Decimal(20)
    assert acme.support_packages == (SupportPackage(Decimal("7.5"), date(2026, 6, 1), date(2026, 12, 31)),)


def test_defaults_without_the_keys() -> None:
    cat = parse_catalogue(copy.deepcopy(BASE), "c.toml")
    assert cat.support == SupportSettings((), 30, ("support-line", "support-line-classic"))
    assert cat.tenants["acme"].support_hours_per_year is None


def test_document_round_trip_and_older_documents() -> None:
    cat = seal_pins(parse_catalogue(with_keys(), "c.toml"), {})
    doc = json.loads(json.dumps(to_document(cat)))
    assert from_document(doc) == cat
    assert doc["tiers"][2]["reaction_target"] == 14400
    assert "reaction_target" not in doc["tiers"][1]  # a key at its default is not written (digests stay)
    # a document stored before these keys existed still loads, without targets or hours
    for t in doc["tiers"]:
        t.pop("reaction_target", None), t.pop("reaction_share_target", None)
    for t in doc["tenants"]:
        t.pop("support_hours_per_year", None), t.pop("support_packages", None)
    del doc["support"]
    old = from_document(doc)
    assert old.tiers["tier3"].reaction_target is None and old.support == SupportSettings()


def test_bad_values_name_the_key() -> None:
    data = with_keys()
    data["support"] = {"staff": ["ok", "bad name!", "ok"], "callback_min_seconds": -1, "extra": 1,
                       "line_contexts": ["a b"]}  # fmt: skip
    data["tiers"]["tier1"]["reaction_target"] = "4 hours"
    data["tiers"]["tier2"]["reaction_target"] = "30s"
    data["tiers"]["tier3"]["reaction_share_target"] = 1.5
    data["tenants"][0]["support_hours_per_year"] = "-1"
    data["tenants"][0]["support_packages"] = [{"hours": 5, "start": "2026-06-01", "end": "2026-05-01"}, {"hours": 1}]
    got = problems(data)
    for expected in (
        "support.extra: unknown key",
        "support.staff[1]: 'bad name!' is not an endpoint name",
        "support.staff[2]: endpoint 'ok' is listed twice",
        "support.callback_min_seconds: must be at least 0, got -1",
        "support.line_contexts[0]: 'a b' is not a dialplan context name",
        "tiers.tier1.reaction_target: '4 hours' is not a duration",
        "tiers.tier2.reaction_target: must be at least 1 minute, got '30s'",
        "tiers.tier3.reaction_share_target: must be a ratio between 0 and 1",
        "tenants[0].support_hours_per_year: must be hours between 0 and 999999",
        "tenants[0].support_packages[0].end: 2026-05-01 is before start 2026-06-01",
        "tenants[0].support_packages[1].start: missing required key",
    ):
        assert any(p.startswith(expected) for p in got), (expected, got)
