"""Files only the daemon's user may read: the data directory 0700, its files 0600.

The data directory holds PIN hashes and phone numbers (``catalogue-cache.json``), call records (spool
segments, dead letters) and ``status.json``: with the usual 0755/0644 any local user read them and
recovered a 4-digit PIN offline in minutes. New files are created 0600 (whatever the umask);
:func:`tighten_data_dir` narrows at start what an older version or a hand-made copy left wider.

Deliberate exceptions, each as narrow as it can be:

* the embedded PostgreSQL (``postgres/``, and pgserver's ``run/``) manages its own modes, and when its
  server runs as another user (``postgres`` or ``pgserver``, as root) the data directory keeps search
  permission for others (``--x``: reach a known path, list and read nothing);
* a data directory the administrator made **setgid** (``chmod 2750``) is shared with its group - the
  classic AGI script runs as Asterisk's user and reads the catalogue cache and writes
  ``classic-agi-spool/`` - so its files are 0640, its directories 2750 and the classic spool 2770.
  Others get nothing either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SHARED_DIR = 0o750
SHARED_FILE = 0o640
#: managed by PostgreSQL itself (see pbx_sla.store.embedded) or by pgserver's runtime: never touched
SELF_MANAGED = ("postgres", "run")
#: written by the classic AGI script (Asterisk's user) in a shared data directory
CLASSIC_SPOOL = "classic-agi-spool"


def shared(directory: Path) -> bool:
    """A setgid directory: the administrator shares it with its group."""
    try:
        return bool(directory.stat().st_mode & stat.S_ISGID)
    except OSError:
        return False


def file_mode(directory: Path) -> int:
    """The mode of a new file in ``directory``: 0600, or 0640 in a shared (setgid) one."""
    return SHARED_FILE if shared(directory) else PRIVATE_FILE


def dir_mode(path: Path) -> int:
    """The mode a directory under the data directory should have (see the module docstring)."""
    if not shared(path.parent):
        return PRIVATE_DIR
    return stat.S_ISGID | (0o770 if path.name == CLASSIC_SPOOL else SHARED_DIR)


def ensure_private_dir(path: Path) -> Path:
    """``mkdir -p`` of a directory in the data directory, with :func:`dir_mode` (an existing one is kept)."""
    if not path.is_dir():
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        try:
            path.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            return path
        os.chmod(path, dir_mode(path))
    return path


@contextmanager
def open_private(path: Path, mode: str = "w", *, perm: int | None = None) -> Iterator[IO[Any]]:
    """``open(path, mode)`` (``"w"``/``"a"``, text UTF-8 or with ``b``) creating the file 0600 (0640 in a
    shared directory, or ``perm``) whatever the umask, and narrowing an existing file to it."""
    perm = file_mode(path.parent) if perm is None else perm
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, perm)
    try:
        os.fchmod(fd, perm)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
        yield fh


def write_private_text(path: Path, text: str) -> None:
    with open_private(path, "w") as fh:
        fh.write(text)


def replace_private_json(path: Path, value: Any, **dump: Any) -> None:
    """Atomically replace ``path`` with ``value`` as JSON (``json.dump`` keyword arguments ``dump``), fsync'd,
    created like :func:`open_private` in a directory made by :func:`ensure_private_dir`: a crash leaves the
    old file or the new one, never a torn one."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open_private(tmp, "w") as fh:
            json.dump(value, fh, **dump)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def data_dir_mode(data_dir: Path) -> int:
    """0700 (2750 if shared), plus search permission for an embedded server run by another user."""
    mode = stat.S_ISGID | SHARED_DIR if shared(data_dir) else PRIVATE_DIR
    pgdata = data_dir / "postgres"
    try:
        if pgdata.exists() and pgdata.stat().st_uid != os.geteuid():
            mode |= 0o011
    except OSError:
        pass
    return mode


def tighten_data_dir(data_dir: Path) -> list[tuple[str, str, str]]:
    """Create ``data_dir`` private and narrow every wider mode under it; return (path, old, new) changed.

    Directories get exactly their mode; files only lose bits. ``postgres/`` and ``run/`` are left alone
    (see the module docstring); symlinks are not followed.
    """
    changed: list[tuple[str, str, str]] = []

    def narrow(path: Path, want: int) -> None:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return
        old = stat.S_IMODE(st.st_mode)
        new = want if stat.S_ISDIR(st.st_mode) else old & want
        if new != old:
            os.chmod(path, new, follow_symlinks=False)
            changed.append((str(path), f"{old:04o}", f"{new:04o}"))

    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    narrow(data_dir, data_dir_mode(data_dir))
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        if here == data_dir:
            dirs[:] = [d for d in dirs if d not in SELF_MANAGED]
        for name in dirs:
            narrow(here / name, dir_mode(here / name))
        for name in files:
            narrow(here / name, file_mode(here))
    return changed
