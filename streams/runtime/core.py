"""What every part of a stream's runtime shares: the attributes `streams.app.StreamApp` sets up.

The runtime is split by concern into mixins (records, emit, state, config mirror, health,
tracing, batches) that `StreamApp` combines; each reads these attributes and nothing else of
the others except through their methods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opentelemetry.trace import Tracer

from soma.contracts.catalog import Catalog
from soma.contracts.codec import Codec
from soma.live_config import LiveConfig
from soma.observability.readiness import Readiness
from soma.settings import Settings
from streams.logic.stall import StallDetector
from streams.runtime.metrics import StreamMetrics

log = logging.getLogger("streams")


class StreamCore:
    name: str
    settings: Settings
    catalog: Catalog
    codec: Codec
    live: LiveConfig
    metrics: StreamMetrics
    config_loaded: asyncio.Event
    sleep_loaded: asyncio.Event  # cog.sleep mirrored (only when `mirrors_sleep`)
    mirrors_sleep: bool
    stall: StallDetector
    tracer: Tracer | None  # None: tracing off (SOMA_OTEL_TRACES_EXPORTER)
    readiness: Readiness
    app: Any  # the faust.App
    logical: dict[str, str]  # physical topic name -> catalog name
    source_names: set[str]  # physical names of the sources
