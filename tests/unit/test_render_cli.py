"""Report rendering (JSON conventions of docs/figures.md) and the CLI's parsing, dispatch and exit codes."""

from __future__ import annotations

import inspect
import json
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from pbx_sla import cli
from pbx_sla.reports.render import Table, render


def test_json_keeps_money_exact_and_times_with_offset() -> None:
    at = datetime(2026, 11, 1, 2, 0, tzinfo=ZoneInfo("Europe/Prague"))
    out = json.loads(render({"fee": Decimal("1234.50"), "at": at, "ratio": 0.5}, Table([], []), "json"))
    assert out == {"fee": "1234.50", "at": "2026-11-01T02:00:00+01:00", "ratio": 0.5}


def test_table_and_csv() -> None:
    table = Table(["a", "b"], [["x", 1.0], ["y,z", None]], title="T")
    text = render({}, table, "table")
    assert text.splitlines()[0] == "T"
    assert "1.0000" in text and "-" in text
    assert render({}, table, "csv").splitlines() == ["a,b", "x,1.0", '"y,z",']
    assert "(no rows)" in render({}, Table(["a"], []), "table")


def test_global_options_before_or_after_the_command() -> None:
    parser = cli.build_parser()
    before = parser.parse_args(["--config", "x.toml", "--log-level", "debug", "usage", "--period", "2026-11"])
    after = parser.parse_args(["usage", "--period", "2026-11", "--config", "x.toml", "--log-level", "debug"])
    for args in (before, after):
        assert args.config == "x.toml" and args.log_level == "debug" and args.period == "2026-11"


def test_every_spec_command_is_routed() -> None:
    parser = cli.build_parser()
    for argv in (
        ["db", "upgrade"],
        ["contracts", "apply", "f.toml", "--dry-run"],
        ["contracts", "show", "--format", "json"],
        ["run"],
        ["status", "--format", "json"],
        ["cdr", "import", "Master.csv", "--server", "pbx1"],
        ["trunks", "--period", "2026-11", "--format", "csv"],
        ["usage", "--from", "2026-11-01", "--to", "2026-11-08", "--tenant", "acme"],
        ["sla", "--period", "2026-11", "--format", "json"],
    ):
        args = parser.parse_args(argv)
        key = tuple(k for k in (args.command, getattr(args, "subcommand", None)) if k)
        assert key in cli.HANDLERS
        assert inspect.iscoroutinefunction(cli._handler(args)), key


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["usage", "--format", "xml"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["cdr", "import", "f.csv"])  # --server is required
    assert info.value.code == 2


def test_bad_configuration_exits_2_and_names_the_file(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[agi]\nlisten = 'nope'\n")
    assert cli.main(["--config", str(bad), "db", "upgrade"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_database_errors_exit_2_with_a_message(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PBX_SLA_CONFIG", raising=False)
    monkeypatch.setenv("PBX_SLA_DSN", "postgresql://postgres@127.0.0.1:1/none")  # nothing listens on port 1
    assert cli.main(["usage", "--period", "2026-11"]) == 2
    assert "pbx-sla:" in capsys.readouterr().err
