"""The request gauges' bounded derivation (pbx_sla.domain.requests.settled) against the full derivation.

pbx_sla.reports.requests.unreacted_by_tenant derives a recent window of facts (calls from ``since`` on,
callbacks answered from the first of those calls on) and trusts it for the tenants :func:`settled` in it. The
property: for those tenants the window's unreacted request is the full history's, on random calls (arrivals,
answers, joins, same-instant ties) and callbacks of a few tenants, and any window start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.domain.requests import Callback, Request, SupportContact, derive_requests, settled

T0 = datetime(2026, 12, 1, tzinfo=UTC)
TENANTS = ("acme", "bistro", "cafe")


def m(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


@st.composite
def histories(draw):
    contacts = []
    for n in range(draw(st.integers(0, 25))):
        at = draw(st.integers(0, 2000))
        answer = draw(st.one_of(st.none(), st.integers(-5, 300)))
        contacts.append(
            SupportContact(
                key=f"pbx1/c{n}",
                tenant=draw(st.sampled_from(TENANTS)),
                requester=None,
                caller=None,
                at=m(at),
                why="answered" if answer is not None else "abandoned",
                answered_at=None if answer is None else m(at + answer),
            )
        )
    callbacks = [
        Callback(f"pbx1/cb{n}", draw(st.sampled_from(TENANTS)), "agent1", "+420777000001", m(at), 60)
        for n, at in enumerate(draw(st.lists(st.integers(0, 2300), max_size=8)))
    ]
    return contacts, callbacks, m(draw(st.integers(-10, 2300)))


def unreacted(requests: list[Request]) -> dict[str, Request]:
    out: dict[str, Request] = {}
    for r in requests:
        if r.reacted_at is None:
            assert r.tenant not in out, "a tenant has at most one unreacted request"
            out[r.tenant] = r
    return out


@settings(max_examples=500, deadline=None)
@given(histories())
def test_a_settled_window_gives_the_full_historys_unreacted_request(history):
    contacts, callbacks, since = history
    full = unreacted(derive_requests(contacts, callbacks))
    recent = [c for c in contacts if c.at >= since]
    first = min((c.at for c in recent), default=None)
    recent_callbacks = [] if first is None else [cb for cb in callbacks if cb.answered_at >= first]
    window = unreacted(derive_requests(recent, recent_callbacks))
    for tenant in settled(recent, recent_callbacks):
        assert window.get(tenant) == full.get(tenant), tenant


def test_what_settles_a_tenant():
    def call(key: str, at: int, answer: int | None = None, tenant: str = "acme") -> SupportContact:
        return SupportContact(key, tenant, None, None, m(at), "x", None if answer is None else m(answer))

    abandoned = call("a", 0)
    assert settled([abandoned], []) == set()
    assert settled([call("b", 0, 5)], []) == {"acme"}  # answered live, nobody else called meanwhile
    # answered after another call arrived (it joined the open request that may stay open): not settled
    assert settled([call("c", 0, 10), call("d", 5)], []) == set()
    assert settled([abandoned], [Callback("cb", "acme", "agent1", "+1", m(9), 60)]) == {"acme"}
    assert settled([call("e", 0, 5, tenant="bistro"), abandoned], []) == {"bistro"}
