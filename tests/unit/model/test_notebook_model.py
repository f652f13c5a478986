import json
from pathlib import Path

import pytest

from icecube_stream.events.format import DatasetWriter
from icecube_stream.events.geometry import generate_geometry
from icecube_stream.events.simulator import Simulator

pytestmark = pytest.mark.unit

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "02_model.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


def test_model_notebook_runs_on_a_small_simulated_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    geometry = generate_geometry()
    with DatasetWriter(tmp_path / "data", geometry) as writer:
        for batch in Simulator(geometry, seed=4).iter_batches(500):
            writer.append(batch)
    monkeypatch.setenv("ICECUBE_NOTEBOOK_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("ICECUBE_NOTEBOOK_MODEL", raising=False)  # trains a small model inside
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3")
    client.execute(cwd=str(tmp_path))
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("500 events" in o.get("text", "") for o in outputs)
    assert any("within 1 sigma" in o.get("text", "") for o in outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6
