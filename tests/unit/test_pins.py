"""PIN hashing: salted, slow, self-describing, constant-time verification, malformed hashes never verify."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pbx_sla.domain.pins import hash_pin, valid_pin, verify_pin


def test_hash_format_and_verify() -> None:
    encoded = hash_pin("4711")
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    salt_bytes = base64.b64decode(salt)
    assert len(salt_bytes) == 16
    # recomputed independently with the standard library
    expected = hashlib.scrypt(b"4711", salt=salt_bytes, n=16384, r=8, p=1, dklen=len(base64.b64decode(digest)))
    assert base64.b64decode(digest) == expected
    assert "4711" not in encoded
    assert verify_pin("4711", encoded)
    assert not verify_pin("4712", encoded)
    assert not verify_pin("", encoded)


def test_salted() -> None:
    a, b = hash_pin("123456"), hash_pin("123456")
    assert a != b
    assert verify_pin("123456", a) and verify_pin("123456", b)


@pytest.mark.parametrize(
    "encoded",
    [
        None,
        "",
        "4711",
        "bcrypt$16384$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$not base64!$AAAA",
        "scrypt$16385$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # n not a power of two
        "scrypt$abc$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # hash too short
    ],
)
def test_malformed_never_verifies(encoded: str | None) -> None:
    assert not verify_pin("4711", encoded)


@pytest.mark.parametrize(
    ("pin", "ok"),
    [
        ("4711", True),
        ("123456789012", True),
        ("123", False),
        ("1234567890123", False),
        ("12a4", False),
        ("١٢٣٤", False),
        ("", False),
    ],
)
def test_valid_pin(pin: str, ok: bool) -> None:
    assert valid_pin(pin) is ok
