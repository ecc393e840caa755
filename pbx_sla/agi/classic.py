"""Classic AGI script of the support line: ``AGI(support_route.py,${EXTEN})`` (pyst2, one process per call).

Installed as the console script ``pbx-sla-support-route``; ``agi_scripts/support_route.py`` is the thin file
that runs :func:`main` from a source checkout. Link either into Asterisk's agi-bin as ``support_route.py``.

Same decision and variables as the FastAGI server (:func:`pbx_sla.domain.routing.decide`).

* Catalogue: the daemon's cache file ``<data_dir>/catalogue-cache.json`` (written by the daemon's
  catalogue watch on every new revision), never PostgreSQL: a database outage must not change or slow
  the answer. No cache file, or one naming another database than the configured DSN → ``fallback`` /
  ``no-catalogue``.
* ``data_dir`` and the DSN come from pbx-sla's configuration: ``PBX_SLA_CONFIG`` (or
  ``./pbx-sla.toml``), ``PBX_SLA_DATA_DIR``, ``PBX_SLA_DSN``; set them in Asterisk's environment or with
  ``Set(ENV(PBX_SLA_CONFIG)=/etc/pbx-sla/pbx-sla.toml)`` before ``AGI()``.
* PIN: up to 3 ``GET DATA`` tries; guesses limited per caller (unnumbered callers share one count), per
  tenant and overall, as in the daemon (``[agi] pin_*``), counted in ``<data_dir>/pin-failures.json``
  (0600, under a lock file, rewritten atomically).
* Record: after the variables are set, the script closes its AGI pipes (the dialplan goes on) and a
  detached child stores the ``support_call`` record in PostgreSQL (10 s budget). If that fails the
  record is kept in ``<data_dir>/classic-agi-spool/``; the next classic call that reaches the database
  stores the spooled records first (inserts are idempotent); so does the daemon (``pbx-sla run``),
  every 30 s.
* pyst2: its debug chatter goes to /dev/null; every call is guarded against ``(AGIError, ValueError)``
  (a ``HANGUP`` line raises ValueError or AGIUnknownError); its ``_quote`` does not escape quotes, so
  arguments are quoted by :func:`pbx_sla.agi.protocol.quote` and sent through ``execute``.

The console script runs with the Python pbx-sla is installed in (its shebang says so); the thin file needs
its shebang pointed at that Python.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asterisk.agi import AGI, AGIError

from pbx_sla.agi import protocol as p
from pbx_sla.agi.pins import (
    MAX_ATTEMPTS,
    PIN_MAX_DIGITS,
    PIN_PROMPT,
    PIN_TIMEOUT_MS,
    FilePinLimiter,
    match_pin,
)
from pbx_sla.agi.record import SPOOL_DIR, record_data
from pbx_sla.domain.catalogue import Catalogue
from pbx_sla.domain.pin_limits import PinLimits
from pbx_sla.domain.routing import Decision, PinOutcome, decide
from pbx_sla.private_files import ensure_private_dir, write_private_text

CACHE_NAME = "catalogue-cache.json"
PIN_FILE = "pin-failures.json"
AGI_ERRORS = (AGIError, ValueError, OSError)


def note(message: str) -> None:
    """One line to stderr (Asterisk shows a classic script's stderr on its console)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"support_route: {message}\n")
        sys.stderr.flush()


def settings_paths() -> tuple[Path, str | None, PinLimits]:
    """(data_dir, configured DSN or None, PIN limits) from pbx-sla's configuration; defaults on any config
    error."""
    from pbx_sla.config import default_data_dir, load_settings
    from pbx_sla.errors import ConfigError

    try:
        settings = load_settings()
    except ConfigError as exc:
        note(f"configuration error ({exc}); using defaults")
        return default_data_dir(), os.environ.get("PBX_SLA_DSN") or None, PinLimits()
    a = settings.agi
    limits = PinLimits(a.pin_caller_limit, a.pin_tenant_limit, a.pin_global_limit, a.pin_window_seconds)
    return settings.data_dir, settings.dsn.reveal() if settings.dsn is not None else None, limits


def load_catalogue(data_dir: Path, dsn: str | None) -> Catalogue | None:
    """The daemon's cache, if it names the database this configuration points at (``dsn``: the configured
    DSN, None for the embedded one); else None (``fallback``)."""
    from pbx_sla.domain.catalogue_document import from_document
    from pbx_sla.store import catalogue_cache

    path = data_dir / CACHE_NAME
    try:
        data = catalogue_cache.read(path)
        if not catalogue_cache.bound_to(data, dsn=catalogue_cache.dsn_fingerprint(dsn)):
            note(f"catalogue cache {path} is from another database (or names none): fallback")
            return None
        return from_document(data["document"])
    except FileNotFoundError:
        note(f"no catalogue cache at {path}: fallback")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        note(f"catalogue cache {path} unreadable ({exc}): fallback")
    return None


class Call:
    """pyst2 with our quoting; records hang-ups instead of raising them."""

    def __init__(self, agi: AGI) -> None:
        self.agi = agi
        self.hung_up = False

    def run(self, command: str, *args: Any) -> dict[str, tuple[str, str]] | None:
        if self.hung_up:
            return None
        try:
            result: dict[str, tuple[str, str]] = self.agi.execute(command, *args)  # pyst2 is untyped
            return result
        except AGI_ERRORS as exc:
            self.hung_up = True
            note(f"{command.split()[0]} ended the session: {type(exc).__name__}")
            return None


def ask_pin(call: Call, decision: Decision, limiter: FilePinLimiter) -> tuple[PinOutcome | None, int, int]:
    """(outcome, attempts, wrong PINs); outcome None when the caller hung up. Same limits as the daemon:
    each PIN keyed is reserved in the caller's, tenant's and global buckets before it is checked."""
    caller, tenant = decision.caller, decision.tenant or None
    blocked = limiter.blocked(caller, tenant)
    if blocked is not None:
        note(f"PIN prompt skipped: too many wrong PINs ({blocked})")
        return PinOutcome("locked"), 0, 0
    wrong = attempts = 0
    for _ in range(MAX_ATTEMPTS):
        attempts += 1
        result = call.run("GET DATA", p.quote(PIN_PROMPT), PIN_TIMEOUT_MS, PIN_MAX_DIGITS)
        if result is None:
            return None, attempts, wrong
        digits = result.get("result", ("", ""))[0]
        if not digits or not digits.isdigit():
            continue
        blocked, stamp, filled = limiter.reserve(caller, tenant)
        for bucket in filled:
            note(f"PIN lockout begins: wrong-PIN limit reached ({bucket})")
        if blocked is not None:
            note(f"PIN not checked: too many wrong PINs ({blocked})")
            return PinOutcome("failed" if wrong else "locked"), attempts, wrong
        name = match_pin(digits, decision.pin_candidates)
        if name is not None:
            limiter.release(caller, tenant, stamp)
            note(f"PIN accepted for {caller or 'anonymous'} ({name})")
            return PinOutcome("ok", name), attempts, wrong
        wrong += 1
        note(f"wrong PIN from {caller or 'anonymous'} (attempt {attempts})")
        if limiter.blocked(caller, tenant) is not None:
            break
    return PinOutcome("failed" if wrong else "none"), attempts, wrong


def route(
    agi: AGI, data_dir: Path, now: datetime | None = None, limits: PinLimits | None = None, dsn: str | None = None
) -> dict[str, Any]:
    """Decide, set the variables, read the linkedid; returns the ``support_call`` record data."""
    started = time.perf_counter()
    paused = 0.0
    env = agi.env
    call = Call(agi)
    caller = env.get("agi_callerid", "")
    args = [env.get(f"agi_arg_{i}", "") for i in (1, 2)]
    dialled = args[0] or env.get("agi_extension", "") or env.get("agi_dnid", "")
    catalogue = load_catalogue(data_dir, dsn)
    decision = decide(caller, dialled, now or datetime.now(UTC), catalogue)
    attempts = 0
    if decision.pin_needed:
        t = time.perf_counter()
        outcome, attempts, wrong = ask_pin(call, decision, FilePinLimiter(data_dir / PIN_FILE, limits))
        paused = time.perf_counter() - t
        if outcome is None:  # ended during the prompt: recorded like the daemon does
            outcome = PinOutcome("failed" if wrong else "none")
        decision = decide(caller, dialled, now or datetime.now(UTC), catalogue, outcome)
    decided_at = now or datetime.now(UTC)
    variables_set = False
    if not call.hung_up:
        for name, value in decision.variables().items():
            if call.run("SET VARIABLE", name, p.quote(value)) is None:
                break
        else:
            variables_set = True
    linkedid = None
    if variables_set:
        result = call.run("GET FULL VARIABLE", p.quote("${CHANNEL(linkedid)}"))
        if result and result.get("result", ("", ""))[0] == "1":
            linkedid = p.sanitise(result["result"][1], max_chars=64) or None
    data = record_data(
        decision,
        uniqueid=env.get("agi_uniqueid", ""),
        linkedid=linkedid,
        server=args[1] or os.environ.get("PBX_SLA_SERVER", "") or "unknown",
        caller_id=caller,
        caller_name=env.get("agi_calleridname", ""),
        channel=env.get("agi_channel", ""),
        decided_at=decided_at,
        latency_ms=round((time.perf_counter() - started - paused) * 1000, 3),
        pin_attempts=attempts,
        via="classic",
    )
    if not variables_set:
        data["action"] = "hangup"
    return data


# --- storing the record, after the call has moved on ------------------------------------------------


def spool(data_dir: Path, records: list[dict[str, Any]]) -> None:
    directory = ensure_private_dir(data_dir / SPOOL_DIR)  # 0700, or shared with a group (docs/security.md)
    for record in records:
        name = f"{time.time_ns()}-{os.getpid()}"
        tmp = directory / f".{name}.tmp"
        write_private_text(tmp, json.dumps(record))
        os.replace(tmp, directory / f"{name}.json")


async def _store(dsn: str, data_dir: Path, record: dict[str, Any]) -> None:
    import asyncpg

    from pbx_sla.store.support import SupportCallSink

    spooled = sorted((data_dir / SPOOL_DIR).glob("*.json")) if (data_dir / SPOOL_DIR).is_dir() else []
    items, done = [record], []
    for path in spooled[:1000]:
        try:
            items.append(json.loads(path.read_text(encoding="utf-8")))
            done.append(path)
        except (OSError, ValueError):
            continue
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        async with conn.transaction():
            await SupportCallSink().write(conn, items)
    finally:
        await conn.close()
    for path in done:
        path.unlink(missing_ok=True)


def store(record: dict[str, Any], data_dir: Path, dsn: str | None) -> bool:
    """Insert the record (and earlier spooled ones); spool it when the database does not take it."""
    import asyncio

    try:
        if dsn is None:
            from pbx_sla.store.embedded import ensure_embedded

            dsn = ensure_embedded(data_dir)
        asyncio.run(asyncio.wait_for(_store(dsn, data_dir, record), 10))
        return True
    except Exception as exc:  # any failure: keep the record on disk
        note(f"record not stored ({type(exc).__name__}: {exc}); spooled")
        try:
            spool(data_dir, [record])
        except OSError as err:
            note(f"cannot spool the record: {err}")
        return False


def detach() -> bool:
    """Fork so that Asterisk's AGI() returns now; True in the child that should go on."""
    try:
        pid = os.fork()
    except OSError:
        return True  # cannot fork: store in this process (the call waits a little longer)
    if pid > 0:
        return False
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    return True


def main() -> int:
    # pbx-sla's logging must never write to stdout: that is the AGI channel
    from pbx_sla.log import setup_logging

    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    setup_logging("warning", json=True, stream=sys.stderr)
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    stdout = io.TextIOWrapper(real_stdout.buffer, encoding="utf-8", errors="replace", write_through=True)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    data_dir, dsn, limits = settings_paths()
    try:
        agi = AGI(stdin=stdin, stdout=stdout, stderr=devnull)
    except AGI_ERRORS as exc:
        note(f"no AGI session: {type(exc).__name__}")
        return 0
    record = route(agi, data_dir, limits=limits, dsn=dsn)
    if os.environ.get("PBX_SLA_AGI_NO_DETACH") != "1":
        for stream in (stdout, stdin):
            with contextlib.suppress(OSError, ValueError):
                stream.close()
        if not detach():
            return 0
    store(record, data_dir, dsn)
    return 0
