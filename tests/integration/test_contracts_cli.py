"""`pbx-sla contracts apply|show` end to end in-process: exit codes, idempotency, no PIN or hash in output."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from pbx_sla import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contracts.toml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fetchval(dsn: str, sql: str):
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_apply_twice_then_show(cli_env: dict[str, str], tmp_path: Path, capsys) -> None:
    file = tmp_path / "contracts.toml"
    shutil.copy(EXAMPLE, file)
    code, out, err = run(capsys, "contracts", "apply", str(file))
    assert code == 0, err
    assert "added       tenant acme" in out and "catalogue revision 1" in out
    code, out, err = run(capsys, "contracts", "apply", str(file))
    assert code == 0, err
    assert out.strip() == "no changes (catalogue revision 1)"
    assert fetchval(cli_env["PBX_SLA_DSN"], "SELECT count(*) FROM catalogue_revisions") == 1
    pin_hash = fetchval(cli_env["PBX_SLA_DSN"], "SELECT pin_hash FROM requesters WHERE pin_hash IS NOT NULL")
    salt, digest = pin_hash.split("$")[4:]

    code, out, err = run(capsys, "contracts", "show", "--format", "json")
    assert code == 0, err
    for secret in ("4711", pin_hash, salt, digest, "scrypt"):
        assert secret not in out
    report = json.loads(out)
    assert [t["name"] for t in report["tiers"]] == ["tier1", "tier2", "tier3", "tier4"]
    assert report["tiers"][0]["price_per_year"] == "25000" and report["tiers"][0]["availability_target"] == 0.995
    assert [t["id"] for t in report["tenants"]] == ["acme", "bistro"]
    acme = report["tenants"][0]
    assert acme["trunks"] == ["pbx1/trunk-a"]
    assert acme["requesters"] == [
        {"name": "Jana Novakova", "phones": ["+420777000001", "+420221000199"], "pin": False},
        {"name": "Petr Svoboda", "phones": ["+420777000002"], "pin": True},
    ]
    assert report["tenants"][1]["requesters"] == [{"name": "Karel Dvorak", "phones": ["+420603000003"], "pin": False}]
    assert report["trunks"][0] == {
        "server": "pbx1",
        "name": "trunk-a",
        "availability_target": 0.999,
        "in_catalogue": True,
    }
    assert report["maintenance"][0]["start"] == "2026-11-01T02:00:00+01:00"
    assert report["revision"]["id"] == 1

    code, out, err = run(capsys, "contracts", "show")
    assert code == 0, err
    assert "Petr Svoboda" in out and "Tiers" in out and "4711" not in out and "scrypt" not in out


def test_dry_run_prints_and_changes_nothing(cli_env: dict[str, str], capsys) -> None:
    code, out, err = run(capsys, "contracts", "apply", str(EXAMPLE), "--dry-run")
    assert code == 0, err
    assert out.startswith("dry run:") and "added       tier tier1" in out and "nothing applied" in out
    assert fetchval(cli_env["PBX_SLA_DSN"], "SELECT count(*) FROM tenants") == 0
    assert fetchval(cli_env["PBX_SLA_DSN"], "SELECT count(*) FROM catalogue_revisions") == 0


def test_missing_tier_exits_1_and_names_it(cli_env: dict[str, str], tmp_path: Path, capsys) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(EXAMPLE.read_text().replace('tier = "tier1"', 'tier = "gold"'))
    code, _, err = run(capsys, "contracts", "apply", str(file))
    assert code == 1
    assert f"{file}: catalogue invalid (1 problem)" in err
    assert "tenants[1].tier: unknown tier 'gold'" in err
    assert fetchval(cli_env["PBX_SLA_DSN"], "SELECT count(*) FROM tenants") == 0


def test_every_problem_listed(cli_env: dict[str, str], tmp_path: Path, capsys) -> None:
    file = tmp_path / "bad.toml"
    text = EXAMPLE.read_text()
    text = text.replace('tier = "tier1"', 'tier = "gold"').replace('pin = "4711"', 'pin = "47"')
    text = text.replace('"+420603000003"', '"+4207"').replace('timezone = "Europe/Prague"', 'timezone = "Mars/Base"')
    file.write_text(text)
    code, _, err = run(capsys, "contracts", "apply", str(file))
    assert code == 1
    assert "catalogue invalid (4 problems)" in err
    assert "timezone: unknown time zone 'Mars/Base'" in err
    assert "tenants[0].requesters[1].pin: must be a string of 4 to 12 digits" in err
    assert "tenants[1].requesters[0].phones[0]: '+4207' is not a valid number" in err


def test_toml_syntax_error_names_line(cli_env: dict[str, str], tmp_path: Path, capsys) -> None:
    file = tmp_path / "broken.toml"
    file.write_text('timezone = "Europe/Prague"\ncountry_code = \n')
    code, _, err = run(capsys, "contracts", "apply", str(file))
    assert code == 1
    assert f"{file}:2:" in err and "not valid TOML" in err


def test_missing_file_is_usage_error(cli_env: dict[str, str], tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "contracts", "apply", str(tmp_path / "nope.toml"))
    assert code == 2 and "not found" in err


def test_apply_on_a_fresh_database_runs_migrations(empty_dsn: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PBX_SLA_DSN", empty_dsn)
    monkeypatch.setenv("PBX_SLA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PBX_SLA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "contracts", "show", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["tenants"] == [] and json.loads(out)["revision"] is None
    code, out, err = run(capsys, "contracts", "apply", str(EXAMPLE))
    assert code == 0, err
    assert fetchval(empty_dsn, "SELECT count(*) FROM tenants WHERE active") == 2


def test_show_with_voice_quality_targets_and_rules(cli_env: dict[str, str], tmp_path: Path, capsys) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    old = "credits = [ { below = 0.9995, percent = 10 }, { below = 0.999, percent = 25 } ]"
    assert old in text
    new = old[:-2] + ', { metric = "qos_loss", above = 0.02, percent = 30 } ]\nqos = { min_mos = 4, max_loss = 0.01 }'
    file = tmp_path / "contracts.toml"
    file.write_text(text.replace(old, new), encoding="utf-8")
    code, out, err = run(capsys, "contracts", "apply", str(file))
    assert code == 0, err
    code, out, err = run(capsys, "contracts", "show", "--format", "json")
    assert code == 0, err
    tier4 = json.loads(out)["tiers"][3]
    assert tier4["qos"] == {"max_loss": 0.01, "min_mos": 4.0}
    assert tier4["credits"][-1] == {"metric": "qos_loss", "above": 0.02, "percent": 30.0}
    code, out, err = run(capsys, "contracts", "show")
    assert code == 0, err
    assert "qos_l>0.02:30%" in out


def test_show_request_keys(cli_env: dict[str, str], tmp_path: Path, capsys) -> None:
    """Reaction targets, prepaid support hours and [support] appear in `contracts show`."""
    text = (
        EXAMPLE.read_text(encoding="utf-8")
        .replace("[tiers.tier1]\n", '[tiers.tier1]\nreaction_target = "48h"\nreaction_share_target = 0.9\n')
        .replace('id = "bistro"\n', 'id = "bistro"\nsupport_hours_per_year = "12.5"\n')
    )
    file = tmp_path / "contracts.toml"
    file.write_text(text + '\n[support]\nstaff = ["agent1"]\n', encoding="utf-8")
    code, _, err = run(capsys, "contracts", "apply", str(file))
    assert code == 0, err
    code, out, err = run(capsys, "contracts", "show", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    tier1 = report["tiers"][0]
    assert (tier1["reaction_target_seconds"], tier1["reaction_share_target"]) == (172800, 0.9)
    assert report["tiers"][1]["reaction_target_seconds"] is None
    bistro = report["tenants"][1]
    assert (bistro["support_hours_per_year"], bistro["support_packages"]) == ("12.5", [])
    assert report["support"] == {
        "staff": ["agent1"],
        "callback_min_seconds": 30,
        "line_contexts": ["support-line", "support-line-classic"],
    }
    code, out, err = run(capsys, "contracts", "show")
    assert code == 0 and "48h (0.9)" in out


def test_pin_hash_in_the_file_instead_of_a_pin_and_a_warning_for_plain_pins(cli_env, tmp_path: Path, capsys) -> None:
    import subprocess
    import sys

    from pbx_sla.domain.pins import verify_pin

    # `pbx-sla pin hash` reads the PIN from stdin (or a prompt), never from argv
    made = subprocess.run([sys.executable, "-m", "pbx_sla.cli", "pin", "hash"], input="4711\n", text=True,
                          capture_output=True, env=cli_env, cwd=tmp_path, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    pin_hash = made.stdout.strip()
    assert verify_pin("4711", pin_hash) and "4711" not in made.stdout + made.stderr
    in_argv = subprocess.run([sys.executable, "-m", "pbx_sla.cli", "pin", "hash", "4711"], text=True,
                             capture_output=True, env=cli_env, cwd=tmp_path, check=False)  # fmt: skip
    assert in_argv.returncode == 2 and in_argv.stdout == ""
    bad = subprocess.run([sys.executable, "-m", "pbx_sla.cli", "pin", "hash"], input="12a4\n", text=True,
                         capture_output=True, env=cli_env, cwd=tmp_path, check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stdout == "" and "4 to 12 digits" in bad.stderr and "12a4" not in bad.stderr

    # the example holds a plain pin: applying it warns, naming the requester, never the PIN
    code, _, err = run(capsys, "contracts", "apply", str(EXAMPLE))
    assert code == 0 and "1 requester(s) hold a plain `pin` (acme/Petr Svoboda)" in err and "4711" not in err
    # the same catalogue with pin_hash: no warning, and the stored hash is the file's (a changed pin)
    file = tmp_path / "hashed.toml"
    file.write_text(EXAMPLE.read_text().replace('pin = "4711"', f'pin_hash = "{pin_hash}"'))
    code, out, err = run(capsys, "contracts", "apply", str(file))
    assert code == 0 and "plain `pin`" not in err, err
    stored = fetchval(cli_env["PBX_SLA_DSN"], "SELECT pin_hash FROM requesters WHERE name = 'Petr Svoboda'")
    assert stored == pin_hash and "changed" in out
