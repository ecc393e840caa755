"""The cut of the kept support requests (pbx_sla.domain.requests.idle_cut) against the full derivation.

The kept rows of a tenant are its requests opened before its cut; the report derives only the facts from the
cut on. The property: the requests opened before the cut are all reacted before it, and the facts from the
cut on (calls arriving and callbacks answered then) derive exactly the full history's later requests; moved on
again from that cut (the facts from it on, a later limit), the same holds. Random calls (arrivals, answers
before and after later arrivals, same-instant ties) and callbacks of a few tenants, any limits.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from test_request_gauges import TENANTS, histories, m

from pbx_sla.domain.requests import Callback, Request, SupportContact, derive_requests, idle_cut


def tail(contacts: list[SupportContact], callbacks: list[Callback], cut: datetime | None) -> list[Request]:
    if cut is None:
        return derive_requests(contacts, callbacks)
    return derive_requests([c for c in contacts if c.at >= cut], [b for b in callbacks if b.answered_at >= cut])


def check(tenant: str, full: list[Request], contacts, callbacks, start, cut: datetime | None, limit) -> None:
    if cut is None:
        return
    assert cut <= limit and (start is None or cut > start)
    mine = [r for r in full if r.tenant == tenant]
    for r in mine:
        if r.opened_at < cut:
            assert r.reacted_at is not None and r.reacted_at < cut
    assert [r for r in tail(contacts, callbacks, cut) if r.tenant == tenant] == [r for r in mine if r.opened_at >= cut]


@settings(max_examples=500, deadline=None)
@given(histories(), st.integers(-10, 2400), st.integers(0, 600))
def test_the_facts_from_the_cut_derive_the_full_historys_later_requests(history, first, step):
    contacts, callbacks, _ = history
    full = derive_requests(contacts, callbacks)
    for tenant in TENANTS:
        mine = [r for r in full if r.tenant == tenant]
        cut = idle_cut(mine, None, m(first))
        check(tenant, full, contacts, callbacks, None, cut, m(first))
        if cut is None:
            continue
        # moved on: derived from the cut's facts only, with a later limit
        later = idle_cut([r for r in tail(contacts, callbacks, cut) if r.tenant == tenant], cut, m(first + step))
        check(tenant, full, contacts, callbacks, cut, later, m(first + step))


def test_where_the_cut_falls():
    def request(opened: int, reacted: int | None) -> Request:
        return Request("acme", None, None, m(opened), "abandoned", ["x"], None if reacted is None else m(reacted))

    assert idle_cut([], None, m(100)) == m(100)
    assert idle_cut([request(10, 20)], None, m(100)) == m(100)  # idle since 20
    assert idle_cut([request(10, 20), request(30, None)], None, m(100)) == m(30)  # open since 30
    assert idle_cut([request(10, 30), request(30, None)], None, m(100)) == m(10)  # a tie at 30: back to 10
    assert idle_cut([request(10, 20), request(30, 150)], None, m(100)) == m(30)  # reacted after the limit
    assert idle_cut([request(10, None)], m(10), m(100)) is None  # no progress past the start
    assert idle_cut([], m(100), m(100)) is None
