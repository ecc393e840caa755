"""The embedded default: a private PostgreSQL under the data directory, used when no DSN is configured.

Two engines: the machine's Debian binaries (``/usr/lib/postgresql/<v>/bin``, run as ``postgres`` when we are
root) and pgserver (PyPI, PostgreSQL 16 binaries inside the venv). PostgreSQL refuses to run as root, so as
root pgserver creates a ``pgserver`` user and *widens* group/other read+execute on every ancestor of the data
directory and of its own install (a venv under ``/root`` opens ``/root``). Hence the choice:

* an existing cluster keeps the engine that created it (its owner and ``PG_VERSION`` tell);
* a new one, as root: Debian's binaries when installed (no permission changes), else pgserver, logging
  the directories it widened; not root: pgserver, else Debian's binaries.

The server keeps running after the command that started it; the next command finds and reuses it.
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
    from pgserver.postgres_server import get_server

    server = get_server(pgdata, cleanup_mode=None)
    uri = server.get_uri()
    server.psql(f"SELECT 1")  # noqa: F541 - proves it answers
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    return uri.replace("/postgres?", f"/{DATABASE}?")


def _debian_bindirs() -> dict[str, Path]:
    """Installed Debian PostgreSQL versions → their bin directory."""
    return {p.split("/")[4]: Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")}


def _debian_bindir(version: str | None = None) -> Path:
    found = _debian_bindirs()
    if version is not None and version in found:
        return found[version]
    if version is None and found:
        return found[max(found, key=int)]
    raise ConfigError(
        "no DSN configured and no embedded PostgreSQL available"
        + (f" for the version {version} cluster found" if version else "")
        + ": install pgserver (pip install pgserver) or Debian's postgresql package, "
        "or set [database] dsn / PBX_SLA_DSN"
    )


def _pgserver_available() -> bool:
    try:
        import pgserver  # noqa: F401
    except ImportError:
        return False
    return True


def choose_engine(pgdata: Path) -> str:
    """``"debian"`` or ``"pgserver"``, as the module docstring says."""
    if (pgdata / "PG_VERSION").exists():
        owner = pgdata.owner()
        if owner == "pgserver" or (owner != "postgres" and not _debian_bindirs()):
            return "pgserver"
        return "debian"
    if os.geteuid() == 0 and _debian_bindirs():
        return "debian"
    return "pgserver" if _pgserver_available() else "debian"


def _not_open(path: Path) -> list[Path]:
    """Ancestors of ``path`` that others cannot read and traverse (what pgserver would widen as root)."""
    closed = []
    for parent in path.resolve().parents:
        if parent.exists() and (parent.stat().st_mode & 0o055) != 0o055:
            closed.append(parent)
    return closed


def _start_with_debian(pgdata: Path) -> str:
    version = (pgdata / "PG_VERSION").read_text().strip() if (pgdata / "PG_VERSION").exists() else None
    bindir = _debian_bindir(version)
    as_user: list[str] = []
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
        pgdata.mkdir(parents=True, exist_ok=True)
        # the data directory is private (0700, see pbx_sla.private_files): the server's user needs to pass it
        pgdata.parent.chmod(pgdata.parent.stat().st_mode & 0o7777 | 0o011)
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
    engine = choose_engine(pgdata)
    if engine == "debian":
        dsn = _start_with_debian(pgdata)
    else:
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        widened: list[Path] = []
        if os.geteuid() == 0:
            import pgserver

            widened = sorted(set(_not_open(pgdata)) | set(_not_open(Path(pgserver.__file__))))
        dsn = _start_with_pgserver(pgdata)
        if widened:
            log.warning(
                "pgserver (as root) made these directories readable and traversable by group and others "
                "so that its 'pgserver' user reaches the data and binaries; install Debian's postgresql "
                "package to avoid that",
                directories=[str(p) for p in widened],
            )
    log.info("embedded PostgreSQL", pgdata=str(pgdata), engine=engine, database=DATABASE)
    return dsn
