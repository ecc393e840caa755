"""The HTTP server of the daemon and of ``pbx-sla web``: ``/metrics`` and the read-only dashboard (aiohttp).

One server, one listen address (``[http] listen``, loopback by default). Optional authentication covers
every path: a bearer token (``Authorization: Bearer ...``) and/or HTTP basic auth; either configured one is
accepted. Secrets are compared in constant time and never logged; the access log is off (a reverse proxy
in front keeps its own).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from pbx_sla.config import HttpSettings
from pbx_sla.log import get_logger

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authorised(settings: HttpSettings, header: str | None) -> bool:
    """True when no authentication is configured, or ``header`` carries a configured credential."""
    if not settings.auth_required:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and settings.token is not None:
        return hmac.compare_digest(value.encode(), settings.token.reveal().encode())
    if scheme == "basic" and settings.basic_user is not None and settings.basic_password is not None:
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), settings.basic_user.encode())
        ok_password = hmac.compare_digest(password.encode(), settings.basic_password.reveal().encode())
        return bool(sep) and ok_user and ok_password
    return False


def auth_middleware(settings: HttpSettings) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if authorised(settings, request.headers.get("Authorization")):
            return await handler(request)
        headers = {"WWW-Authenticate": 'Basic realm="pbx-sla"'} if settings.basic_user else {}
        return web.Response(status=401, text="authentication required\n", headers=headers)

    return check


def metrics_handler(render: Callable[[], bytes]) -> Handler:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


def registry_exposition(registry: CollectorRegistry) -> Callable[[], bytes]:
    """A plain registry's exposition, for :func:`build_app` (the daemon passes ``DaemonMetrics.render``)."""
    return lambda: generate_latest(registry)


def build_app(
    settings: HttpSettings,
    *,
    metrics: Callable[[], bytes] | None = None,
    dashboard: Callable[[web.Application], None] | None = None,
) -> web.Application:
    """``/metrics`` answered by ``metrics()`` when given; the dashboard's routes when ``dashboard`` adds them."""
    app = web.Application(middlewares=[auth_middleware(settings)])
    if metrics is not None:
        app.router.add_get("/metrics", metrics_handler(metrics))
    if dashboard is not None:
        dashboard(app)
    return app


class HttpServer:
    """An aiohttp application bound to ``[http] listen`` until :meth:`close`."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind; an OSError (port in use, address not local) reaches the caller."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.port == 0:  # tests bind port 0: learn the real one
            sockets = getattr(site._server, "sockets", None) or ()
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        log.info("HTTP server listening", host=self.host, port=self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
