"""E.164 normalisation: every input form the catalogue and Asterisk caller IDs use, and its properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbx_sla.domain.phone import is_valid_e164, normalise

E164 = re.compile(r"^\+[1-9]\d{1,14}$")


@pytest.mark.parametrize(
    ("raw", "cc", "expected"),
    [
        ("+420777000001", "420", "+420777000001"),
        ("00420777000001", "420", "+420777000001"),
        ("420777000001", "420", "+420777000001"),  # carrier caller ID without the +
        ("777000001", "420", "+420777000001"),  # national, 9 digits
        ("221000199", "420", "+420221000199"),
        ("777 000 001", "420", "+420777000001"),
        ("+420 777-000.001", "420", "+420777000001"),
        ("(+420) 777 000 001", "420", "+420777000001"),
        ('"Jana Novakova" <777000001>', "420", "+420777000001"),
        ('"Jana" <sip:+420777000001@pbx.example.com;user=phone>', "420", "+420777000001"),
        ("sip:777000001@10.0.0.1", "420", "+420777000001"),
        ("tel:+420-777-000-001;ext=12", "420", "+420777000001"),
        ("TEL:+420777000001", "420", "+420777000001"),
        ("07700900123", "44", "+447700900123"),  # GB trunk prefix 0
        ("+44 7700 900123", "44", "+447700900123"),
        ("0044 7700 900123", "44", "+447700900123"),
        ("0905 123 456", "421", "+421905123456"),  # SK trunk prefix 0
        ("(212) 555-0100", "1", "+12125550100"),  # NANP, 10 digits
        ("1 212 555 0100", "1", "+12125550100"),  # NANP trunk prefix 1
        ("011 420 777 000 001", "1", "+420777000001"),  # NANP international prefix
        ("030 12345678", "49", "+493012345678"),
        ("+4930123456", "420", "+4930123456"),  # foreign numbers keep their own country
        ("06 30 123 4567", "36", "+36301234567"),  # HU trunk prefix 06
    ],
)
def test_normalises(raw: str, cc: str, expected: str) -> None:
    assert normalise(raw, cc) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "anonymous",
        "Anonymous",
        "<unknown>",
        '"Restricted" <restricted>',
        "unavailable",
        "abc123",
        "+",
        "+4207",  # too short
        "+420 7770000012",  # CZ national numbers have 9 digits
        "101",  # an internal extension
        "77700000",  # 8 digits in CZ
        "+0420777000001",  # country codes never start with 0
        "+1234567890123456",  # 16 digits
        "777０００001",  # non-ASCII digits
        "sip:@host",
    ],
)
def test_rejects(raw: str) -> None:
    assert normalise(raw, "420") is None


def test_bad_country_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        normalise("777000001", "0420")


def test_validity() -> None:
    assert is_valid_e164("+420777000001")
    assert not is_valid_e164("+42077700000")
    assert is_valid_e164("+6831234")  # 7 digits, unknown plan
    assert not is_valid_e164("+683123")


COUNTRIES = st.sampled_from(["420", "421", "44", "1", "49", "36", "39", "358", "7"])
NUMBERISH = st.text(alphabet='0123456789+ -.()<>"ab:@;', max_size=24)


@given(NUMBERISH, COUNTRIES)
def test_output_is_e164_or_none(raw: str, cc: str) -> None:
    out = normalise(raw, cc)
    assert out is None or E164.match(out)


@given(NUMBERISH, COUNTRIES)
def test_idempotent(raw: str, cc: str) -> None:
    out = normalise(raw, cc)
    if out is not None:
        assert normalise(out, cc) == out
        # and it no longer depends on the country code it was read with
        assert normalise(out, "44") == out


@given(
    st.text(alphabet="0123456789", min_size=1, max_size=16),
    st.sampled_from(["", "+", "00"]),
    COUNTRIES,
    st.lists(st.sampled_from([" ", "-", ".", "  ", " - "]), min_size=17, max_size=17),
)
def test_formatting_noise_changes_nothing(digits: str, prefix: str, cc: str, seps: list[str]) -> None:
    plain = prefix + digits
    noisy = prefix + "".join(d + s for d, s in zip(digits, seps, strict=False))
    assert normalise(noisy, cc) == normalise(plain, cc)
    assert normalise(f"  ({plain})  ", cc) == normalise(plain, cc)
    assert normalise(f'"Some Name" <{noisy}>', cc) == normalise(plain, cc)
    assert normalise(f"sip:{plain}@pbx.example;user=phone", cc) == normalise(plain, cc)
