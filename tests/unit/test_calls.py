"""What groups legs into calls (the call key) and the call buckets writers lock. The call figures
themselves are computed in SQL: tests/integration/test_call_rules.py."""

from __future__ import annotations

from pbx_sla.domain.calls import call_bucket, call_key

FINGERPRINT = "0123456789abcdef0123456789abcdef"


def test_call_key_is_linkedid_else_uniqueid_else_the_leg():
    assert call_key("1.0", "1.1", FINGERPRINT) == "1.0"
    assert call_key("", "1.1", FINGERPRINT) == "1.1"
    assert call_key("", "", FINGERPRINT) == "leg:01234567-89ab-cdef-0123-456789abcdef"


def test_call_buckets_are_stable_across_versions():
    """Writers of different versions must agree on a call's bucket (its lock): pinned values."""
    assert [call_bucket(k) for k in ("1773129600.7", "1773129600.8", "c.0", "leg:x")] == [0, 1, 1, 0]
    assert {call_bucket(k, 1) for k in ("1773129600.7", "1773129600.8")} == {0}
