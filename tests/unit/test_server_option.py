"""``--server NAME`` of the reports: parsing (repeatable), checking against the known servers, the JSON's
``servers``/``scope`` keys, and the contract figures a per-server view leaves out (no database here)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from pbx_sla import cli
from pbx_sla.domain.accounting import Contract, Outcomes, TierTerms, tenant_usage
from pbx_sla.errors import ConfigError
from pbx_sla.reports import usage
from pbx_sla.reports.period import month_period
from pbx_sla.reports.servers import ServerScope, check_known, footer, requested

REPORTS = ("usage", "sla", "qos", "requests", "trunks")


@pytest.mark.parametrize("command", REPORTS)
def test_server_is_repeatable_and_absent_means_the_fleet(command: str) -> None:
    parser = cli.build_parser()
    args = parser.parse_args([command, "--period", "2026-11", "--server", "pbx2", "--server", "pbx1"])
    assert args.server == ["pbx2", "pbx1"]
    assert parser.parse_args([command, "--period", "2026-11"]).server is None
    assert parser.parse_args([command, "--server=pbx1", "--period", "2026-11"]).server == ["pbx1"]


def test_server_combines_with_tenant_and_trunk() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["sla", "--period", "2026-11", "--tenant", "acme", "--server", "pbx1"])
    assert (args.tenant, args.server) == ("acme", ["pbx1"])
    args = parser.parse_args(["qos", "--period", "2026-11", "--trunk", "trunk-a", "--server", "pbx1"])
    assert (args.trunk, args.server) == ("trunk-a", ["pbx1"])


def test_cdr_import_keeps_one_required_server() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["cdr", "import", "f.csv", "--server", "pbx1"]).server == "pbx1"
    with pytest.raises(SystemExit):
        parser.parse_args(["cdr", "import", "f.csv"])


def test_server_without_a_name_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["usage", "--period", "2026-11", "--server"])
    assert exc.value.code == 2
    assert "--server" in capsys.readouterr().err


def test_requested_names_sorted_once_each() -> None:
    assert requested(None) is None
    assert requested([]) is None
    assert requested(["pbx2", "pbx1", "pbx2"]) == ("pbx1", "pbx2")
    with pytest.raises(ConfigError, match="empty server name"):
        requested(["pbx1", " "])


def test_unknown_names_are_all_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as exc:
        check_known(("pbx1", "pbx7", "pbx9"), ["pbx1", "pbx2"])
    assert str(exc.value) == "--server: unknown server 'pbx7', 'pbx9' (known servers: pbx1, pbx2)"
    with pytest.raises(ConfigError, match=r"known servers: none: nothing has been recorded yet"):
        check_known(("pbx1",), [])


def test_scope_of_a_choice_and_of_the_fleet() -> None:
    fleet = check_known(None, ["pbx1", "pbx2"])
    assert fleet == ServerScope(None, ("pbx1", "pbx2"))
    assert fleet.fleet and fleet.sql is None and fleet.includes("anything")
    assert fleet.as_json() == {"servers": ["pbx1", "pbx2"], "scope": "fleet"}
    one = check_known(("pbx2",), ["pbx1", "pbx2"])
    assert not one.fleet and one.sql == ["pbx2"] and one.includes("pbx2") and not one.includes("pbx1")
    assert one.as_json() == {"servers": ["pbx2"], "scope": "servers"}


def test_footer_only_for_a_per_server_view() -> None:
    assert footer({"scope": "fleet", "servers": ["pbx1"]}, "the fee") == []
    assert footer({"scope": "servers", "servers": ["pbx1", "pbx2"]}) == ["servers: pbx1, pbx2 only"]
    line = footer({"scope": "servers", "servers": ["pbx1"]}, "fee and credit")[0]
    assert line == (
        "servers: pbx1 only (per-server view: the contract's fee and credit are in the report without --server only)"
    )


def test_usage_json_withholds_contract_figures_per_server() -> None:
    period = month_period(2026, 11, ZoneInfo("Europe/Prague"))
    days = list(period.days())
    tiers = {"t1": TierTerms("t1", Decimal("36500"), "CZK", max_calls_per_day=1)}
    per_day = {days[0]: Outcomes(3, 2, 1, 0, 0, 0, 120), days[0] + timedelta(days=1): Outcomes(1, 1, 0, 0, 0, 0, 60)}
    rows = [tenant_usage(Contract("acme", "t1", 5, date(2026, 1, 1)), per_day, days, tiers)]
    hours = {"acme": {"bought": "10.00", "used": "1.00", "remaining": "9.00", "overage": "0.00"}}

    fleet = usage.as_json(period, rows, hours, ServerScope(None, ("pbx1", "pbx2")))
    one = usage.as_json(period, rows, hours, ServerScope(("pbx1",), ("pbx1",)))
    (f,), (o,) = fleet["tenants"], one["tenants"]
    assert (fleet["servers"], fleet["scope"], one["servers"], one["scope"]) == (
        ["pbx1", "pbx2"], "fleet", ["pbx1"], "servers")  # fmt: skip
    assert f["fee"] == {"amount": Decimal("3000.00"), "currency": "CZK"}  # 36500 * 30 / 365
    assert (f["over_tier_days"], f["support_hours"]) == (1, hours["acme"])
    assert (o["fee"], o["over_tier_days"], o["tier_by_usage"], o["support_hours"]) == (None, None, None, None)
    assert {k: o[k] for k in ("calls", "answered", "busy", "billable_seconds")} == {
        "calls": 4, "answered": 3, "busy": 1, "billable_seconds": 180}  # fmt: skip
    assert {k: o[k] for k in ("calls", "daily", "calls_per_day")} == {
        k: f[k] for k in ("calls", "daily", "calls_per_day")
    }
    table = usage.as_table(period, one)
    assert table.rows[0][-2:] == (None, None) and table.footer[0].startswith("servers: pbx1 only")
    assert usage.as_table(period, fleet).footer == []
