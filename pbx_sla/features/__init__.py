"""Features plug into the daemon through one small contract.

Each feature module (``trunks``, ``calls``, ``support``, ``qos``) exposes::

    def event_handlers(ctx: ServiceContext) -> Mapping[str, EventHandler]   # AMI event name → handler
    def sinks(ctx: ServiceContext) -> Sequence[Sink]                         # storage for its Record kinds
    async def start(ctx: ServiceContext) -> Sequence[asyncio.Task]           # optional: servers it runs
    def status(ctx: ServiceContext) -> dict                                  # optional: for status.json

A handler that is the only one of its event may also read the raw message itself (its ``message`` attribute,
:data:`pbx_sla.pipeline.MessageHandler`): the qos feature's ``UserEvent`` handler does, for the event that
comes once per call leg (:class:`pbx_sla.ami.collector.Router`).

The daemon (:mod:`pbx_sla.service`) builds its chain from these (:mod:`pbx_sla.pipeline`); ``cdr import``
reuses the calls feature's interpreting and storing code directly (see there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbx_sla.config import Settings
from pbx_sla.pipeline import CatalogueSource, Record

if TYPE_CHECKING:
    from pbx_sla.web.metrics import AgiMetrics

#: the modules :mod:`pbx_sla.service` loads, in order
FEATURES = ("trunks", "calls", "support", "qos", "retention", "partitions", "trunk_days", "support_kept")


@dataclass
class ServiceContext:
    settings: Settings
    dsn: str
    #: hand a record to the durable writer; never blocks, never raises
    submit: Callable[[Record], None]
    catalogue: CatalogueSource
    #: the FastAGI server's Prometheus instruments (None: a private, unexported set)
    agi_metrics: AgiMetrics | None = None
