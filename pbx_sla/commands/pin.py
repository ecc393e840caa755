"""``pbx-sla pin hash``: a PIN's salted scrypt hash for the catalogue's ``pin_hash`` key.

The PIN is read from a terminal prompt (asked twice, not echoed) or from the first line of stdin, never
from the command line (argv is visible to every local user in ``ps`` and lands in shell history). Only
the hash is printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from pbx_sla.config import Settings
from pbx_sla.domain.pins import hash_pin, valid_pin

EXIT_BAD_PIN = 2


def read_pin() -> str | None:
    """The PIN typed at a prompt (twice) or the first line of stdin; None when the two entries differ."""
    if sys.stdin.isatty():
        first = getpass.getpass("PIN: ")
        again = getpass.getpass("PIN again: ")
        return first if first == again else None
    return sys.stdin.readline().rstrip("\r\n")


async def hash_command(args: argparse.Namespace, settings: Settings) -> int:
    pin = read_pin()
    if pin is None:
        print("pbx-sla: the two PINs differ; nothing printed", file=sys.stderr)
        return EXIT_BAD_PIN
    if not valid_pin(pin):
        print("pbx-sla: a PIN is 4 to 12 digits (0-9); nothing printed", file=sys.stderr)
        return EXIT_BAD_PIN
    print(hash_pin(pin))
    return 0
