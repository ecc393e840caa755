"""Issue 13: a catalogue string holding a NUL character passed validation, then failed in PostgreSQL as a
bare "database error". It is refused at validation, with its key path, wherever it is."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from pbx_sla.domain.catalogue_file import parse_catalogue
from pbx_sla.errors import InputError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"
with EXAMPLE.open("rb") as _fh:
    BASE = tomllib.load(_fh)


def problems(data: dict) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_catalogue(data, "c.toml")
    return info.value.problems


def test_a_nul_in_a_tenant_name_is_refused_with_its_key_path() -> None:
    data = copy.deepcopy(BASE)
    data["tenants"][0]["name"] = "ACME\x00 s.r.o."
    assert problems(data) == ["tenants[0].name: contains a NUL character (position 5)"]


def test_nul_anywhere_is_found_in_values_lists_and_keys() -> None:
    data = copy.deepcopy(BASE)
    data["tenants"][1]["dids"] = ["+420\x00221"]
    data["timezone"] = "Europe/Prague\x00"
    data["tenants"][0]["bad\x00key"] = 1
    found = problems(data)
    assert "tenants[1].dids[0]: contains a NUL character (position 5)" in found
    assert "timezone: contains a NUL character (position 14)" in found
    assert "tenants[0].bad\\0key: key contains a NUL character" in found


def test_the_toml_escape_is_caught_too(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace('name = "ACME s.r.o."', 'name = "ACME\\u0000"', 1)
    assert "\\u0000" in text
    found = problems(tomllib.loads(text))
    assert found == ["tenants[0].name: contains a NUL character (position 5)"]
