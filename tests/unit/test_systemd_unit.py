"""The shipped systemd unit (packaging/systemd/pbx-sla.service): hardening present, and accepted by
``systemd-analyze verify`` (with ExecStart pointed at this checkout's pbx-sla, which verify requires to exist)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "pbx-sla.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_a_dedicated_user_with_a_private_state_dir_and_hardening() -> None:
    s = settings()
    assert s["User"] == ["pbx-sla"] and s["StateDirectory"] == ["pbx-sla"] and s["StateDirectoryMode"] == ["0700"]
    assert s["Environment"] == ["PBX_SLA_DATA_DIR=/var/lib/pbx-sla"]
    assert int(s["LimitNOFILE"][0]) >= 16384
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "UMask": "0077",
        "KillSignal": "SIGTERM",
        "RestartPreventExitStatus": "2",
    }.items():
        assert s[key] == [value], key
    assert s["CapabilityBoundingSet"] == [""]
    sysusers = (ROOT / "packaging" / "systemd" / "pbx-sla.sysusers").read_text()
    assert re.search(r"^u pbx-sla - .* /var/lib/pbx-sla", sysusers, re.M)


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package 'systemd'; scripts/dev test installs it)")
    return tool


def _unit_here(tmp_path: Path) -> Path:
    exe = Path(sys.executable).parent / "pbx-sla"
    if not exe.exists():
        exe = Path(sys.executable)
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={exe}", UNIT.read_text())
    path = tmp_path / "pbx-sla.service"
    path.write_text(text)
    return path


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    done = subprocess.run([_analyze(), "verify", str(_unit_here(tmp_path))], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    done = subprocess.run(
        [_analyze(), "security", "--offline=yes", "--no-pager", str(_unit_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    if match is None:
        pytest.skip(f"systemd-analyze security --offline not available here: {done.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 2.5, done.stdout[-2000:]
