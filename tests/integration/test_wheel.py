"""The built wheel works outside the source checkout: it carries the migrations and the console scripts.

Slow (builds a wheel, makes a venv and installs into it: about 30-60 s), marked ``wheel``; deselect with
``-m "not wheel"`` while iterating. Needs the package registry or pip's cache for the build backend and the
dependencies, as any ``pip install`` does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from pbx_sla.store import migrate

ROOT = Path(__file__).resolve().parents[2]
#: what a build reads (pyproject.toml, setup.py and the files they name)
SOURCES = ("pyproject.toml", "setup.py", "README.md", "pbx_sla", "sql")

pytestmark = pytest.mark.wheel


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv, outside the checkout, with only the wheel built from the current sources (and its
    dependencies) installed; returns its bin/ folder."""
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents
    src = base / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(src)], cwd=base)
    (wheel,) = (base / "dist").glob("pbx_sla-*.whl")
    # a venv without pip of its own (ensurepip is slow); this Python's pip installs into it
    _run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], cwd=base)
    _run([*pip, "--python", str(base / "venv" / "bin" / "python"), "install", "-q", str(wheel)], cwd=base)
    return base / "venv" / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PBX_SLA_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    env.update(extra)
    return env


def test_the_wheel_carries_the_package_the_migrations_and_the_entry_points(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import pbx_sla, pbx_sla.sql; from pbx_sla.store import migrate; s = migrate.load(); "
        "print(pbx_sla.__file__); print(len(s.migrations), len(s.repeatables))"
    )
    where, counts = _run([str(installed / "python"), "-c", probe], cwd=tmp_path, env=_clean_env()).splitlines()
    assert Path(where).is_relative_to(installed.parent), where  # the installed copy, not the checkout
    assert counts == f"{len(migrate.discover())} {len(migrate.discover_repeatables())}", counts
    assert (installed / "pbx-sla").is_file()
    assert (installed / "pbx-sla-support-route").is_file()
    # without an AGI session on stdin the classic script says so and exits 0 (it imports from the wheel)
    done = subprocess.run(
        [str(installed / "pbx-sla-support-route")], input="", capture_output=True, text=True, cwd=tmp_path,
        env=_clean_env(PBX_SLA_DATA_DIR=str(tmp_path / "data")), timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "support_route:" in done.stderr, done.stderr


async def test_the_installed_package_upgrades_an_empty_database_and_applies_the_example(
    installed: Path, empty_dsn: str, tmp_path: Path
) -> None:
    env = _clean_env(PBX_SLA_DSN=empty_dsn, PBX_SLA_DATA_DIR=str(tmp_path / "data"))
    out = _run([str(installed / "pbx-sla"), "db", "upgrade"], cwd=tmp_path, env=env)
    assert f"schema at version {migrate.discover()[-1].version}" in out
    _run([str(installed / "pbx-sla"), "contracts", "apply", str(ROOT / "examples" / "contracts.toml")], tmp_path, env)
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_repeatables") == len(migrate.discover_repeatables())
        assert await conn.fetchval("SELECT count(*) FROM tenants WHERE active") > 0
        assert await conn.fetchval("SELECT count(*) FROM catalogue_revisions") == 1
    finally:
        await conn.close()
