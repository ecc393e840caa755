"""The open-file limit: raised at daemon start where allowed, and the FastAGI session cap derived from it.

Every FastAGI session holds one descriptor; the daemon also needs some for PostgreSQL, AMI, the spool,
``status.json`` and logs. The cap keeps FastAGI sessions below the limit so that those never fail with
``EMFILE`` (issue 13: 1,100 held sessions at the usual 1,024 limit failed normal calls and status writes).
"""

from __future__ import annotations

import resource

#: the soft limit the daemon asks for (bounded by the hard limit, which only root may raise)
WANTED = 65536
#: sessions derived from a large limit never exceed this (each one is a call in progress)
AUTO_MAX_SESSIONS = 10_000


def soft_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_soft_limit(wanted: int = WANTED) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit, never lowered).
    Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def reserve(limit: int) -> int:
    """Descriptors kept for everything but FastAGI sessions: a quarter of the limit, 16 to 256."""
    return max(16, min(256, limit // 4))


def auto_max_sessions(limit: int | None = None) -> int:
    """The session cap when ``[agi] max_sessions`` is not set: the limit minus :func:`reserve`, at least 1."""
    limit = soft_limit() if limit is None else limit
    return max(1, min(AUTO_MAX_SESSIONS, limit - reserve(limit)))
