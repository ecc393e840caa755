"""Metrics: the FastAGI instruments over real sockets, the daemon collector's families and label bounds,
``[http]`` settings and the HTTP authentication check."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_agi_server import agi, fake_call, headers, pin_answers  # noqa: F401  (agi is a fixture)

from pbx_sla.ami.collector import Collector, Router, ServerStatus
from pbx_sla.config import AsteriskServer, HttpSettings, Secret, load_settings
from pbx_sla.errors import ConfigError
from pbx_sla.reports.requests import Unreacted
from pbx_sla.web.metrics import AgiMetrics, DaemonMetrics, DatabaseFigures
from pbx_sla.web.server import authorised


def samples(source) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition (a registry's, or ``DaemonMetrics.render()``), keyed by (name, labels)."""
    text = (source.render() if isinstance(source, DaemonMetrics) else generate_latest(source)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_agi_decisions_latency_in_flight_and_lockouts(agi):  # noqa: F811
    metrics = agi.server.metrics = AgiMetrics()
    await fake_call(agi.port, headers())
    for i in range(2):  # 3 + 2 wrong PINs reach the limit of 5: one lockout
        await fake_call(agi.port, headers(caller="+420600111222", uniqueid=f"p{i}"), pin_answers(*["200 result=1"] * 3))
    await fake_call(agi.port, headers(caller="+420600111222", uniqueid="p3"))  # locked: not asked
    await asyncio.sleep(0.05)
    decisions = {
        tuple(s.labels.values()): s.value for s in metrics.decisions.collect()[0].samples if s.name.endswith("_total")
    }
    assert decisions == {
        ("queue", "authorised-number"): 1,
        ("general", "pin-failed"): 2,
        ("general", "pin-locked"): 1,
    }
    count = [s.value for s in metrics.latency.collect()[0].samples if s.name.endswith("_count")]
    assert count == [4]
    assert metrics.pin_lockouts._value.get() == 1
    assert metrics.in_flight._value.get() == 0


class State:
    def __init__(self, statuses, writer, figures) -> None:
        self.server_statuses, self.writer_figures, self.database_figures = statuses, writer, figures


def test_daemon_collector_families() -> None:
    s = ServerStatus("pbx1", "127.0.0.1", 5038, state="connected", reconnects=3, last_event_at=1700000000.5)
    s.event_counts.update({"ContactStatus": 7, "other": 2})
    down = ServerStatus("pbx2", "10.0.0.2", 5038, state="connecting")
    figures = DatabaseFigures(
        taken_at=1700000001.0,
        month="2026-11",
        trunks=({"server": "pbx1", "trunk": "trunk-a", "state": "down", "rtt_ms": None},
                {"server": "pbx1", "trunk": "trunk-b", "state": "up", "rtt_ms": 12.5},
                {"server": "pbx2", "trunk": "trunk-c", "state": None, "rtt_ms": None}),
        calls={("acme", "answered"): 5, ("(none)", "busy"): 1},
    )  # fmt: skip
    writer = {"memory": 4, "spooled": 10, "written": 99, "dead_letters": 2, "database": "up"}
    registry = DaemonMetrics(State([s, down], writer, figures))
    agi_metrics = registry.agi
    agi_metrics.decided("queue", "authorised-number", 12.0)
    got = samples(registry)
    assert got[("pbx_sla_ami_up", (("server", "pbx1"),))] == 1
    assert got[("pbx_sla_ami_up", (("server", "pbx2"),))] == 0
    assert got[("pbx_sla_ami_reconnects_total", (("server", "pbx1"),))] == 3
    assert got[("pbx_sla_ami_events_total", (("event", "ContactStatus"), ("server", "pbx1")))] == 7
    assert got[("pbx_sla_ami_events_total", (("event", "other"), ("server", "pbx1")))] == 2
    assert got[("pbx_sla_ami_last_event_timestamp_seconds", (("server", "pbx1"),))] == 1700000000.5
    assert got[("pbx_sla_writer_backlog_records", (("where", "memory"),))] == 4
    assert got[("pbx_sla_writer_backlog_records", (("where", "spooled"),))] == 10
    assert got[("pbx_sla_writer_dead_letters_total", ())] == 2
    assert got[("pbx_sla_writer_written_records_total", ())] == 99
    assert got[("pbx_sla_database_up", ())] == 1
    state = {k[1]: v for k, v in got.items() if k[0] == "pbx_sla_trunk_state"}
    assert state[(("server", "pbx1"), ("state", "down"), ("trunk", "trunk-a"))] == 1
    assert state[(("server", "pbx1"), ("state", "up"), ("trunk", "trunk-a"))] == 0
    assert state[(("server", "pbx2"), ("state", "unknown"), ("trunk", "trunk-c"))] == 1  # never seen
    assert sum(state.values()) == 3  # one state per trunk
    assert got[("pbx_sla_trunk_qualify_rtt_seconds", (("server", "pbx1"), ("trunk", "trunk-b")))] == 0.0125
    assert not any(k[0] == "pbx_sla_trunk_qualify_rtt_seconds" and ("trunk", "trunk-a") in k[1] for k in got)
    assert got[("pbx_sla_month_calls", (("disposition", "answered"), ("tenant", "acme")))] == 5
    assert got[("pbx_sla_agi_decisions_total", (("action", "queue"), ("reason", "authorised-number")))] == 1
    assert got[("pbx_sla_agi_decision_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("pbx_sla_agi_decision_seconds_bucket", (("le", "0.01"),))] == 0
    assert ("process_cpu_seconds_total", ()) in got


def test_without_database_figures_the_live_families_remain() -> None:
    registry = DaemonMetrics(State([], {}, None))
    names = {k[0] for k in samples(registry)}
    assert "pbx_sla_writer_backlog_records" in names and "pbx_sla_trunk_state" not in names


def test_collector_counts_events_by_handled_name_only() -> None:
    router = Router([{"ContactStatus": lambda server, event: ()}], lambda record: None)
    c = Collector(AsteriskServer("pbx1"), router, lambda record: None)
    for name in ("ContactStatus", "ContactStatus", "Newchannel", "VarSet", "caller-made-up"):
        c._on_event({"Event": name, "Timestamp": "1"})
    assert c.status.event_counts == {"ContactStatus": 2, "other": 3}


# --- [http] settings and authentication ---------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pbx-sla.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_http_defaults_loopback(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), environ={})
    assert s.http.listen == ("127.0.0.1", 9721) and not s.http.auth_required and s.http.refresh_seconds == 15


def test_http_keys_secret_files_and_env(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    (tmp_path / "pw").write_text("hunter2\n")
    s = load_settings(
        write(tmp_path, '[http]\nlisten = "[::1]:9800"\ntoken_file = "token"\nbasic_user = "ops"\n'
              'basic_password_file = "pw"\nrefresh_seconds = 2\n'),
        environ={},
    )  # fmt: skip
    assert s.http.listen == ("::1", 9800) and s.http.refresh_seconds == 2
    assert s.http.token == Secret("s3cret-token") and s.http.basic_password == Secret("hunter2")
    assert "s3cret" not in repr(s) and "hunter2" not in repr(s)
    off = load_settings(write(tmp_path, '[http]\nlisten = ""\n'), environ={})
    assert off.http.listen is None
    env = load_settings(write(tmp_path, ""), environ={"PBX_SLA_HTTP_LISTEN": "0.0.0.0:9999"})
    assert env.http.listen == ("0.0.0.0", 9999)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[http]\nlisten = "nope"\n', "[http] key 'listen'"),
        ('[http]\nbasic_user = "ops"\n', "go together"),
        ('[http]\ntoken = ""\n', "key 'token'"),
        ('[http]\ntoken = "a"\ntoken_file = "b"\n', "not both"),
        ('[http]\ntoken_file = "/nonexistent/x"\n', "token_file"),
        ("[http]\nrefresh_seconds = 0\n", "refresh_seconds"),
        ("[http]\nport = 1\n", "unknown key(s) port"),
    ],
)
def test_http_bad_settings_name_the_key(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_settings(write(tmp_path, text), environ={})
    assert words in str(info.value) and "[http]" in str(info.value)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_authorised() -> None:
    open_ = HttpSettings()
    assert authorised(open_, None)
    both = HttpSettings(token=Secret("tok"), basic_user="ops", basic_password=Secret("pw"))
    assert authorised(both, "Bearer tok") and authorised(both, "bearer tok")
    assert authorised(both, basic("ops", "pw"))
    for bad in (None, "", "Bearer tok2", "Bearer", basic("ops", "pw2"), basic("root", "pw"), "Basic !!!", "Digest x",
                "Basic " + base64.b64encode(b"opspw").decode()):  # fmt: skip
        assert not authorised(both, bad), bad
    token_only = HttpSettings(token=Secret("tok"))
    assert not authorised(token_only, basic("ops", "pw"))


def test_grafana_dashboard_uses_only_exported_metrics() -> None:
    """Every series name in docs/grafana-dashboard.json's queries is one /metrics exports."""
    import json
    import re

    s = ServerStatus("pbx1", "h", 1, state="connected", last_event_at=1.0)
    s.event_counts["other"] = 1
    figures = DatabaseFigures(1.0, "2026-11", ({"server": "a", "trunk": "b", "state": "up", "rtt_ms": 1.0},),
                              {("t", "answered"): 1}, {"t": Unreacted(2, 1)})  # fmt: skip
    registry = DaemonMetrics(State([s], {"database": "up"}, figures))
    instruments = registry.agi
    instruments.decided("queue", "authorised-number", 1.0)
    instruments.pin_lockouts.inc()
    exported = {k[0] for k in samples(registry)}
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"\bpbx_sla_[a-z_]+", e)}
    assert len(exprs) >= 15 and used
    assert used <= exported, used - exported
