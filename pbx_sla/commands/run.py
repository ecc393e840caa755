"""``pbx-sla run``: the daemon (see :mod:`pbx_sla.service`)."""

from __future__ import annotations

import argparse

from pbx_sla.config import Settings
from pbx_sla.service import run_daemon


async def run(args: argparse.Namespace, settings: Settings) -> int:
    return await run_daemon(settings)
