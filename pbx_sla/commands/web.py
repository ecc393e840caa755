"""``pbx-sla web``: the read-only dashboard on ``[http] listen`` without the daemon, until SIGTERM/SIGINT.

For a reporting host that does not collect: the pages only (``/metrics`` belongs to the daemon, whose
counters it reports).
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from pbx_sla.config import Settings, parse_listen
from pbx_sla.errors import ConfigError
from pbx_sla.store.pool import resolve_dsn
from pbx_sla.web.dashboard import Dashboard
from pbx_sla.web.server import HttpServer, build_app


async def web(args: argparse.Namespace, settings: Settings) -> int:
    listen = parse_listen(args.listen, "--listen") if args.listen else settings.http.listen
    if listen is None:
        raise ConfigError("[http] listen is empty: give --listen HOST:PORT")
    dashboard = Dashboard(await resolve_dsn(settings))
    server = HttpServer(build_app(settings.http, dashboard=dashboard.install), *listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        print(f"pbx-sla web: dashboard on http://{server.host}:{server.port}/", flush=True)
        await stop.wait()
    finally:
        await server.close()
        await dashboard.close()
    return 0
