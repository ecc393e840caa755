"""Database errors are configuration errors for the user: a message naming the problem, exit 2, no traceback."""

from __future__ import annotations

from conftest import with_database

from pbx_sla import cli


def test_missing_database_exits_2_naming_it(pg_server: str, monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PBX_SLA_CONFIG", raising=False)
    monkeypatch.setenv("PBX_SLA_DSN", with_database(pg_server, "pbx_sla_no_such_db"))
    assert cli.main(["usage", "--period", "2026-11"]) == 2
    err = capsys.readouterr().err
    assert 'database error: database "pbx_sla_no_such_db" does not exist' in err
    assert "Traceback" not in err
