"""A sans-IO FastAGI codec: bytes in, events out; commands out as bytes. No sockets, no event loop.

Asterisk opens a FastAGI session with ``agi_*: value`` lines ended by a blank line
(:class:`Headers`), then answers each command with one reply line ``200 result=X [(data)] [extra]``,
or ``510 ...`` (unknown command), ``511 ...`` (dead channel), or a multi-line
``520-...`` ... ``520 End of proper usage.`` (:class:`Reply`). When the caller hangs up, Asterisk
may send a ``HANGUP`` line *before* the reply to the pending command: it is an event of its own
(:class:`Hangup`), never taken for a reply, so replies never shift.

Quoting: :func:`command` builds a command line whose arguments are double-quoted with ``\\`` and ``"``
escaped (res_agi's ``parse_args`` honours backslash escapes), with control characters (CR, LF, NUL,
...) removed and invalid UTF-8 replaced, so no value, whatever a caller put in it, can end the
command or start another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 16 * 1024
MAX_LINE_BYTES = 8 * 1024
MAX_VALUE_CHARS = 1024

_REPLY = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_RESULT = re.compile(r"^result=(-?[0-9]*)(?:\s*\((.*?)\))?(?:\s+(.*))?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\([^()\s\"\\]*\))?$")
_WORD = re.compile(r"^[A-Z][A-Z ]*$")


class ProtocolError(Exception):
    """The other side broke the FastAGI framing (oversized headers or lines, garbage)."""


@dataclass(frozen=True)
class Headers:
    """The session's ``agi_*`` variables, names without the ``agi_`` prefix (``callerid``, ``arg_1``)."""

    values: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    @property
    def args(self) -> list[str]:
        """``agi_arg_1``.. in order."""
        out, n = [], 1
        while f"arg_{n}" in self.values:
            out.append(self.values[f"arg_{n}"])
            n += 1
        return out


@dataclass(frozen=True)
class Reply:
    """A reply to one command. ``result`` is None for non-200 replies; ``data`` is the ``(...)`` part."""

    code: int
    result: int | None = None
    data: str | None = None
    #: the text of ``result=`` as sent (``"0123"`` keeps its zero; ``""`` for an empty GET DATA)
    value: str = ""
    extra: str = ""
    text: str = ""
    lines: tuple[str, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.code == 200


@dataclass(frozen=True)
class Hangup:
    """The asynchronous ``HANGUP`` notice: the channel is gone; commands will get 511 from now on."""


Event = Headers | Reply | Hangup


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def parse_reply_line(line: str) -> Reply:
    m = _REPLY.match(line)
    if not m:
        raise ProtocolError(f"not an AGI reply: {line[:80]!r}")
    code, rest = int(m.group(1)), m.group(2) or ""
    if code == 200:
        r = _RESULT.match(rest)
        if not r:
            raise ProtocolError(f"200 reply without result=: {line[:80]!r}")
        value = r.group(1)
        result = int(value) if value not in ("", "-") else None
        return Reply(200, result, r.group(2), value, r.group(3) or "", rest, (line,))
    return Reply(code, None, None, "", "", rest, (line,))


class FastAGIParser:
    """Feed it bytes as they arrive; it returns the complete events. One parser per session."""

    def __init__(self, *, max_header_bytes: int = MAX_HEADER_BYTES, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._headers: dict[str, str] | None = {}
        self._header_bytes = 0
        self._multi: list[str] | None = None  # lines of a 520- reply in progress
        self._max_header = max_header_bytes
        self._max_line = max_line_bytes
        self.headers_done = False

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by ``data``; raises :class:`ProtocolError` on broken framing."""
        self._buf += data
        events: list[Event] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                limit = self._max_header if not self.headers_done else self._max_line
                if len(self._buf) > limit:
                    raise ProtocolError("line too long")
                return events
            raw = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            if not self.headers_done:
                self._header_bytes += len(raw)
                if self._header_bytes > self._max_header:
                    raise ProtocolError(f"headers larger than {self._max_header} bytes")
            elif len(raw) > self._max_line:
                raise ProtocolError("line too long")
            event = self._line(_decode(raw[:-1]))
            if event is not None:
                events.append(event)

    def _line(self, line: str) -> Event | None:
        if not self.headers_done:
            assert self._headers is not None
            if line == "":
                if not self._headers:
                    return None  # stray blank line before any header: ignore
                self.headers_done = True
                headers, self._headers = self._headers, None
                return Headers(headers)
            name, sep, value = line.partition(":")
            if not sep or not name.startswith("agi_"):
                raise ProtocolError(f"not an agi_ header: {line[:80]!r}")
            self._headers[name[4:].strip()] = value.strip()
            return None
        if self._multi is not None:
            self._multi.append(line)
            if line.startswith("520 "):
                lines, self._multi = self._multi, None
                return Reply(520, None, None, "", "", "\n".join(lines), tuple(lines))
            return None
        if line.startswith("HANGUP"):
            return Hangup()
        if line.startswith("520-"):
            self._multi = [line]
            return None
        if line == "":
            return None
        return parse_reply_line(line)


# --- building commands ------------------------------------------------------------------------------


def sanitise(value: object, *, max_chars: int = MAX_VALUE_CHARS) -> str:
    """Text safe inside a quoted AGI argument's content: valid UTF-8, no control characters, bounded."""
    text = bytes(value).decode("utf-8", errors="replace") if isinstance(value, bytes | bytearray) else str(value)
    text = text.encode("utf-8", errors="replace").decode("utf-8")  # lone surrogates
    return _CONTROL.sub("", text)[:max_chars]


def quote(value: object) -> str:
    """One AGI argument, double-quoted, backslash and double quote escaped."""
    text = sanitise(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Raw(str):
    """An argument sent unquoted: only values this module validated (variable names, integers)."""


def command(name: str, *args: object) -> bytes:
    """``NAME "arg" ...\\n`` as bytes; ``name`` is a fixed command word, never caller input."""
    if not _WORD.match(name):
        raise ValueError(f"not an AGI command word: {name!r}")
    parts = [name, *(str(a) if isinstance(a, _Raw) else quote(a) for a in args)]
    return (" ".join(parts) + "\n").encode("utf-8")


def set_variable(name: str, value: object) -> bytes:
    """``SET VARIABLE`` of a dialplan variable; the name must be a plain identifier (or FUNC(args))."""
    if not _NAME.match(name):
        raise ValueError(f"not a variable name: {name!r}")
    return command("SET VARIABLE", _Raw(name), value)


#: values ``MSet`` passes through unchanged: ``ast_app_separate_args`` gives meaning to ``,`` ``|`` ``"``
#: ``\\`` ``(`` ``)`` ``[`` ``]`` ``{`` ``}``, and ``$`` or spaces invite surprises, so only this set
#: (every catalogue id, tier, queue name, digit flag and reason token fits) is batched
_MSET_VALUE = re.compile(r"^[A-Za-z0-9_.+@:-]*$")
_MSET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: res_agi reads a command into a 2048-byte buffer; stay well below it
MSET_MAX_BYTES = 1000
#: MSet sets at most 99 pairs per call
MSET_MAX_PAIRS = 99


def mset_safe(name: str, value: str) -> bool:
    """``name=value`` can go into ``MSet`` as is (see :data:`_MSET_VALUE`)."""
    return bool(_MSET_NAME.match(name)) and isinstance(value, str) and bool(_MSET_VALUE.match(value))


def exec_app(app: str, data: object) -> bytes:
    """``EXEC app "data"``; ``app`` is a fixed application name, never caller input."""
    if not _MSET_NAME.match(app):
        raise ValueError(f"not an application name: {app!r}")
    return command("EXEC", _Raw(app), data)


def set_variables(variables: dict[str, str]) -> tuple[list[tuple[bytes, list[str]]], list[tuple[bytes, str]]]:
    """Commands that set ``variables``: ``(mset, singles)``.

    ``mset``: ``EXEC MSet "A=x,B=y,..."`` commands, each with the names it sets (one command for our nine
    variables; several only if the values are long); ``singles``: one ``SET VARIABLE`` per variable whose
    name or value isn't a safe token (quoted and sanitised as usual). If Asterisk refuses an ``MSet``
    (``result=-2``: no such application), send :func:`set_variable` for its names instead.
    """
    batches: list[tuple[bytes, list[str]]] = []
    singles: list[tuple[bytes, str]] = []
    pairs: list[str] = []
    names: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal pairs, names, size
        if pairs:
            batches.append((exec_app("MSet", ",".join(pairs)), names))
        pairs, names, size = [], [], 0

    for name, value in variables.items():
        if not mset_safe(name, value):
            singles.append((set_variable(name, value), name))
            continue
        pair = f"{name}={value}"
        if len(pair) + 1 > MSET_MAX_BYTES:
            singles.append((set_variable(name, value), name))
            continue
        if size + len(pair) + 1 > MSET_MAX_BYTES or len(pairs) >= MSET_MAX_PAIRS:
            flush()
        pairs.append(pair)
        names.append(name)
        size += len(pair) + 1
    flush()
    return batches, singles


def get_variable(name: str) -> bytes:
    if not _NAME.match(name):
        raise ValueError(f"not a variable name: {name!r}")
    return command("GET VARIABLE", _Raw(name))


def get_full_variable(expression: str) -> bytes:
    """``GET FULL VARIABLE`` of a fixed expression like ``${CHANNEL(linkedid)}`` (never caller input)."""
    return command("GET FULL VARIABLE", expression)


def get_data(prompt: str, timeout_ms: int, max_digits: int) -> bytes:
    """``GET DATA file timeout maxdigits``: plays ``prompt`` and collects DTMF digits."""
    return command("GET DATA", prompt, _Raw(str(int(timeout_ms))), _Raw(str(int(max_digits))))


def verbose(message: object, level: int = 3) -> bytes:
    return command("VERBOSE", message, _Raw(str(int(level))))


DIGITS = re.compile(r"^[0-9]*$")


def digits_of(reply: Reply) -> tuple[str, bool]:
    """The digits a ``GET DATA`` reply carries (leading zeros kept) and whether it timed out.

    ``200 result=1234``, ``200 result=12 (timeout)``, ``200 result= (timeout)``; ``result=-1`` means
    hang-up or error: no digits.
    """
    if not reply.ok or reply.value.startswith("-"):
        return "", False
    return (reply.value if DIGITS.match(reply.value) else ""), reply.data == "timeout"
