"""The guess limits (domain.pin_limits): reservation is check-and-count in one step, per bucket kind."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pbx_sla.domain import pin_limits as pl

LIMITS = pl.PinLimits(per_caller=3, per_tenant=5, overall=7, window=100.0)


def test_buckets_and_unnumbered_callers() -> None:
    assert pl.buckets("+420600111222", "acme", LIMITS) == [("caller:+420600111222", 3), ("tenant:acme", 5),
                                                           ("global", 7)]  # fmt: skip
    assert pl.buckets(None, None, LIMITS) == [("caller:anonymous", 3), ("global", 7)]
    for text in (None, "", "anonymous", "restricted", "Unknown", "1234"):  # only E.164 numbers get their own
        assert pl.caller_bucket(text) == "caller:anonymous"


def test_reserve_fills_then_refuses_without_counting() -> None:
    state: dict[str, list[float]] = {}
    wanted = pl.buckets("+1", "t", LIMITS)
    assert [pl.reserve(state, wanted, float(i), LIMITS.window) for i in range(4)] == [None, None, None, "caller:+1"]
    assert len(state["caller:+1"]) == 3 and len(state["tenant:t"]) == 3 and len(state["global"]) == 3
    # the window slides: the first guess (t=0) leaves it at t=100
    assert pl.reserve(state, wanted, 100.0, LIMITS.window) is None
    assert state["caller:+1"] == [1.0, 2.0, 100.0]


def test_release_clears_the_caller_and_gives_the_guess_back() -> None:
    state: dict[str, list[float]] = {}
    wanted = pl.buckets("+1", "t", LIMITS)
    pl.reserve(state, wanted, 1.0, LIMITS.window)
    pl.reserve(state, wanted, 2.0, LIMITS.window)
    pl.release(state, wanted, 2.0)
    assert state == {"tenant:t": [1.0], "global": [1.0]}


def test_lockouts_say_until_when() -> None:
    state: dict[str, list[float]] = {}
    for i in range(3):
        pl.reserve(state, pl.buckets("+1", "t", LIMITS), 10.0 + i, LIMITS.window)
    assert pl.lockouts(state, LIMITS, 20.0) == [{"bucket": "caller:+1", "failures": 3, "limit": 3, "until": 110.0}]
    assert pl.lockouts(state, LIMITS, 111.0) == []


def test_load_drops_malformed_state() -> None:
    assert pl.load({"a": [1, 2.5, "x", True], "b": "no", 3: [1], "c": []}) == {"a": [1.0, 2.5]}
    assert pl.load([1, 2]) == {}


@given(st.lists(st.tuples(st.sampled_from(["+1", "+2", None]), st.sampled_from(["t", "u", None])), max_size=60))
def test_no_bucket_ever_exceeds_its_limit(guesses) -> None:
    state: dict[str, list[float]] = {}
    accepted = 0
    for i, (caller, tenant) in enumerate(guesses):
        accepted += pl.reserve(state, pl.buckets(caller, tenant, LIMITS), float(i), 1000.0) is None
        assert all(len(v) <= pl.limit_of(k, LIMITS) for k, v in state.items())
    assert len(state.get("global", [])) == accepted  # every accepted guess counted everywhere, refused ones nowhere
