"""The BentoML service: `bentoml serve` in this folder serves the champion direction model.

The logic lives in `icecube_stream.serving` (typed, unit-tested); this file only wires it into
BentoML: traffic limits from the ICECUBE_* settings, the raw-body app mounted at `/`, readiness
from the model holder, a /metrics page without the other components' series, and a guard that
refuses pickle bodies on every route.
"""

from __future__ import annotations

import bentoml
import torch

from icecube_stream.config import get_settings
from icecube_stream.serving.app import RefusePickleMiddleware, create_app
from icecube_stream.serving.holder import ModelHolder
from icecube_stream.serving.metrics_page import own_series
from icecube_stream.wire.topics import PULSES, topic_codec

settings = get_settings()
holder = ModelHolder(settings)
app = create_app(holder, settings, topic_codec(PULSES, settings.topics_dir))


@bentoml.service(
    name="icecube_direction",
    workers=1,
    traffic={
        "timeout": settings.model_server_timeout_s,
        "max_concurrency": settings.model_server_max_concurrency,
    },
)
@bentoml.asgi_app(app, path="/")
class DirectionService:
    """One worker process: the model is loaded once and forward passes take turns on the cores."""

    def __init__(self) -> None:
        torch.set_num_threads(settings.model_server_torch_threads)
        holder.start()

    def __is_ready__(self) -> bool:
        return holder.ready

    def __metrics__(self, page: str) -> str:
        """BentoML hands its /metrics page here before it answers (run in a thread)."""
        return own_series(page)

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def stop(self) -> None:
        holder.stop()


# The decorator returns a bentoml Service (mypy still sees the class it wraps).
DirectionService.add_asgi_middleware(RefusePickleMiddleware)  # type: ignore[attr-defined]
