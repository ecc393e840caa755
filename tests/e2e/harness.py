"""End-to-end harness: a real Asterisk 22 (the chroot sandbox or an external target), sipp peers
and callers, a tiny FastAGI listener and a tiny AMI client.

Only the standard library: the fixtures in ``conftest.py`` wrap these classes.

Target selection (see docs/docker.md):
  * ``PBX_SLA_E2E_AMI`` (host:port), ``PBX_SLA_E2E_SIP`` (host:port), ``PBX_SLA_E2E_AGI`` (host:port the
    target's dialplan sends FastAGI to), ``PBX_SLA_E2E_AMI_USER`` / ``PBX_SLA_E2E_AMI_SECRET``: an external
    Asterisk (e.g. docker/compose.yaml) rendered with the same asterisk_conf/;
  * otherwise ``scripts/asterisk-sandbox`` builds (once, cached) and starts Asterisk in a Debian sid root.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SANDBOX = REPO / "scripts" / "asterisk-sandbox"
SIPP_DIR = REPO / "scripts" / "sipp"
DTMF_DIR = Path("/usr/share/sip-tester")
STATE_DIR = REPO / ".cache" / "asterisk-sandbox"

ESSENTIAL_MODULES = (
    "res_pjsip.so",
    "chan_pjsip.so",
    "res_pjsip_endpoint_identifier_ip.so",
    "res_agi.so",
    "res_speech.so",
    "app_queue.so",
    "app_dial.so",
    "app_userevent.so",
    "cdr_manager.so",
    "func_cdr.so",
    "bridge_simple.so",
    "bridge_native_rtp.so",
    "pbx_config.so",
)


# Log lines at boot that are not about our configuration:
#   pjproject notes that a SIP module (PubSub) registered while the SIP stack was already running;
#   it depends on thread timing at load, is harmless, and Debian's stock setup shows it as well.
BENIGN_BOOT = ("registered during operation",)
# Logged by Asterisk when tests provoke failures on purpose: the FastAGI server is down (res_agi.c:
# "Connecting to ... failed", "FastAGI failed"), a dialled trunk has no reachable contact.
EXPECTED_RUNTIME = ("res_agi.c", "Could not create dialog to invalid URI", "Failed to create outgoing session")


class NotSandboxed(RuntimeError):
    """The operation needs the local sandbox (e.g. CLI access) but the target is external."""


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{what} must be host:port, got {value!r}")
    return host, int(port)


def sandbox_settings(extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The sandbox's resolved settings (``scripts/asterisk-sandbox env``): one source of defaults."""
    env = {**os.environ, **(extra_env or {})}
    out = subprocess.run([str(SANDBOX), "env"], env=env, capture_output=True, text=True, check=True, timeout=30)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


# --------------------------------------------------------------------------------------------------
# The Asterisk under test
# --------------------------------------------------------------------------------------------------


@dataclass
class AsteriskTarget:
    """What tests need to know about the Asterisk under test (the ``asterisk`` fixture)."""

    server_name: str
    ami_host: str
    ami_port: int
    ami_username: str
    ami_secret: str
    sip_host: str
    sip_port: int
    agi_host: str
    agi_port: int
    sandbox: bool
    # where the sipp peers must run for the rendered pjsip.conf (identify by IP:port)
    peer_host: str = "127.0.0.1"
    peer_ports: dict[str, int] = field(default_factory=dict)  # trunk-a, trunk-b, agent1, agent2, staff
    qualify_frequency: float = 2.0
    qualify_timeout: float = 1.0
    messages_log: Path | None = None
    master_csv: Path | None = None  # cdr_csv's Master.csv (sandbox only)
    boot_seconds: float | None = None
    boot_problems: list[str] = field(default_factory=list)  # ERROR/WARNING lines logged while booting
    _env: dict[str, str] = field(default_factory=dict, repr=False)

    def cli(self, command: str, timeout: float = 30) -> str:
        """Run an Asterisk CLI command (``asterisk -rx``); only in the sandbox."""
        if not self.sandbox:
            raise NotSandboxed("CLI access needs the local sandbox")
        out = subprocess.run(
            [str(SANDBOX), "cli", command],
            env={**os.environ, **self._env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed: {out.stderr.strip()}")
        return out.stdout

    def log_offset(self) -> int:
        """Current size of messages.log: pass it as ``since=`` to look only at later lines."""
        if not self.messages_log or not self.messages_log.exists():
            return 0
        return self.messages_log.stat().st_size

    def log_problems(self, since: int = 0) -> list[str]:
        """ERROR/WARNING lines in the sandbox's messages.log (from byte offset ``since``)."""
        if not self.messages_log or not self.messages_log.exists():
            return []
        with self.messages_log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        return [line for line in text.splitlines() if re.search(r"\b(ERROR|WARNING)\[", line)]

    def unexpected_problems(self, allow: Iterable[str] = (), since: int = 0) -> list[str]:
        """ERROR/WARNING lines so far (from byte offset ``since``) except the benign boot lines, what
        tests provoke on purpose (``EXPECTED_RUNTIME``: FastAGI server down, dialling a trunk that is down)
        and the extra substrings in ``allow``."""
        allow = (*allow, *EXPECTED_RUNTIME)
        allow = (*allow, *BENIGN_BOOT)
        return [line for line in self.log_problems(since) if not any(a in line for a in allow)]

    def ami(self, **kwargs) -> AmiClient:
        """A logged-in AMI client as the pbx-sla user."""
        return AmiClient(self.ami_host, self.ami_port, self.ami_username, self.ami_secret, **kwargs)


def external_target() -> AsteriskTarget | None:
    """The PBX_SLA_E2E_* target, or None when the sandbox is to be used."""
    ami = os.environ.get("PBX_SLA_E2E_AMI")
    if not ami:
        return None
    missing = [v for v in ("PBX_SLA_E2E_SIP", "PBX_SLA_E2E_AGI", "PBX_SLA_E2E_AMI_SECRET") if not os.environ.get(v)]
    if missing:
        raise ValueError(f"PBX_SLA_E2E_AMI is set: also set {', '.join(missing)}")
    settings = sandbox_settings()
    ami_host, ami_port = _host_port(ami, "PBX_SLA_E2E_AMI")
    sip_host, sip_port = _host_port(os.environ["PBX_SLA_E2E_SIP"], "PBX_SLA_E2E_SIP")
    agi_host, agi_port = _host_port(os.environ["PBX_SLA_E2E_AGI"], "PBX_SLA_E2E_AGI")
    return AsteriskTarget(
        server_name=os.environ.get("PBX_SLA_E2E_SERVER_NAME", "pbx1"),
        ami_host=ami_host,
        ami_port=ami_port,
        ami_username=os.environ.get("PBX_SLA_E2E_AMI_USER", "pbx-sla"),
        ami_secret=os.environ["PBX_SLA_E2E_AMI_SECRET"],
        sip_host=sip_host,
        sip_port=sip_port,
        agi_host=agi_host,
        agi_port=agi_port,
        sandbox=False,
        **_peer_fields(settings),
    )


def _peer_fields(s: Mapping[str, str]) -> dict:
    return {
        "peer_host": s["PEER_HOST"],
        "peer_ports": {
            "trunk-a": int(s["TRUNK_A_PORT"]),
            "trunk-b": int(s["TRUNK_B_PORT"]),
            "agent1": int(s["AGENT1_PORT"]),
            "agent2": int(s["AGENT2_PORT"]),
            "staff": int(s["STAFF_PORT"]),
        },
        "qualify_frequency": float(s["QUALIFY_FREQUENCY"]),
        "qualify_timeout": float(s["QUALIFY_TIMEOUT"]),
    }


class Sandbox:
    """Build (cached), start and stop the chroot sandbox for one test session.

    A file lock serialises sessions on one machine (several engineers' test runs share the root).
    """

    def __init__(self, lock_timeout: float = 900):
        self.lock_timeout = lock_timeout
        self._lock_file = None
        self.target: AsteriskTarget | None = None

    def _run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        out = subprocess.run([str(SANDBOX), *args], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"asterisk-sandbox {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-4000:]}")
        return out

    def _lock(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(STATE_DIR / "session.lock", "w")  # noqa: SIM115
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("another test session holds the Asterisk sandbox") from None
                time.sleep(0.5)

    def start(self) -> AsteriskTarget:
        self._lock()
        self._run("build", timeout=1200)
        t0 = time.monotonic()
        self._run("start", timeout=180)
        boot = time.monotonic() - t0
        s = sandbox_settings()
        agi_host, agi_port = _host_port(s["AGI_ADDRESS"], "PBX_SLA_SANDBOX_AGI_ADDRESS")
        target = AsteriskTarget(
            server_name="pbx1",
            ami_host=s["AMI_BIND"],
            ami_port=int(s["AMI_PORT"]),
            ami_username=s["AMI_USER"],
            ami_secret=s["AMI_SECRET"],
            sip_host=s["SIP_BIND"],
            sip_port=int(s["SIP_PORT"]),
            agi_host=agi_host,
            agi_port=agi_port,
            sandbox=True,
            messages_log=Path(s["MESSAGES_LOG"]),
            master_csv=Path(s["MASTER_CSV"]),
            boot_seconds=boot,
            **_peer_fields(s),
        )
        target.boot_problems = [line for line in target.log_problems() if not any(b in line for b in BENIGN_BOOT)]
        self.target = target
        return target

    def stop(self) -> None:
        try:
            if os.environ.get("PBX_SLA_E2E_KEEP") != "1":
                self._run("stop", timeout=60)
        finally:
            if self._lock_file:
                self._lock_file.close()
                self._lock_file = None


# --------------------------------------------------------------------------------------------------
# AMI: a small threaded client (tests only; pbx-sla itself uses panoramisk)
# --------------------------------------------------------------------------------------------------


class AmiError(RuntimeError):
    pass


class AmiClient:
    """Logs in, keeps every event it receives, runs actions (list actions collect their items)."""

    def __init__(self, host: str, port: int, username: str, secret: str, *, timeout: float = 10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(None)
        self.events: list[dict[str, str]] = []
        self._responses: dict[str, list[dict[str, str]]] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        self.banner = ""
        self._reader = threading.Thread(target=self._read_loop, name="ami-reader", daemon=True)
        self._reader.start()
        resp = self.action({"Action": "Login", "Username": username, "Secret": secret}, timeout=timeout)
        if resp[0].get("Response") != "Success":
            self.close()
            raise AmiError(f"AMI login failed: {resp[0].get('Message')}")

    # -- reading
    def _read_loop(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                if not self.banner and b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    self.banner = line.decode(errors="replace")
                while b"\r\n\r\n" in buf:
                    raw, buf = buf.split(b"\r\n\r\n", 1)
                    self._dispatch(self._parse(raw.decode("utf-8", errors="replace")))
        except OSError:
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    @staticmethod
    def _parse(text: str) -> dict[str, str]:
        msg: dict[str, str] = {}
        for line in text.split("\r\n"):
            key, sep, value = line.partition(":")
            if sep:
                msg.setdefault(key.strip(), value.strip())
        return msg

    def _dispatch(self, msg: dict[str, str]) -> None:
        with self._cond:
            aid = msg.get("ActionID")
            if aid is not None and aid in self._responses:
                self._responses[aid].append(msg)
            elif "Event" in msg:
                self.events.append(msg)
            self._cond.notify_all()

    # -- actions
    def action(self, fields: Mapping[str, str], timeout: float = 10) -> list[dict[str, str]]:
        """Send an action; return [response, list items..., ...Complete] (or [response])."""
        aid = f"e2e-{next(self._ids)}"
        with self._cond:
            self._responses[aid] = []
        payload = "".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": aid}.items()) + "\r\n"
        self.sock.sendall(payload.encode())
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = self._responses[aid]
                if got:
                    first = got[0]
                    is_list = first.get("EventList") == "start"
                    if not is_list or (len(got) > 1 and got[-1].get("EventList") == "Complete"):
                        return self._responses.pop(aid)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise TimeoutError(f"no complete answer to {fields.get('Action')} (got {got})")
                self._cond.wait(left)

    def wait_event(
        self,
        name: str | None = None,
        *,
        timeout: float = 10,
        where: Callable[[dict[str, str]], bool] | None = None,
        start: int = 0,
        **fields: str,
    ) -> dict[str, str]:
        """First event (from index ``start`` of ``events``) with this name and these exact field values."""

        def match(ev: dict[str, str]) -> bool:
            if name is not None and ev.get("Event") != name:
                return False
            if any(ev.get(k) != v for k, v in fields.items()):
                return False
            return where is None or where(ev)

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[start:]:
                    if match(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    seen = sorted({e.get("Event", "?") for e in self.events[start:]})
                    raise TimeoutError(f"no {name} event with {fields} within {timeout}s; saw {seen}")
                self._cond.wait(left)

    def mark(self) -> int:
        """Index to pass as ``start=`` so that only later events count."""
        with self._cond:
            return len(self.events)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> AmiClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_contact_status(ami: AmiClient, endpoint: str, status: str, timeout: float = 15) -> None:
    """Poll PJSIPShowEndpoint until a contact of ``endpoint`` has this Status (Reachable/Unreachable)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        items = ami.action({"Action": "PJSIPShowEndpoint", "Endpoint": endpoint})
        contacts = [m for m in items if m.get("Event") == "ContactStatusDetail"]
        last = [c.get("Status") for c in contacts]
        if any(c.get("Status") == status for c in contacts):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{endpoint}: contact status {last}, wanted {status}")


# --------------------------------------------------------------------------------------------------
# FastAGI listener (harness tests only; the real server is pbx_sla/agi/)
# --------------------------------------------------------------------------------------------------


def agi_quote(value: str) -> str:
    """Quote a value for an AGI command: no line breaks, backslash and double quote escaped."""
    value = value.replace("\r", " ").replace("\n", " ")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class AgiSession:
    headers: dict[str, str]
    replies: list[tuple[str, str]] = field(default_factory=list)  # (command, reply line)
    error: str | None = None


class FastAgiListener:
    """A thread-based FastAGI server for tests.

    ``variables``: dict of channel variables to set, or a callable ``(headers) -> dict``.
    ``script``: optional callable ``(session, command) -> None`` run after the variables, where
    ``command(text) -> reply line`` sends any AGI command (e.g. ``GET DATA``).
    """

    def __init__(
        self,
        host: str,
        port: int,
        variables: Mapping[str, str] | Callable[[dict[str, str]], Mapping[str, str]] | None = None,
        script: Callable[[AgiSession, Callable[[str], str]], None] | None = None,
    ):
        self.variables = variables or {}
        self.script = script
        self.sessions: list[AgiSession] = []
        self._cond = threading.Condition()
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((host, port))
        self._srv.listen(16)
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, name="fastagi", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        reader = conn.makefile("rb")
        session = AgiSession(headers={})
        try:
            while True:
                line = reader.readline()
                if not line:
                    raise ConnectionError("closed during headers")
                text = line.decode("utf-8", errors="replace").rstrip("\r\n")
                if not text:
                    break
                key, _, value = text.partition(":")
                session.headers[key.strip()] = value.strip()

            def command(cmd: str) -> str:
                conn.sendall((cmd + "\n").encode())
                reply = reader.readline().decode("utf-8", errors="replace").rstrip("\r\n")
                if reply.startswith("HANGUP"):
                    # asynchronous hangup notice: the real reply follows
                    reply = reader.readline().decode("utf-8", errors="replace").rstrip("\r\n")
                session.replies.append((cmd, reply))
                return reply

            variables = self.variables(session.headers) if callable(self.variables) else self.variables
            for name, value in variables.items():
                command(f"SET VARIABLE {name} {agi_quote(str(value))}")
            if self.script:
                self.script(session, command)
        except (OSError, ConnectionError) as exc:
            session.error = str(exc)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._cond:
                self.sessions.append(session)
                self._cond.notify_all()

    def wait_session(self, timeout: float = 15) -> AgiSession:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.sessions:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no FastAGI connection arrived")
                self._cond.wait(left)
            return self.sessions[0]

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._srv.shutdown(socket.SHUT_RDWR)
        self._srv.close()

    def __enter__(self) -> FastAgiListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# sipp
# --------------------------------------------------------------------------------------------------

_media_ports = itertools.count(0)


def _next_media_port() -> int:
    # sipp binds audio RTP/RTCP and video RTP/RTCP from -mp (4 ports): 10 apart per process
    return 17000 + 10 * (next(_media_ports) % 90)


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def dtmf_pcap(digits: str, path: Path, gap_ms: int = 400) -> float:
    """Write one pcap with RFC 2833 events for ``digits`` built from Debian's dtmf_2833_*.pcap.

    The stock files each carry fixed RTP sequence numbers and timestamps (digit 1 has lower numbers
    than digit 4, a repeated digit repeats them): played one after the other, Asterisk drops the
    "old" or duplicate events. Here the packets are renumbered to run forward. Returns the seconds
    the pcap lasts.
    """
    import struct

    names = {"*": "star", "#": "pound"}
    out = bytearray()
    header = None
    seq = 1000
    rtp_ts = 8000
    t = 0.0
    for digit in digits:
        src = DTMF_DIR / f"dtmf_2833_{names.get(digit, digit)}.pcap"
        if not src.exists():
            raise ValueError(f"no DTMF pcap for {digit!r}")
        data = src.read_bytes()
        header = header or data[:24]
        off, first = 24, None
        while off + 16 <= len(data):
            sec, usec, incl, _orig = struct.unpack("<IIII", data[off : off + 16])
            pkt = bytearray(data[off + 16 : off + 16 + incl])
            off += 16 + incl
            when = sec + usec / 1e6
            first = when if first is None else first
            rtp = len(pkt) - 16  # 12 bytes RTP header + 4 bytes telephone-event
            pkt[rtp - 2 : rtp] = b"\0\0"  # UDP checksum: none
            struct.pack_into("!HI", pkt, rtp + 2, seq & 0xFFFF, rtp_ts)
            seq += 1
            at = t + (when - first)
            out += struct.pack("<IIII", int(at), int((at % 1) * 1e6), len(pkt), len(pkt)) + pkt
        t += gap_ms / 1000
        rtp_ts += 8 * gap_ms
    path.write_bytes((header or b"") + bytes(out))
    return t


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if not path:
        raise RuntimeError("sipp not found: apt-get install -y sip-tester")
    return path


class SippPeer:
    """A long-running sipp UAS (scripts/sipp/peer_uas.xml): answers OPTIONS and INVITE/BYE; with
    ``scenario="agent_ringing.xml"`` an agent phone that rings and is never picked up."""

    def __init__(
        self, name: str, host: str, port: int, target: AsteriskTarget, workdir: Path, scenario: str = "peer_uas.xml"
    ):
        self.name, self.host, self.port, self.scenario = name, host, port, scenario
        self.target = target
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"peer-{name}.log"

    def start(self) -> SippPeer:
        if self.proc and self.proc.poll() is None:
            return self
        cmd = [
            sipp_binary(), "-sf", str(SIPP_DIR / self.scenario),
            "-i", self.host, "-p", str(self.port), "-mp", str(_next_media_port()),
            "-nostdin", "-trace_err", "-error_file", str(self.workdir / f"peer-{self.name}-errors.log"),
            f"{self.target.sip_host}:{self.target.sip_port}",
        ]  # fmt: skip
        self._out = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp peer {self.name} exited at once: {self.log.read_text(errors='replace')[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_out", None):
            self._out.close()
            self._out = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class CallResult:
    returncode: int
    stdout: str
    stderr: str
    remote_hangup: bool  # Asterisk sent the BYE (the caller did not hang up itself)
    seconds: float
    caller: str
    exten: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class SippCall:
    """A running sipp UAC call; ``wait()`` returns a CallResult."""

    def __init__(self, proc: subprocess.Popen, caller: str, exten: str, workdir: Path, tag: str, timeout: float):
        self.proc, self.caller, self.exten, self.workdir, self.tag = proc, caller, exten, workdir, tag
        self.timeout = timeout
        self.t0 = time.monotonic()

    def wait(self) -> CallResult:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        logs = "".join(p.read_text(errors="replace") for p in self.workdir.glob(f"{self.tag}*_logs.log"))
        return CallResult(
            returncode=self.proc.returncode,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace") + "".join(
                p.read_text(errors="replace") for p in self.workdir.glob(f"{self.tag}*_errors.log")),
            remote_hangup="REMOTE_BYE" in logs,
            seconds=time.monotonic() - self.t0,
            caller=self.caller,
            exten=self.exten,
        )  # fmt: skip


class Sipp:
    """The ``sipp`` fixture: trunk peers, agents and callers against the target; all killed at teardown."""

    def __init__(self, target: AsteriskTarget, workdir: Path):
        self.target = target
        self.workdir = workdir
        self.peers: dict[str, SippPeer] = {}
        self.calls: list[SippCall] = []
        self._seq = itertools.count(1)

    def _peer(self, name: str, scenario: str = "peer_uas.xml") -> SippPeer:
        if name in self.peers and self.peers[name].scenario != scenario:
            self.peers.pop(name).stop()
        if name not in self.peers:
            if name not in self.target.peer_ports:
                raise KeyError(f"no peer port for {name!r} (known: {sorted(self.target.peer_ports)})")
            self.peers[name] = SippPeer(name, self.target.peer_host, self.target.peer_ports[name], self.target,
                                        self.workdir, scenario)  # fmt: skip
        return self.peers[name]

    def trunk_peer(self, name: str) -> SippPeer:
        """The carrier side of trunk ``name`` (trunk-a, trunk-b): answers qualify OPTIONS and outbound INVITEs."""
        return self._peer(name)

    def agent(self, name: str, *, answers: bool = True) -> SippPeer:
        """The phone of agent ``name`` (agent1, agent2): answers queue calls (and qualify OPTIONS); with
        ``answers=False`` it rings and is never picked up (callers in the queue end up abandoning)."""
        return self._peer(name, "peer_uas.xml" if answers else "agent_ringing.xml")

    def _render(self, template: str, caller: str, dtmf: str | None, hold_seconds: float,
                dtmf_delay: float, audio: tuple[Path, float] | None = None) -> Path:  # fmt: skip
        if not re.fullmatch(r"[+0-9A-Za-z*#._-]+", caller):
            raise ValueError(f"caller number {caller!r}: only [+0-9A-Za-z*#._-]")
        n = next(self._seq)
        block = ""
        if dtmf:
            if not re.fullmatch(r"[0-9*#]+", dtmf):
                raise ValueError(f"DTMF digits {dtmf!r}: only 0-9 * #")
            pcap = self.workdir / f"call-{n}-dtmf.pcap"
            seconds = dtmf_pcap(dtmf, pcap)
            block = "\n".join([
                "  <!-- wait for the prompt, then play the digits (RFC 2833) -->",
                f'  <recv request="BYE" timeout="{int(dtmf_delay * 1000)}" ontimeout="dtmf" next="remote_bye" />',
                '  <label id="dtmf" />',
                f'  <nop><action><exec play_pcap_audio="{pcap}" /></action></nop>',
                f'  <recv request="BYE" timeout="{int(seconds * 1000) + 200}" ontimeout="dtmf_done"'
                ' next="remote_bye" />',
                '  <label id="dtmf_done" />',
            ])  # fmt: skip
        if audio is not None:
            pcap, seconds = audio
            block += "\n".join([
                "  <!-- play the RTP stream (a pcap of known quality), stay until it is sent -->",
                f'  <nop><action><exec play_pcap_audio="{pcap}" /></action></nop>',
                f'  <recv request="BYE" timeout="{int(seconds * 1000) + 500}" ontimeout="audio_done"'
                ' next="remote_bye" />',
                '  <label id="audio_done" />',
            ])  # fmt: skip
        text = (SIPP_DIR / template).read_text()
        text = text.replace("@CALLER@", caller).replace("@DTMF@", block)
        text = text.replace("@HOLD_MS@", str(max(1, int(hold_seconds * 1000))))
        path = self.workdir / f"call-{n}-{template}"
        path.write_text(text)
        return path

    def start_call(
        self,
        caller_number: str,
        exten: str,
        *,
        dtmf: str | None = None,
        hold_seconds: float = 2,
        expect_answer: bool = True,
        source: str = "public",
        dtmf_delay: float = 1.0,
        timeout: float = 60,
        audio: tuple[Path, float] | None = None,
    ) -> SippCall:
        """Start a call without waiting. ``source``: "public" (any port: the anonymous endpoint,
        context support-public), "staff" (the staff phone's port: context staff, outbound route) or a
        trunk name ("trunk-a": its carrier's port, context from-trunk; do not run that trunk's peer at the
        same time; the caller answers Asterisk's qualify OPTIONS itself). ``audio``: (pcap, seconds) played
        after the answer (and the digits) with ``play_pcap_audio``."""
        template = "caller_uac.xml" if expect_answer else "caller_unanswered.xml"
        scenario = self._render(template, caller_number, dtmf, hold_seconds, dtmf_delay, audio)
        options: list[str] = []
        if source == "staff":
            port = self.target.peer_ports["staff"]
        elif source == "public":
            port = _free_udp_port(self.target.peer_host)
        elif source.startswith("trunk-") and source in self.target.peer_ports:
            port = self.target.peer_ports[source]
            options = ["-aa"]  # 200 OK to OPTIONS (qualify) instead of aborting the call
        else:
            raise ValueError(f"source must be 'public', 'staff' or a trunk name, not {source!r}")
        tag = scenario.stem
        cmd = [
            sipp_binary(), "-sf", str(scenario), "-s", exten,
            "-i", self.target.peer_host, "-p", str(port), "-mp", str(_next_media_port()),
            "-m", "1", "-l", "1", "-nostdin", *options, "-timeout", f"{int(timeout)}s", "-timeout_error",
            "-trace_err", "-error_file", str(self.workdir / f"{tag}_errors.log"),
            "-trace_logs", "-log_file", str(self.workdir / f"{tag}_logs.log"),
            f"{self.target.sip_host}:{self.target.sip_port}",
        ]  # fmt: skip
        if audio is not None and os.geteuid() == 0 and shutil.which("chrt"):
            # the stream's send times are the injected truth: keep the shared machine's load off them
            cmd = ["chrt", "-f", "10", *cmd]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=self.workdir, start_new_session=True)  # fmt: skip
        call = SippCall(proc, caller_number, exten, self.workdir, tag, timeout + 10)
        self.calls.append(call)
        return call

    def call(self, caller_number: str, exten: str, *, dtmf: str | None = None, hold_seconds: float = 2,
             expect_answer: bool = True, **kwargs) -> CallResult:  # fmt: skip
        """Place one call and wait for its end (see ``start_call``)."""
        return self.start_call(caller_number, exten, dtmf=dtmf, hold_seconds=hold_seconds,
                               expect_answer=expect_answer, **kwargs).wait()  # fmt: skip

    def close(self) -> None:
        for call in self.calls:
            if call.proc.poll() is None:
                call.proc.kill()
                call.proc.wait(5)
            for stream in (call.proc.stdout, call.proc.stderr):
                if stream:
                    stream.close()
        for peer in self.peers.values():
            peer.stop()


def all_names(events: Iterable[dict[str, str]]) -> list[str]:
    return [e.get("Event", "?") for e in events]
