"""The written forms of a number and their replacement in free text (pbx_sla.domain.erasure)."""

from __future__ import annotations

import pytest

from pbx_sla.domain.erasure import parse_number, shortest_form, target, written_forms


def test_written_forms_in_the_home_country_and_abroad():
    assert set(written_forms("+420602111222", "420")) == {
        "+420602111222",
        "420602111222",
        "00420602111222",
        "602111222",
    }
    # GB with its trunk prefix 0, seen from a Czech PBX: no national forms
    assert set(written_forms("+447700900123", "420")) == {"+447700900123", "447700900123", "00447700900123"}
    assert "07700900123" in written_forms("+447700900123", "44")


def test_scrub_replaces_whole_numbers_only():
    t = target("+420602111222", "420", "erased:x")
    assert t.scrub("Dial(PJSIP/00420602111222@trunk,30)") == "Dial(PJSIP/erased:x@trunk,30)"
    assert t.scrub("a 602111222 b +420602111222") == "a erased:x b erased:x"
    assert t.scrub("1602111222 6021112223 602111223") == "1602111222 6021112223 602111223"
    assert t.field('"Jana" <602111222>', "420") == "erased:x"
    assert t.field("100", "420") == "100"
    assert shortest_form(t) == "602111222"


def test_parse_number_names_the_bad_input():
    assert parse_number("602 111 222", "420") == "+420602111222"
    with pytest.raises(ValueError, match="'anonymous' is not a phone number"):
        parse_number("anonymous", "420")
