"""structlog setup: one stdlib handler renders structlog and stdlib records (panoramisk, asyncpg) alike.

JSON lines when stderr is not a TTY, a readable console on a TTY. Tracebacks never carry frame locals,
which could hold secrets.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer


def setup_logging(level: str = "info", *, json: bool | None = None, stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        final: list[structlog.typing.Processor] = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(),
        ]
    else:
        final = [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.dev.ConsoleRenderer(colors=False),
        ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # panoramisk at DEBUG halves the AMI parse rate and logs raw AMI traffic (login secrets included)
    logging.getLogger("panoramisk").setLevel(max(logging.INFO, root.level))
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
