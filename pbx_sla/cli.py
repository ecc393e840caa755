"""The ``pbx-sla`` console script: the commands listed in README.md ("Commands").

Parsing only: each command lives in :mod:`pbx_sla.commands` as ``async def <name>(args, settings) -> int``.
Exit status: 0 success; 1 the command ran and found bad input; 2 usage or configuration error.
Global options (``--config``, ``--log-level``) are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg

from pbx_sla import __version__
from pbx_sla.config import Settings, load_settings
from pbx_sla.errors import ConfigError, InputError
from pbx_sla.log import get_logger, setup_logging

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE = 0, 1, 2
FORMATS = ("table", "csv", "json")

#: (command, subcommand) → "module:function" under pbx_sla.commands
HANDLERS: dict[tuple[str, ...], str] = {
    ("db", "upgrade"): "db:upgrade",
    ("db", "partitions"): "db:partitions_command",
    ("db", "qos-fill"): "db:qos_fill",
    ("contracts", "apply"): "contracts:apply",
    ("contracts", "show"): "contracts:show",
    ("run",): "run:run",
    ("status",): "status:status",
    ("cdr", "import"): "cdr:import_file",
    ("trunks",): "trunks:trunks",
    ("usage",): "usage:usage",
    ("sla",): "sla:sla",
    ("qos",): "qos:qos",
    ("requests",): "requests:requests",
    ("pin", "hash"): "pin:hash_command",
    ("web",): "web:web",
    ("statement", "close"): "statement:close",
    ("statement", "show"): "statement:show",
    ("erase",): "erase:erase",
    ("retention", "apply"): "retention:apply",
}


def _globals(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="configuration file (default ./pbx-sla.toml or $PBX_SLA_CONFIG)",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default,
        choices=("debug", "info", "warning", "error", "critical"),
        help="debug, info (default), warning, error",
    )


def _period(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", metavar="YYYY-MM", help="a calendar month in the catalogue's time zone")
    parser.add_argument("--from", dest="date_from", metavar="DATE", help="start, inclusive (YYYY-MM-DD)")
    parser.add_argument("--to", dest="date_to", metavar="DATE", help="end, exclusive (YYYY-MM-DD)")


def _format(parser: argparse.ArgumentParser, choices: Sequence[str] = FORMATS) -> None:
    parser.add_argument("--format", choices=choices, default="table", help="output format (default table)")


def _server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        action="append",
        metavar="NAME",
        help="only this Asterisk server; repeat for several (default: every server, the whole fleet)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pbx-sla", description="Service levels, tier accounting and support-line routing beside Asterisk."
    )
    parser.add_argument("--version", action="version", version=f"pbx-sla {__version__}")
    _globals(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _globals(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
    ) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=[common], help=help_text, description=help_text)

    db = add(sub, "db", "database schema")
    db_sub = db.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    add(db_sub, "upgrade", "apply sql/ migrations in order (idempotent, safe when racing)")
    add(db_sub, "partitions", "make the history tables' month partitions due, move rows out of DEFAULT partitions")
    qos_fill = add(db_sub, "qos-fill", "store the MOS and call tenant of a UTC month's QoS legs stored before sql/1710")
    qos_fill.add_argument("--month", required=True, metavar="YYYY-MM", help="the UTC month of the legs' hangups")

    contracts = add(sub, "contracts", "the contracts catalogue")
    c_sub = contracts.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    c_apply = add(c_sub, "apply", "load a catalogue (TOML) idempotently")
    c_apply.add_argument("file", metavar="FILE")
    c_apply.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    c_show = add(c_sub, "show", "tiers, tenants, requesters (never PINs), trunks")
    _format(c_show, ("table", "json"))

    pin = add(sub, "pin", "requester PINs")
    pin_sub = pin.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    add(pin_sub, "hash", "print a PIN's hash for the catalogue's pin_hash (PIN read from a prompt or stdin)")

    add(sub, "run", "the daemon: AMI collectors and the FastAGI server, until SIGTERM")
    status = add(sub, "status", "AMI connections, trunk states, last event time, write backlog")
    _format(status, ("table", "json"))

    cdr = add(sub, "cdr", "call detail records")
    cdr_sub = cdr.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    cdr_import = add(cdr_sub, "import", "import an Asterisk Master.csv (cdr_csv) idempotently")
    cdr_import.add_argument("file", metavar="FILE")
    cdr_import.add_argument("--server", required=True, metavar="NAME", help="label of the rows' origin")
    cdr_import.add_argument(
        "--timezone",
        metavar="ZONE",
        help="zone of the file's local times (default: the server's, else the catalogue's)",
    )

    trunks = add(sub, "trunks", "trunk availability and outages")
    _period(trunks)
    _format(trunks)
    _server(trunks)

    for name, text in (
        ("usage", "call volumes and tier accounting per tenant"),
        ("sla", "SLA outcomes per tenant: targets, actuals, breaches, credits"),
        ("requests", "support requests and their reaction in business time: the call-back list"),
    ):
        p = add(sub, name, text)
        _period(p)
        p.add_argument("--tenant", metavar="ID", help="only this tenant")
        _server(p)
        _format(p)
        if name != "usage":
            p.add_argument(
                "--now",
                metavar="INSTANT",
                help="judge requests as of this ISO 8601 instant with offset (default: the current time)",
            )

    qos = add(sub, "qos", "voice quality (loss, jitter, round-trip time, MOS) per trunk and tenant")
    _period(qos)
    only = qos.add_mutually_exclusive_group()
    only.add_argument("--trunk", metavar="NAME", help="only this trunk (NAME or SERVER/NAME)")
    only.add_argument("--tenant", metavar="ID", help="only this tenant")
    _server(qos)
    _format(qos)
    requests = sub.choices["requests"]
    requests.add_argument("--open", action="store_true", help="only requests not reacted to yet (open or overdue)")

    statement = add(sub, "statement", "monthly statements: frozen figures per tenant, late changes as adjustments")
    st_sub = statement.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    st_close = add(st_sub, "close", "freeze a month's figures per tenant (idempotent; never changes a closed month)")
    st_close.add_argument("--period", required=True, metavar="YYYY-MM", help="the month to close")
    st_show = add(st_sub, "show", "a closed month's statements as table, csv, json or a printable HTML page")
    st_show.add_argument("--period", required=True, metavar="YYYY-MM", help="the closed month")
    st_show.add_argument("--tenant", metavar="ID", help="only this tenant")
    _format(st_show, (*FORMATS, "html"))
    st_show.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")

    web = add(sub, "web", "the read-only web dashboard without the daemon, until SIGTERM")
    web.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default [http] listen)")
    erase = add(sub, "erase", "pseudonymise one person's phone number everywhere it is stored")
    erase.add_argument("--number", required=True, metavar="N", help="the number, in any form routing accepts")
    erase.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    _format(erase, ("table", "json"))

    retention = add(sub, "retention", "personal data past its retention age ([retention] keys)")
    r_sub = retention.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    r_apply = add(r_sub, "apply", "replace personal fields of rows older than the [retention] ages by pseudonyms")
    r_apply.add_argument("--dry-run", action="store_true", help="count the rows, change nothing")
    _format(r_apply, ("table", "json"))
    return parser


Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int | None]]


def _handler(args: argparse.Namespace) -> Handler:
    """The command's coroutine function, imported only when that command runs (fast ``--help``)."""
    key = tuple(k for k in (args.command, getattr(args, "subcommand", None)) if k)
    module_name, func_name = HANDLERS[key].split(":")
    handler: Handler = getattr(importlib.import_module(f"pbx_sla.commands.{module_name}"), func_name)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_level = getattr(args, "log_level", None)
    try:
        settings = load_settings(getattr(args, "config", None), log_level=log_level)
    except ConfigError as exc:
        setup_logging(log_level or "info")
        print(f"pbx-sla: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.log_level)
    handler = _handler(args)
    try:
        return int(asyncio.run(handler(args, settings)) or 0)
    except InputError as exc:
        print(f"pbx-sla: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConfigError as exc:
        print(f"pbx-sla: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except asyncpg.PostgresError as exc:  # e.g. the DSN names a database or role that does not exist
        get_logger(__name__).debug("command failed", exc_info=True)
        print(f"pbx-sla: database error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # database or AMI unreachable
        get_logger(__name__).debug("command failed", exc_info=True)
        print(f"pbx-sla: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
