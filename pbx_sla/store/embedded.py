"""The embedded default: a private PostgreSQL under the data directory, used when no DSN is configured.

pgserver (PyPI) ships PostgreSQL 16 binaries; where it is not installed (CPython >= 3.13) the machine's
Debian binaries (``/usr/lib/postgresql/<v>/bin``) are used. PostgreSQL refuses to run as root: pgserver
then runs it as its own ``pgserver`` user, the Debian fallback as ``postgres``. The server keeps running
after the command that started it; the next command finds and reuses it.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from pbx_sla.errors import ConfigError
from pbx_sla.log import get_logger

log = get_logger(__name__)

DATABASE = "pbx_sla"


def _socket_ready(pgdata: Path) -> bool:
    return (pgdata / ".s.PGSQL.5432").exists()


def _ensure_runtime_dir(data_dir: Path) -> None:
    # pgserver (via platformdirs) wants a private XDG_RUNTIME_DIR, which root shells often lack
    if not os.environ.get("XDG_RUNTIME_DIR") or not Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        run = data_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        run.chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(run)


def _start_with_pgserver(pgdata: Path) -> str:
    import pgserver

    server = pgserver.get_server(pgdata, cleanup_mode=None)
    uri = server.get_uri()
    server.psql(f"SELECT 1")  # noqa: F541 - proves it answers
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    return uri.replace("/postgres?", f"/{DATABASE}?")


def _debian_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise ConfigError(
            "no DSN configured and no embedded PostgreSQL available: install pgserver "
            "(pip install pgserver) or Debian's postgresql package, or set [database] dsn / PBX_SLA_DSN"
        )
    return Path(candidates[-1]).parent


def _start_with_debian(pgdata: Path) -> str:
    bindir = _debian_bindir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
        pgdata.mkdir(parents=True, exist_ok=True)
        shutil.chown(pgdata, "postgres", "postgres")
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
    if not _socket_ready(pgdata):
        subprocess.run(
            [
                *as_user,
                str(bindir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(pgdata / "server.log"),
                "-o",
                f"-c listen_addresses='' -k {pgdata}",
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    deadline = time.monotonic() + 30
    while not _socket_ready(pgdata):
        if time.monotonic() > deadline:
            raise ConfigError(f"embedded PostgreSQL at {pgdata} did not start; see {pgdata}/server.log")
        time.sleep(0.1)
    psql = [*as_user, str(bindir / "psql"), "-h", str(pgdata), "-U", "postgres", "-d", "postgres", "-tAc"]
    found = subprocess.run(
        [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if found != "1":
        subprocess.run([*psql, f"CREATE DATABASE {DATABASE}"], check=True, capture_output=True)
    return f"postgresql://postgres@/{DATABASE}?host={pgdata}"


def ensure_embedded(data_dir: Path) -> str:
    """Start (or find) the private PostgreSQL under ``data_dir/postgres``; return its DSN."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "postgres"
    _ensure_runtime_dir(data_dir)  # before importing pgserver: platformdirs checks it at import time
    try:
        import pgserver  # noqa: F401
    except ImportError:
        dsn = _start_with_debian(pgdata)
        engine = "debian"
    else:
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        dsn = _start_with_pgserver(pgdata)
        engine = "pgserver"
    log.info("embedded PostgreSQL", pgdata=str(pgdata), engine=engine, database=DATABASE)
    return dsn
