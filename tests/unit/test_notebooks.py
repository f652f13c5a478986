"""The physicists' notebooks: stored without outputs, and they run on a small simulated set."""

import json
from pathlib import Path

import pytest

from icecube_stream.events.dataset import DatasetWriter
from icecube_stream.events.geometry import icecube_geometry
from icecube_stream.events.simulator import Simulator

pytestmark = pytest.mark.unit

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# notebook, events simulated, texts its outputs must contain, least number of figures
CASES = [
    ("01_events.ipynb", 600, ["600 events"], 3),
    ("02_model.ipynb", 500, ["500 events", "within 1 sigma"], 6),  # trains a small model inside
]


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_notebook_is_stored_without_outputs(name: str) -> None:
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.parametrize(("name", "events", "texts", "figures"), CASES)
def test_notebook_runs_on_a_small_simulated_set(
    name: str,
    events: int,
    texts: list[str],
    figures: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    geometry = icecube_geometry()
    with DatasetWriter(tmp_path / "data", geometry) as writer:
        for batch in Simulator(geometry, seed=3).iter_batches(events):
            writer.append(batch)
    monkeypatch.setenv("ICECUBE_NOTEBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("ICECUBE_NOTEBOOK_MODEL", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel must use its inline backend
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3").execute(cwd=str(tmp_path))
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    for text in texts:
        assert any(text in o.get("text", "") for o in outputs), text
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) >= figures
