"""Two error families, as in asyncpg: what the other side reported vs. what we were given wrong."""

from __future__ import annotations


class PbxSlaError(Exception):
    """Base of every error pbx-sla raises on purpose."""


class ConfigError(PbxSlaError, ValueError):
    """Bad configuration or usage: names the file and key at fault. CLI exit status 2."""


class InputError(PbxSlaError, ValueError):
    """Bad user input (catalogue, CSV rows): the command ran and found problems. CLI exit status 1.

    ``problems`` lists every problem found, each naming its location (file:line or key path).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class RemoteError(PbxSlaError):
    """The other side said no: an AMI ``Response: Error``, an AGI ``510``/``520`` reply."""
