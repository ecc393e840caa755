"""Settings: defaults < file < environment < flags; errors name the file and key; secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_sla.config import Secret, load_settings, parse_listen
from pbx_sla.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pbx-sla.toml"
    path.write_text(text)
    return path


def test_missing_default_file_is_not_an_error(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.config_file is None
    assert settings.dsn is None and settings.embedded
    assert (settings.agi_host, settings.agi_port) == ("127.0.0.1", 4573)
    assert settings.asterisk == ()


def test_missing_named_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="nope2"):
        load_settings(environ={"PBX_SLA_CONFIG": str(tmp_path / "nope2.toml")})


def test_spec_example_parses_and_env_dsn_wins(tmp_path) -> None:
    secret_file = tmp_path / "pbx1.secret"
    secret_file.write_text("s3cret-value\n")
    path = write(
        tmp_path,
        f"""
[database]
dsn = "postgresql://pbx_sla@127.0.0.1:5432/pbx_sla"

[[asterisk]]
name = "pbx1"
host = "127.0.0.1"
port = 5038
username = "pbx-sla"
secret_file = "{secret_file}"

[agi]
listen = "127.0.0.1:4573"
""",
    )
    settings = load_settings(path, environ={})
    assert settings.dsn == Secret("postgresql://pbx_sla@127.0.0.1:5432/pbx_sla")
    (server,) = settings.asterisk
    assert server.name == "pbx1" and server.port == 5038
    assert server.secret.reveal() == "s3cret-value"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(server)
    env = load_settings(path, environ={"PBX_SLA_DSN": "postgresql://other/db"})
    assert env.dsn is not None and env.dsn.reveal() == "postgresql://other/db"


def test_relative_secret_file_is_read_beside_the_config(tmp_path) -> None:
    (tmp_path / "x.secret").write_text("abc")
    path = write(tmp_path, '[[asterisk]]\nname = "a"\nsecret_file = "x.secret"\n')
    assert load_settings(path, environ={}).asterisk[0].secret.reveal() == "abc"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[asterisk]]\nname = "a"\nport = "5038"\n', "asterisk[0]: key 'port' must be int"),
        ('[[asterisk]]\nname = "a"\nport = 70000\n', "asterisk[0]: key 'port' must be an integer from 1 to 65535"),
        ('[[asterisk]]\nhost = "h"\n', "asterisk[0]: key 'name' is required"),
        ('[[asterisk]]\nname = "a"\n[[asterisk]]\nname = "a"\n', "asterisk[1]: key 'name': duplicate"),
        ('[[asterisk]]\nname = "a"\nsecret = "x"\nsecret_file = "y"\n', "either 'secret' or 'secret_file'"),
        ('[[asterisk]]\nname = "a"\nsecret_file = "/nonexistent/s"\n', "key 'secret_file': cannot read"),
        ('[[asterisk]]\nname = "a"\ntimezone = "Mars/Base"\n', "key 'timezone': unknown time zone"),
        ('[[asterisk]]\nname = "a"\nsecrte = "x"\n', "unknown key(s) secrte"),
        ('[agi]\nlisten = "4573"\n', "[agi] key 'listen': expected HOST:PORT"),
        ("[database]\ndsn = 5\n", "key 'dsn' must be str"),
        ("bogus = 1\n", "unknown key(s) bogus"),
        ("[database\n", "not valid TOML"),
        ('log_level = "loud"\n', "key 'log_level'"),
    ],
)
def test_errors_name_the_key(tmp_path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_wrong_secret_is_never_in_an_error(tmp_path) -> None:
    path = write(tmp_path, '[[asterisk]]\nname = "a"\nsecret = "hunter2"\nport = "x"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "hunter2" not in str(info.value)


def test_parse_listen() -> None:
    assert parse_listen("0.0.0.0:4573", "x") == ("0.0.0.0", 4573)
    assert parse_listen("[::1]:4573", "x") == ("::1", 4573)
    for bad in ("", ":1", "h:", "h:0", "h:99999", "h:x"):
        with pytest.raises(ConfigError):
            parse_listen(bad, "x")


def test_flag_log_level_wins(tmp_path) -> None:
    path = write(tmp_path, 'log_level = "warning"\n')
    assert load_settings(path, environ={}).log_level == "warning"
    assert load_settings(path, environ={"PBX_SLA_LOG_LEVEL": "error"}).log_level == "error"
    assert load_settings(path, log_level="debug", environ={"PBX_SLA_LOG_LEVEL": "error"}).log_level == "debug"


def test_agi_limits_and_peers(tmp_path) -> None:
    path = write(
        tmp_path,
        "[agi]\nheader_timeout = 2\nsession_timeout = 30.5\nmax_sessions = 500\npin_caller_limit = 3\n"
        "pin_tenant_limit = 10\npin_global_limit = 40\npin_window_seconds = 600\n"
        '[[asterisk]]\nname = "a"\nhost = "pbx.example"\nagi_peers = ["10.0.0.5", "192.168.1.7/24"]\n',
    )
    s = load_settings(path, environ={})
    a = s.agi
    assert (a.header_timeout, a.session_timeout, a.max_sessions) == (2.0, 30.5, 500)
    assert (a.pin_caller_limit, a.pin_tenant_limit, a.pin_global_limit, a.pin_window_seconds) == (3, 10, 40, 600.0)
    assert s.asterisk[0].agi_peers == ("10.0.0.5/32", "192.168.1.0/24")
    d = load_settings(write(tmp_path, ""), environ={}).agi
    assert (d.header_timeout, d.session_timeout, d.max_sessions, d.pin_caller_limit) == (5.0, 60.0, None, 5)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[agi]\nsession_timeout = 0\n", "[agi]: key 'session_timeout' must be a number from 1 to 3600"),
        ("[agi]\nheader_timeout = nan\n", "[agi]: key 'header_timeout' must be a number"),
        ("[agi]\nmax_sessions = 0\n", "[agi]: key 'max_sessions' must be an integer from 1"),
        ("[agi]\npin_caller_limit = true\n", "[agi]: key 'pin_caller_limit' must be an integer"),
        ('[[asterisk]]\nname = "a"\nagi_peers = ["pbx.example"]\n', "key 'agi_peers'[0]: not an IP address"),
        ('[[asterisk]]\nname = "a"\nagi_peers = "10.0.0.5"\n', "key 'agi_peers' must be list"),
    ],
)
def test_agi_option_errors_name_the_key(tmp_path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert needle in str(info.value)


# -- issue 13: no secret echoed, DSNs and numeric ranges checked -------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["12345678", "12345678.5", "true", "[1234, 5678]", "{ a = 12345678 }", "1979-05-27"],
)
def test_a_secret_of_the_wrong_type_is_refused_without_showing_it(tmp_path, value) -> None:
    path = write(tmp_path, f'[[asterisk]]\nname = "pbx1"\nsecret = {value}\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert "key 'secret'" in message and "value not shown" in message
    for part in ("12345678", "5678", "1979"):
        assert part not in message


def test_a_dsn_of_the_wrong_type_is_refused_without_showing_it(tmp_path) -> None:
    path = write(tmp_path, "[database]\ndsn = 987654321\n")
    with pytest.raises(ConfigError, match="key 'dsn'") as info:
        load_settings(path, environ={})
    assert "987654321" not in str(info.value)


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("[bad", "must start with postgresql://"),
        ("postgresql://u:pw-SECRET@[bad/db", "not a valid URL"),
        ("mysql://u:pw-SECRET@host/db", "got 'mysql://'"),
        ("postgresql://u:pw-SECRET@host/db?sslmode=bogus", "sslmode must be one of"),
        ("postgresql://u:pw-SECRET@host:99999/db", "port of host"),
        ("postgresql://u:pw-SECRET@host:abc/db", "port of host"),
        ("postgresql://u:pw-SECRET@host/db?sslmode", "query part"),
    ],
)
def test_a_malformed_dsn_is_a_config_error_naming_the_key_not_the_password(tmp_path, dsn, expected) -> None:
    path = write(tmp_path, f'[database]\ndsn = "{dsn}"\n')
    with pytest.raises(ConfigError, match="key 'dsn'") as info:
        load_settings(path, environ={})
    assert expected in str(info.value) and "SECRET" not in str(info.value)
    with pytest.raises(ConfigError, match="PBX_SLA_DSN") as info:
        load_settings(environ={"PBX_SLA_DSN": dsn, "PBX_SLA_CONFIG": str(write(tmp_path, ""))})
    assert expected in str(info.value) and "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://pbx_sla@127.0.0.1:5432/pbx_sla",
        "postgres://u:p%40ss@db.example:5433/x?sslmode=verify-full&connect_timeout=5",
        "postgresql:///pbx_sla?host=/var/run/postgresql",
        "postgresql://u@h1:5432,h2:5433/db",
        "postgresql://u@[::1]:5432/db",
        "postgresql://u@[::1]/db",
    ],
)
def test_good_dsns_are_accepted(tmp_path, dsn) -> None:
    settings = load_settings(write(tmp_path, f'[database]\ndsn = "{dsn}"\n'), environ={})
    assert settings.dsn is not None and settings.dsn.reveal() == dsn


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("ping_interval = 0", "ping_interval"),
        ("ping_interval = 0.5", "ping_interval"),
        ("ping_interval = nan", "ping_interval"),
        ("ping_interval = inf", "ping_interval"),
        ("ping_interval = -10", "ping_interval"),
        ("action_timeout = 0", "action_timeout"),
        ("action_timeout = -inf", "action_timeout"),
        ("action_timeout = nan", "action_timeout"),
        ("action_timeout = 100000", "action_timeout"),
        ("port = 0", "port"),
        ("port = 70000", "port"),
    ],
)
def test_out_of_range_numbers_are_refused_naming_the_key(tmp_path, line, key) -> None:
    path = write(tmp_path, f'[[asterisk]]\nname = "pbx1"\n{line}\n')
    with pytest.raises(ConfigError, match=rf"asterisk\[0\]: key '{key}' must be (a number|an integer) from"):
        load_settings(path, environ={})


def test_numbers_in_range_are_accepted(tmp_path) -> None:
    path = write(tmp_path, '[[asterisk]]\nname = "pbx1"\nping_interval = 1\naction_timeout = 0.5\nport = 1\n')
    (server,) = load_settings(path, environ={}).asterisk
    assert (server.ping_interval, server.action_timeout, server.port) == (1.0, 0.5, 1)


def test_cli_malformed_dsn_exits_2_with_a_message_and_no_traceback(tmp_path, monkeypatch, capsys) -> None:
    from pbx_sla.cli import main

    monkeypatch.chdir(tmp_path)
    for dsn in ("[bad", "mysql://u:pw-SECRET@h/db", "postgresql://u:pw-SECRET@h/db?sslmode=bogus"):
        monkeypatch.setenv("PBX_SLA_DSN", dsn)
        assert main(["status"]) == 2
        err = capsys.readouterr().err
        assert "PBX_SLA_DSN" in err and "Traceback" not in err and "SECRET" not in err


def test_daemon_max_memory_is_a_ranged_integer(tmp_path) -> None:
    assert load_settings(write(tmp_path, "[daemon]\nmax_memory = 5000\n"), environ={}).max_memory == 5000
    assert load_settings(write(tmp_path, ""), environ={}).max_memory == 100_000
    for bad in ("0", "999", "20000000", "5000.5", "nan"):
        with pytest.raises(ConfigError, match=r"\[daemon\]: key 'max_memory'"):
            load_settings(write(tmp_path, f"[daemon]\nmax_memory = {bad}\n"), environ={})
