"""Each component's /metrics page shows its own series: no model-server series on the worker's
page, none of the worker's on the model server's, and so on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from icecube_stream import metrics

pytestmark = pytest.mark.unit

PAGES = {
    "worker": (metrics.WORKER_REGISTRY, ("icecube_worker_", "icecube_pipeline_")),
    "model-server": (metrics.MODEL_SERVER_REGISTRY, ("icecube_model_server_",)),
    "emitter": (metrics.EMITTER_REGISTRY, ("icecube_emitter_",)),
    "checker": (metrics.CHECKER_REGISTRY, ("icecube_checker_",)),
}


def families(page: str) -> dict[str, list[Sample]]:
    return {family.name: family.samples for family in text_string_to_metric_families(page)}


def project_series(page: str) -> set[str]:
    return {name for name in families(page) if name.startswith("icecube_")}


def declared(registry: CollectorRegistry) -> set[str]:
    return {family.name for family in registry.collect() if family.name.startswith("icecube_")}


@pytest.mark.parametrize("component", PAGES)
def test_a_page_shows_its_own_components_series_only(component: str) -> None:
    registry, prefixes = PAGES[component]
    shown = project_series(generate_latest(registry).decode())
    assert shown, f"the {component} page shows none of its series"
    assert sorted(name for name in shown if not name.startswith(prefixes)) == []


def test_every_metric_is_on_one_component_page_and_none_on_the_default_registry() -> None:
    every = {
        family.name
        for value in vars(metrics).values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    }
    pages = [declared(registry) for registry, _ in PAGES.values()]
    assert sorted(every - set().union(*pages)) == []
    assert sum(len(page) for page in pages) == len(every)  # no metric on two pages
    assert declared(REGISTRY) == set()


def test_worker_emitter_and_checker_pages_keep_the_process_collectors() -> None:
    for registry in (metrics.WORKER_REGISTRY, metrics.EMITTER_REGISTRY, metrics.CHECKER_REGISTRY):
        shown = families(generate_latest(registry).decode())
        assert {"process_cpu_seconds", "python_info"} <= set(shown)


# A model server as BentoML runs it (multiprocess mode, the page read from the files), with the
# hook bento/service.py defines; the page BentoML handed the hook is kept for comparison.
SERVICE = """
import bentoml
from icecube_stream import metrics
from icecube_stream.serving.metrics_page import own_series

HANDED: list[str] = []


@bentoml.service(name="metrics_page_check")
class Check:
    @bentoml.api
    def count(self) -> str:
        metrics.MODEL_SERVER_EVENTS.inc(3)
        return "counted"

    def __metrics__(self, page: str) -> str:
        HANDED.append(page)
        return own_series(page)
"""
CLIENT = """
import sys
from starlette.testclient import TestClient
import service

with TestClient(service.Check.to_asgi()) as client:
    assert client.post("/count", json={}).status_code == 200
    page = client.get("/metrics").text
sys.stdout.write(service.HANDED[-1] + "\\0" + page)
"""


def test_the_model_server_page_drops_other_components_series(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "prometheus").mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
           "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", CLIENT], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    handed, page = result.stdout.split("\0")
    before, after = families(handed), families(page)
    # The multiprocess files hold every metric the process created, whatever its registry.
    assert "icecube_worker_predictions" in before
    shown = project_series(page)
    assert sorted(name for name in shown if not name.startswith("icecube_model_server_")) == []
    assert shown <= declared(metrics.MODEL_SERVER_REGISTRY)
    assert {name: before[name] for name in after} == after  # what stays is unchanged
    assert "bentoml_service_request" in after  # BentoML's own series stay
    events = [s for s in after["icecube_model_server_events"] if s.name.endswith("_total")]
    assert [s.value for s in events] == [3.0]
