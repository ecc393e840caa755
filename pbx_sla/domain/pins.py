"""Requester PINs, stored only as a salted slow hash (scrypt, RFC 7914), and the sealing of a parsed
catalogue's plain PINs into such hashes.

Encoded as ``scrypt$16384$8$1$<salt b64>$<hash b64>`` so the cost can be raised later while old hashes
still verify. Verification is constant-time in the hash comparison; a malformed stored value never
verifies (and never raises).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pbx_sla.domain.catalogue import Catalogue

N, R, P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
PIN = re.compile(r"^[0-9]{4,12}$")
_MAXMEM = 64 * 1024 * 1024


def valid_pin(pin: str) -> bool:
    """PINs are 4..12 ASCII digits (what a caller can key in on a phone)."""
    return isinstance(pin, str) and bool(PIN.match(pin))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=size)


def hash_pin(pin: str) -> str:
    """A fresh salted hash of ``pin``; two calls give different strings that both verify."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(pin, salt, N, R, P, HASH_BYTES)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def _decode(encoded: object) -> tuple[int, int, int, bytes, bytes] | None:
    """(n, r, p, salt, hash) of a hash in :func:`hash_pin`'s form with parameters this module accepts (a cost
    a stored value could use to exhaust memory or time is refused); None for anything else."""
    if not isinstance(encoded, str):
        return None
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    accepted = (
        2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and len(salt) >= 8
        and 16 <= len(digest) <= 64
    )  # fmt: skip
    return (n, r, p, salt, digest) if accepted else None


def valid_hash(encoded: object) -> bool:
    """``encoded`` has the shape :func:`hash_pin` makes, with parameters :func:`verify_pin` accepts (it is
    not checked against any PIN: a catalogue may hold ``pin_hash`` made by ``pbx-sla pin hash``)."""
    return _decode(encoded) is not None


def verify_pin(pin: str, encoded: str | None) -> bool:
    """Whether ``pin`` matches the stored ``encoded`` hash; False for any malformed value."""
    decoded = _decode(encoded) if pin else None
    if decoded is None:
        return False
    n, r, p, salt, expected = decoded
    try:
        digest = _scrypt(pin, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)


def _seal_one(item: tuple[str, str | None]) -> str:
    pin, old = item
    return old if old is not None and verify_pin(pin, old) else hash_pin(pin)


def seal_pins(
    cat: Catalogue,
    stored: Mapping[tuple[str, str], str | None],
    *,
    map_fn: Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]] = map,
) -> Catalogue:
    """Replace each transient PIN of a parsed catalogue by a hash: the ``stored`` hash of (tenant id,
    requester name) when it still verifies the PIN (so re-applying an unchanged file changes nothing),
    else a fresh salted hash. Requesters without a PIN keep ``pin_hash`` None. scrypt costs ~50 ms per
    PIN by design: pass ``map_fn=executor.map`` to spread the work over threads (scrypt releases the GIL)."""
    work = [
        (tid, r.name, r.pin, stored.get((tid, r.name)))
        for tid, tenant in cat.tenants.items()
        for r in tenant.requesters
        if r.pin is not None
    ]
    hashes = dict(
        zip(
            [(tid, name) for tid, name, _, _ in work],
            map_fn(_seal_one, [(pin, old) for _, _, pin, old in work]),
            strict=True,
        )
    )
    tenants = {}
    for tid, tenant in cat.tenants.items():
        requesters = tuple(
            dataclasses.replace(r, pin_hash=hashes[(tid, r.name)], pin=None) if r.pin is not None else r
            for r in tenant.requesters
        )
        tenants[tid] = dataclasses.replace(tenant, requesters=requesters)
    return dataclasses.replace(cat, tenants=tenants)
