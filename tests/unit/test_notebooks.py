"""The physicists' notebooks: stored with their outputs (GitHub shows the figures), and they still
run on a small simulated set. Store the outputs again after editing a notebook (README.md)."""

import json
import re
from pathlib import Path
from typing import Any

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
    ("03_alerts.ipynb", 500, ["500 events", "within 90 % radius", "alerts of"], 1),
]
STORED = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
MAX_STORED_BYTES = 1_500_000
# What stored outputs must not show: this machine's paths, temporary folders, tokens.
LEAKS = re.compile(r"/tmp/|/var/folders/|/home/|/root/|/work/|site-packages|token=", re.IGNORECASE)


def _code_cells(path: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


def _output_text(output: dict[str, Any]) -> str:
    """Everything an output shows as text (stream, text/plain, text/html, traceback)."""
    parts: list[Any] = [output.get("text", ""), output.get("traceback", [])]
    parts += [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "".join("".join(p) if isinstance(p, list) else str(p) for p in parts)


def test_every_notebook_is_executed_by_the_tests() -> None:
    assert sorted(case[0] for case in CASES) == STORED


@pytest.mark.parametrize("name", STORED)
def test_notebook_is_stored_with_its_outputs(name: str) -> None:
    """Run top to bottom in one fresh kernel, figures as PNG, no errors, nothing local, small."""
    path = NOTEBOOKS / name
    code = _code_cells(path)
    assert code
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: store it with `make notebooks-run`"
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    draws = any(re.search(r"\bplt\.|\bplots\.", "".join(c["source"])) for c in code)
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures or not draws, f"{name} draws figures but stores none as PNG"
    leaks = [m.group() for o in outputs for m in LEAKS.finditer(_output_text(o))]
    assert not leaks, f"{name} stores {leaks}: print less, or store it with `make notebooks-run`"
    assert path.stat().st_size < MAX_STORED_BYTES


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
    stored = (NOTEBOOKS / name).read_bytes()
    notebook = nbformat.reads(stored.decode(), as_version=4)
    for cell in notebook.cells:  # the checks below must see this run's outputs only
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3").execute(cwd=str(tmp_path))
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    for text in texts:
        assert any(text in o.get("text", "") for o in outputs), text
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) >= figures
    assert (NOTEBOOKS / name).read_bytes() == stored  # run in memory; the stored file is untouched
