"""Typed daemon settings: defaults < file < environment < command-line flags.

Validated once at start; every error names the file and the key at fault. Secrets are wrapped in
:class:`Secret` so that no repr, log line or traceback can show them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pbx_sla.errors import ConfigError

DEFAULT_CONFIG = Path("pbx-sla.toml")
DEFAULT_AGI_LISTEN = "127.0.0.1:4573"
DEFAULT_HTTP_LISTEN = "127.0.0.1:9721"


class Secret:
    """A secret value that never shows itself in repr/str (and so never in logs)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class AsteriskServer:
    """One ``[[asterisk]]`` table: an AMI endpoint the daemon collects from."""

    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pbx-sla"
    secret: Secret = field(default_factory=lambda: Secret(""), repr=False)
    #: IANA zone of the server's local clock (CDR times); None means the catalogue's zone.
    timezone: str | None = None
    #: seconds between our own AMI ``Ping`` actions (half-open connection watchdog)
    ping_interval: float = 10.0
    #: seconds an action may take before the connection is considered dead
    action_timeout: float = 5.0
    #: addresses or networks (CIDR) this Asterisk's FastAGI connections come from; empty: its ``host``
    agi_peers: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgiOptions:
    """``[agi]`` limits of the FastAGI server (docs/support-line.md, docs/security.md)."""

    #: seconds from connect to the end of the ``agi_*`` headers (the whole header, not per read)
    header_timeout: float = 5.0
    #: seconds one session may last in total, PIN prompt included
    session_timeout: float = 60.0
    #: sessions served at once; more are closed at once and counted. None: derived from the open-file limit
    max_sessions: int | None = None
    #: wrong PINs allowed per window: per caller number (all unnumbered callers share one), per tenant, overall
    pin_caller_limit: int = 5
    pin_tenant_limit: int = 20
    pin_global_limit: int = 60
    pin_window_seconds: float = 900.0


@dataclass(frozen=True)
class HttpSettings:
    """``[http]``: the daemon's HTTP server (``/metrics`` and the read-only dashboard).

    ``listen`` None: no HTTP server. Authentication applies to every path when a token or a basic-auth
    user is configured (either one is accepted); the secrets are :class:`Secret` and never logged.
    """

    listen: tuple[str, int] | None = ("127.0.0.1", 9721)
    token: Secret | None = field(default=None, repr=False)
    basic_user: str | None = None
    basic_password: Secret | None = field(default=None, repr=False)
    #: seconds between two refreshes of the database-derived metrics (trunk states, calls, requests)
    refresh_seconds: float = 15.0

    @property
    def auth_required(self) -> bool:
        return self.token is not None or self.basic_user is not None


@dataclass(frozen=True)
class Retention:
    """``[retention]``: days after which personal fields are replaced by pseudonyms; None keeps them."""

    legs_days: int | None = None  # cdr_legs and calls (by the call's start)
    support_days: int | None = None  # support_calls and queue_events
    qos_days: int | None = None  # qos_legs
    #: seconds between the daemon's runs (and before its first one, after start)
    interval: float = 86400.0

    @property
    def configured(self) -> bool:
        return any(d is not None for d in (self.legs_days, self.support_days, self.qos_days))


@dataclass(frozen=True)
class Settings:
    """Everything the daemon and the commands need, resolved and validated."""

    config_file: Path | None
    dsn: Secret | None  # None: the embedded default under data_dir
    data_dir: Path
    asterisk: tuple[AsteriskServer, ...] = ()
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    log_level: str = "info"
    agi: AgiOptions = field(default_factory=AgiOptions)
    #: records the durable writer keeps in memory at most (then the spool; spool unwritable: back-pressure)
    max_memory: int = 100_000
    http: HttpSettings = field(default_factory=HttpSettings)
    retention: Retention = field(default_factory=Retention)

    @property
    def embedded(self) -> bool:
        return self.dsn is None


def default_data_dir() -> Path:
    env = os.environ.get("PBX_SLA_DATA_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/pbx-sla")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pbx-sla"


#: keys whose values are never shown in an error message (a typo in a secret is still a secret)
SECRET_KEYS = frozenset({"secret", "dsn", "password", "pin", "pin_hash"})

#: numeric keys of ``[[asterisk]]``: (low, high) inclusive; anything else (0, nan, inf) is refused
ASTERISK_RANGES: dict[str, tuple[float, float]] = {
    "port": (1, 65535),
    # below 1 s the watchdog is a Ping storm (0 sent 20,628 Pings in 6 s), above an hour it is off
    "ping_interval": (1.0, 3600.0),
    # 0 never logs in; beyond 10 min a dead link is not noticed
    "action_timeout": (0.1, 600.0),
}

_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _type_error(where: str, key: str, expected: str, value: Any) -> ConfigError:
    if key in SECRET_KEYS:
        return ConfigError(f"{where}: key '{key}' must be {expected}, got {type(value).__name__} (value not shown)")
    return ConfigError(f"{where}: key '{key}' must be {expected}, got {type(value).__name__} {value!r}")


def check_dsn(text: str, where: str) -> None:
    """Refuse a DSN asyncpg could not use, naming ``where`` (the key or env var) but never the DSN itself,
    whose password part is a secret."""
    expected = "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]"
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ConfigError(f"{where}: not a valid URL ({expected})") from None
    if parts.scheme not in ("postgresql", "postgres"):
        scheme = f"'{parts.scheme}://'" if parts.scheme and "://" in text else "no scheme"
        raise ConfigError(f"{where}: a PostgreSQL DSN must start with postgresql://, got {scheme} ({expected})")
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(",") if hosts else ():
        name, sep, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if sep and (not port.isdigit() or not 0 < int(port) < 65536):
            raise ConfigError(f"{where}: port of host {name or '(empty)'!r} is not a number from 1 to 65535")
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ConfigError(f"{where}: the query part (after '?') is not NAME=VALUE&... ({expected})") from None
    for name, value in query:
        if name == "sslmode" and value not in _SSLMODES:
            raise ConfigError(f"{where}: sslmode must be one of {', '.join(_SSLMODES)}, got {value!r}")
        if name in ("port", "connect_timeout") and not value.isdigit():
            raise ConfigError(f"{where}: parameter {name} must be a number, got {value!r}")


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    if kind is int and isinstance(value, bool):
        raise _type_error(where, key, "an integer", value)
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _type_error(where, key, names, value)
    return value


def parse_listen(value: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:4573``) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


_KNOWN = {
    "": {"database", "asterisk", "agi", "daemon", "http", "log_level", "retention"},
    "retention": {"legs_days", "support_days", "qos_days", "interval"},
    "database": {"dsn"},
    "agi": {
        "listen",
        "header_timeout",
        "session_timeout",
        "max_sessions",
        "pin_caller_limit",
        "pin_tenant_limit",
        "pin_global_limit",
        "pin_window_seconds",
    },
    "http": {
        "listen",
        "token",
        "token_file",
        "basic_user",
        "basic_password",
        "basic_password_file",
        "refresh_seconds",
    },
    "daemon": {"data_dir", "max_memory"},
    "asterisk": {
        "name",
        "host",
        "port",
        "username",
        "secret",
        "secret_file",
        "timezone",
        "ping_interval",
        "action_timeout",
        "agi_peers",
    },
}


def _check_keys(table: dict[str, Any], section: str, where: str) -> None:
    unknown = sorted(set(table) - _KNOWN[section])
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _read_secret(server: dict[str, Any], where: str, base: Path, key: str = "secret") -> Secret:
    file_key = f"{key}_file"
    if key in server and file_key in server:
        raise ConfigError(f"{where}: give either '{key}' or '{file_key}', not both")
    if file_key in server:
        path = Path(_get(server, file_key, str, where))
        if not path.is_absolute():
            path = base / path
        try:
            return Secret(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"{where}: key '{file_key}': cannot read {path}: {exc.strerror}") from None
    return Secret(_get(server, key, str, where, ""))


def _parse_http(table: dict[str, Any], env: Mapping[str, str], where: str, base: Path) -> HttpSettings:
    """``[http]``; ``listen = ""`` (or ``PBX_SLA_HTTP_LISTEN=""``) turns the HTTP server off."""
    _check_keys(table, "http", where)
    listen_text = env.get("PBX_SLA_HTTP_LISTEN")
    if listen_text is None:
        listen_text = _get(table, "listen", str, where, DEFAULT_HTTP_LISTEN)
    listen = parse_listen(listen_text, f"{where} key 'listen'") if listen_text else None
    token = _read_secret(table, where, base, "token") if ("token" in table or "token_file" in table) else None
    if token is not None and not token.reveal():
        raise ConfigError(f"{where}: key 'token' must not be empty")
    user = _get(table, "basic_user", str, where)
    has_password = "basic_password" in table or "basic_password_file" in table
    if bool(user) != has_password:
        raise ConfigError(f"{where}: 'basic_user' and 'basic_password' (or 'basic_password_file') go together")
    password = _read_secret(table, where, base, "basic_password") if has_password else None
    if password is not None and not password.reveal():
        raise ConfigError(f"{where}: key 'basic_password' must not be empty")
    if user is not None and ":" in user:
        raise ConfigError(f"{where}: key 'basic_user' must not contain ':'")
    refresh = float(_get(table, "refresh_seconds", (int, float), where, 15.0))
    if not 0 < refresh <= 3600:
        raise ConfigError(f"{where}: key 'refresh_seconds' must be in (0, 3600], got {refresh}")
    return HttpSettings(listen=listen, token=token, basic_user=user, basic_password=password, refresh_seconds=refresh)


def _parse_asterisk(items: Any, file: str, base: Path) -> tuple[AsteriskServer, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{file}: 'asterisk' must be an array of tables ([[asterisk]])")
    servers: list[AsteriskServer] = []
    seen: set[str] = set()
    for i, raw in enumerate(items):
        where = f"{file}: asterisk[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a table")
        _check_keys(raw, "asterisk", where)
        name = _get(raw, "name", str, where)
        if not name:
            raise ConfigError(f"{where}: key 'name' is required")
        if name in seen:
            raise ConfigError(f"{where}: key 'name': duplicate server name {name!r}")
        seen.add(name)
        low, high = ASTERISK_RANGES["port"]
        port = int(_count(raw, "port", where, 5038, int(low), int(high)) or 0)
        tz = _get(raw, "timezone", str, where)
        if tz is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"{where}: key 'timezone': unknown time zone {tz!r}") from None
        servers.append(
            AsteriskServer(
                name=name,
                host=_get(raw, "host", str, where, "127.0.0.1"),
                port=port,
                username=_get(raw, "username", str, where, "pbx-sla"),
                secret=_read_secret(raw, where, base),
                timezone=tz,
                ping_interval=float(_number(raw, "ping_interval", where, 10.0, *ASTERISK_RANGES["ping_interval"])),
                action_timeout=float(_number(raw, "action_timeout", where, 5.0, *ASTERISK_RANGES["action_timeout"])),
                agi_peers=_parse_peers(raw, where),
            )
        )
    return tuple(servers)


def _parse_peers(server: dict[str, Any], where: str) -> tuple[str, ...]:
    import ipaddress

    peers = _get(server, "agi_peers", list, where, [])
    out = []
    for i, peer in enumerate(peers):
        if not isinstance(peer, str):
            raise ConfigError(f"{where}: key 'agi_peers'[{i}] must be a string (an address or a network)")
        try:
            out.append(str(ipaddress.ip_network(peer.strip(), strict=False)))
        except ValueError:
            raise ConfigError(f"{where}: key 'agi_peers'[{i}]: not an IP address or network: {peer!r}") from None
    return tuple(out)


def _number(table: dict[str, Any], key: str, where: str, default: float, low: float, high: float) -> float:
    value = _get(table, key, (int, float), where, default)
    if isinstance(value, bool) or not (low <= float(value) <= high):  # NaN fails both comparisons
        raise ConfigError(f"{where}: key '{key}' must be a number from {low:g} to {high:g}")
    return float(value)


def _count(table: dict[str, Any], key: str, where: str, default: int | None, low: int, high: int) -> int | None:
    value: int | None = _get(table, key, int, where, default)
    if value is not None and not (low <= value <= high):
        raise ConfigError(f"{where}: key '{key}' must be an integer from {low} to {high}")
    return value


def _parse_agi_options(agi: dict[str, Any], where: str) -> AgiOptions:
    d = AgiOptions()
    return AgiOptions(
        header_timeout=_number(agi, "header_timeout", where, d.header_timeout, 0.1, 60),
        session_timeout=_number(agi, "session_timeout", where, d.session_timeout, 1, 3600),
        max_sessions=_count(agi, "max_sessions", where, None, 1, 1_000_000),
        pin_caller_limit=int(_count(agi, "pin_caller_limit", where, d.pin_caller_limit, 1, 1000) or 0),
        pin_tenant_limit=int(_count(agi, "pin_tenant_limit", where, d.pin_tenant_limit, 1, 100_000) or 0),
        pin_global_limit=int(_count(agi, "pin_global_limit", where, d.pin_global_limit, 1, 1_000_000) or 0),
        pin_window_seconds=_number(agi, "pin_window_seconds", where, d.pin_window_seconds, 1, 7 * 86400),
    )


def _parse_retention(table: dict[str, Any], where: str) -> Retention:
    _check_keys(table, "retention", where)
    days: dict[str, int | None] = {}
    for key in ("legs_days", "support_days", "qos_days"):
        value = _get(table, key, int, where)
        if value is not None and value < 1:
            raise ConfigError(f"{where}: key '{key}' must be at least 1 (days), got {value}")
        days[key] = value
    interval = _get(table, "interval", (int, float), where, 86400.0)
    if isinstance(interval, bool) or interval < 60:
        raise ConfigError(f"{where}: key 'interval' must be at least 60 (seconds), got {interval!r}")
    return Retention(
        legs_days=days["legs_days"],
        support_days=days["support_days"],
        qos_days=days["qos_days"],
        interval=float(interval),
    )


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    *,
    log_level: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings: defaults < file < environment (``PBX_SLA_*``) < flags.

    ``config_file`` None means ``PBX_SLA_CONFIG`` or ``./pbx-sla.toml``; a missing *default* file is not
    an error, a missing file that was named explicitly is.
    """
    env = os.environ if environ is None else environ
    explicit = config_file is not None or bool(env.get("PBX_SLA_CONFIG"))
    path = Path(config_file) if config_file is not None else Path(env.get("PBX_SLA_CONFIG") or DEFAULT_CONFIG)
    data: dict[str, Any] = {}
    used: Path | None = None
    if path.exists():
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        used = path
    elif explicit:
        raise ConfigError(f"{path}: configuration file not found")
    file = str(path)
    _check_keys(data, "", file)

    database = _get(data, "database", dict, file, {})
    _check_keys(database, "database", f"{file}: [database]")
    if env.get("PBX_SLA_DSN"):
        dsn_text: str | None = env["PBX_SLA_DSN"]
        check_dsn(env["PBX_SLA_DSN"], "environment variable PBX_SLA_DSN")
    else:
        dsn_text = _get(database, "dsn", str, f"{file}: [database]")
        if dsn_text:
            check_dsn(dsn_text, f"{file}: [database] key 'dsn'")
    dsn = Secret(dsn_text) if dsn_text else None

    daemon = _get(data, "daemon", dict, file, {})
    _check_keys(daemon, "daemon", f"{file}: [daemon]")
    data_dir_text = env.get("PBX_SLA_DATA_DIR") or _get(daemon, "data_dir", str, f"{file}: [daemon]")
    data_dir = Path(data_dir_text) if data_dir_text else default_data_dir()
    max_memory = int(_count(daemon, "max_memory", f"{file}: [daemon]", 100_000, 1000, 10_000_000) or 0)

    agi = _get(data, "agi", dict, file, {})
    _check_keys(agi, "agi", f"{file}: [agi]")
    listen = env.get("PBX_SLA_AGI_LISTEN") or _get(agi, "listen", str, f"{file}: [agi]", DEFAULT_AGI_LISTEN)
    agi_host, agi_port = parse_listen(listen, f"{file}: [agi] key 'listen'")
    agi_options = _parse_agi_options(agi, f"{file}: [agi]")

    base = path.parent if used else Path.cwd()
    servers = _parse_asterisk(data.get("asterisk", []), file, base)
    http = _parse_http(_get(data, "http", dict, file, {}), env, f"{file}: [http]", base)

    retention = _parse_retention(_get(data, "retention", dict, file, {}), f"{file}: [retention]")

    level = (log_level or env.get("PBX_SLA_LOG_LEVEL") or _get(data, "log_level", str, file, "info")).lower()
    if level not in {"debug", "info", "warning", "error", "critical"}:
        raise ConfigError(f"{file}: key 'log_level': unknown level {level!r}")

    return Settings(
        config_file=used,
        dsn=dsn,
        data_dir=data_dir,
        max_memory=max_memory,
        asterisk=servers,
        agi_host=agi_host,
        agi_port=agi_port,
        log_level=level,
        agi=agi_options,
        http=http,
        retention=retention,
    )
