"""The sans-IO FastAGI codec: headers in any chunking, replies (200, 510, 511, 520 multi-line), HANGUP
notices never taken for replies, and quoting that no caller-supplied text can escape."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_sla.agi import protocol as p

HEADERS = (
    b"agi_network: yes\n"
    b"agi_network_script: support\n"
    b"agi_request: agi://127.0.0.1:4573/support\n"
    b"agi_callerid: +420777000001\n"
    b"agi_calleridname: Jana \xc5\xa0t\xc4\x9bp\xc3\xa1nkov\xc3\xa1\n"
    b"agi_uniqueid: 1732370000.42\n"
    b"agi_arg_1: +420221000111\n"
    b"agi_arg_2: pbx1\n"
    b"\n"
)


def feed_in_chunks(parser: p.FastAGIParser, data: bytes, size: int) -> list[p.Event]:
    events: list[p.Event] = []
    for i in range(0, len(data), size):
        events += parser.feed(data[i : i + size])
    return events


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_headers_any_chunking(size):
    events = feed_in_chunks(p.FastAGIParser(), HEADERS, size)
    assert len(events) == 1 and isinstance(events[0], p.Headers)
    h = events[0]
    assert h.get("network_script") == "support"
    assert h.get("callerid") == "+420777000001"
    assert h.get("calleridname") == "Jana Štěpánková"
    assert h.args == ["+420221000111", "pbx1"]


def test_headers_then_replies_in_one_chunk():
    parser = p.FastAGIParser()
    events = parser.feed(HEADERS + b"200 result=1\n")
    assert isinstance(events[0], p.Headers) and events[1] == p.parse_reply_line("200 result=1")


def test_crlf_and_non_utf8_headers():
    events = p.FastAGIParser().feed(b"agi_calleridname: A\xff\xfeB\r\nagi_callerid: 1\r\n\r\n")
    assert events[0].get("calleridname") == "A\ufffd\ufffdB"


def test_header_size_limit():
    parser = p.FastAGIParser(max_header_bytes=100)
    with pytest.raises(p.ProtocolError):
        parser.feed(b"agi_x: " + b"a" * 200)
    parser = p.FastAGIParser(max_header_bytes=100)
    with pytest.raises(p.ProtocolError):
        parser.feed(b"agi_x: 1\n" * 20)


def test_not_agi_headers():
    with pytest.raises(p.ProtocolError):
        p.FastAGIParser().feed(b"GET / HTTP/1.1\n")


@pytest.mark.parametrize(
    ("line", "code", "result", "data", "value"),
    [
        ("200 result=1", 200, 1, None, "1"),
        ("200 result=0", 200, 0, None, "0"),
        ("200 result=-1", 200, -1, None, "-1"),
        ("200 result=1 (1732370000.42)", 200, 1, "1732370000.42", "1"),
        ("200 result=0123", 200, 123, None, "0123"),
        ("200 result=47 (timeout)", 200, 47, "timeout", "47"),
        ("200 result= (timeout)", 200, None, "timeout", ""),
        (
            "200 result=1 (a value with spaces (and parens)) endpos=1234",
            200,
            1,
            "a value with spaces (and parens)",
            "1",
        ),
        ("510 Invalid or unknown command", 510, None, None, ""),
        ("511 Command Not Permitted on a dead channel or intercept routine", 511, None, None, ""),
    ],
)
def test_reply_lines(line, code, result, data, value):
    r = p.parse_reply_line(line)
    assert (r.code, r.result, r.data, r.value) == (code, result, data, value)


def test_digits_of_keeps_leading_zeros_and_timeout():
    assert p.digits_of(p.parse_reply_line("200 result=0042")) == ("0042", False)
    assert p.digits_of(p.parse_reply_line("200 result=12 (timeout)")) == ("12", True)
    assert p.digits_of(p.parse_reply_line("200 result= (timeout)")) == ("", True)
    assert p.digits_of(p.parse_reply_line("200 result=-1")) == ("", False)
    assert p.digits_of(p.parse_reply_line("511 dead")) == ("", False)


def test_520_multiline_is_one_reply():
    parser = p.FastAGIParser()
    parser.feed(HEADERS)
    events = parser.feed(
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b"Usage: GET DATA <file to be streamed> [timeout] [max digits]\n"
        b"520 End of proper usage.\n200 result=1\n"
    )
    assert [type(e) for e in events] == [p.Reply, p.Reply]
    assert events[0].code == 520 and len(events[0].lines) == 3
    assert events[1].code == 200


def test_hangup_is_not_a_reply():
    parser = p.FastAGIParser()
    parser.feed(HEADERS)
    events = parser.feed(b"HANGUP\n200 result=-1\n")
    assert events == [p.Hangup(), p.parse_reply_line("200 result=-1")]


def test_garbage_reply_is_a_protocol_error():
    parser = p.FastAGIParser()
    parser.feed(HEADERS)
    with pytest.raises(p.ProtocolError):
        parser.feed(b"hello\n")


# --- quoting ------------------------------------------------------------------------------------


def parse_args(line: str) -> list[str]:
    """An independent port of res_agi.c parse_args() (Asterisk 22): how Asterisk splits a command."""
    argv: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                cur = []
                argv.append("")
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            if cur is not None:
                argv[-1] = "".join(cur)
            cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            cur = []
            argv.append("")
            whitespace = False
        assert cur is not None
        cur.append(ch)
        argv[-1] = "".join(cur)
        escaped = False
    return argv


def test_set_variable_quotes_and_escapes():
    line = p.set_variable("SUPPORT_TENANT", 'a "b" \\c')
    assert line == b'SET VARIABLE SUPPORT_TENANT "a \\"b\\" \\\\c"\n'
    assert parse_args(line.decode()[:-1]) == ["SET", "VARIABLE", "SUPPORT_TENANT", 'a "b" \\c']


@pytest.mark.parametrize(
    "evil",
    [
        'x"\nEXEC Dial "PJSIP/evil',
        "x\r\nHANGUP",
        'end\\"\n',
        "tab\there",
        "\x00nul",
        "line\u2028sep",
        b"\xff\xfe\n\xc3",
        "\udcff",
    ],
)
def test_caller_text_cannot_inject(evil):
    line = p.set_variable("CALLER_NAME", evil)
    text = line.decode("utf-8")
    assert text.count("\n") == 1 and text.endswith("\n") and "\r" not in text
    args = parse_args(text[:-1])
    assert args[:3] == ["SET", "VARIABLE", "CALLER_NAME"] and len(args) == 4


@settings(max_examples=500)
@given(st.one_of(st.text(), st.binary()))
def test_any_value_round_trips_as_one_argument(value):
    line = p.set_variable("X", value).decode("utf-8")
    assert line.count("\n") == 1
    args = parse_args(line[:-1])
    assert len(args) == 4
    assert args[3] == p.sanitise(value)


def test_names_and_command_words_are_validated():
    with pytest.raises(ValueError):
        p.set_variable("X Y", "1")
    with pytest.raises(ValueError):
        p.set_variable("X\nEXEC", "1")
    with pytest.raises(ValueError):
        p.command("EXEC\nHANGUP")
    assert p.set_variable("CDR(userfield)", "v") == b'SET VARIABLE CDR(userfield) "v"\n'
    assert p.get_data("beep", 6000, 12) == b'GET DATA "beep" 6000 12\n'
    assert p.get_full_variable("${CHANNEL(linkedid)}") == b'GET FULL VARIABLE "${CHANNEL(linkedid)}"\n'


# --- setting many variables at once (EXEC MSet) ------------------------------------------------------

#: what MSet's argument splitting (ast_app_separate_args) interprets, plus what AGI quoting would touch
MSET_SPECIAL = set(',|"\\()[]{}$ =\t\r\n')


def mset_of(line: str) -> dict[str, str]:
    """An EXEC MSet command line as Asterisk would apply it (asserting nothing in it is interpreted)."""
    argv = parse_args(line.rstrip("\n"))
    assert argv[:2] == ["EXEC", "MSet"] and len(argv) == 3, line
    out = {}
    for pair in argv[2].split(","):
        name, sep, value = pair.partition("=")
        assert sep and name.isidentifier() and not set(value) & MSET_SPECIAL, pair
        out[name] = value
    return out


def test_our_variables_fit_one_mset():
    variables = {"SUPPORT_TENANT": "acme", "SUPPORT_TIER": "tier3", "SUPPORT_AUTHORISED": "1",
                 "SUPPORT_IN_HOURS": "1", "SUPPORT_ACTION": "queue", "SUPPORT_QUEUE": "support-premium",
                 "QUEUE_PRIO": "5", "SUPPORT_REASON": "authorised-number", "SUPPORT_OUT_OF_HOURS": ""}  # fmt: skip
    batches, singles = p.set_variables(variables)
    assert singles == [] and len(batches) == 1
    line, names = batches[0]
    assert line.decode() == (
        'EXEC MSet "SUPPORT_TENANT=acme,SUPPORT_TIER=tier3,SUPPORT_AUTHORISED=1,SUPPORT_IN_HOURS=1,'
        "SUPPORT_ACTION=queue,SUPPORT_QUEUE=support-premium,QUEUE_PRIO=5,SUPPORT_REASON=authorised-number,"
        'SUPPORT_OUT_OF_HOURS="\n'
    )
    assert names == list(variables) and mset_of(line.decode()) == variables


@pytest.mark.parametrize(
    "value", ["a,b", "a|b", 'a"b', "a\\b", "f(x)", "a[1]", "{x}", "${EVIL}", "a b", "a=b", "x\ny", "é", "\x00"]
)
def test_values_mset_would_interpret_are_set_one_by_one(value):
    batches, singles = p.set_variables({"SAFE": "ok", "RISKY": value, "LAST": ""})
    assert [names for _, names in batches] == [["SAFE", "LAST"]]
    [(line, name)] = singles
    assert name == "RISKY" and line.startswith(b"SET VARIABLE RISKY ")
    argv = parse_args(line.decode().rstrip("\n"))
    assert len(argv) == 4 and argv[3] == p.sanitise(value)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,30}", fullmatch=True),
        st.one_of(st.from_regex(r"[A-Za-z0-9_.+@:-]{0,300}", fullmatch=True), st.text(max_size=40)),
        max_size=120,
    )
)
def test_set_variables_sets_each_exactly_once_and_never_injects(variables):
    batches, singles = p.set_variables(variables)
    seen: dict[str, str] = {}
    for line, names in batches:
        assert len(line) <= p.MSET_MAX_BYTES + 20 and line.endswith(b"\n") and line.count(b"\n") == 1
        applied = mset_of(line.decode())
        assert list(applied) == names and len(names) <= p.MSET_MAX_PAIRS
        for k, v in applied.items():
            assert k not in seen
            seen[k] = v
    for line, name in singles:
        assert line.count(b"\n") == 1
        argv = parse_args(line.decode().rstrip("\n"))
        assert argv[:3] == ["SET", "VARIABLE", name] and len(argv) == 4
        assert name not in seen
        seen[name] = argv[3]
    assert seen == {k: p.sanitise(v) for k, v in variables.items()}
