"""The model server's /metrics page, without the other components' series.

BentoML runs its workers in Prometheus multiprocess mode and renders /metrics from the files in
PROMETHEUS_MULTIPROC_DIR, not from a registry. Every metric object such a process creates writes
there, whichever registry it belongs to, and importing `icecube_stream.metrics` creates all of
them. So BentoML's page shows the worker's, emitter's and checker's series too (at zero) unless
they are taken off it here, by the names their registries declare; BentoML's own series stay.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from icecube_stream import metrics

#: The project's metric families on the worker's, emitter's and checker's pages; the process and
#: Python collectors those pages share are not among them.
FOREIGN = frozenset(
    family.name
    for registry in (metrics.WORKER_REGISTRY, metrics.EMITTER_REGISTRY, metrics.CHECKER_REGISTRY)
    for family in registry.collect()
    if family.name.startswith("icecube_")
)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def own_series(page: str) -> str:
    """BentoML's page (text exposition format) without the other components' families."""
    kept = (f for f in text_string_to_metric_families(page) if f.name not in FOREIGN)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(kept))
    return generate_latest(registry).decode()
