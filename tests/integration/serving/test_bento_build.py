"""`bentoml build` makes a Bento from this repository, with the project inside it.

icecube-stream is not on PyPI, so the Bento must carry the project as a wheel and name no
`icecube-stream` requirement for an installer to look up. This runs the documented flow
(docs/model-api.md, "Building a Bento") in a scratch copy with its own BENTOML_HOME, and reads
the built Bento back. Nothing is installed from it (that needs PyPI, or Docker for an image).
"""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

pytestmark = pytest.mark.integration  # ~10 s: uv builds the wheel, bentoml imports the service

REPO = Path(__file__).resolve().parents[3]


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built Bento's folder in the scratch BENTOML_HOME."""
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` tells its children where it is
    if uv is None:
        pytest.skip("uv is not installed")
    root = tmp_path_factory.mktemp("bento-build")
    shutil.copytree(REPO / "bento", root / "bento")  # the bentofile's ../dist is beside it
    dist = root / "dist"
    run(uv, "build", "--wheel", "--out-dir", dist, REPO, cwd=REPO)
    run(uv, "export", "--frozen", "--no-default-groups", "--no-emit-project",
        "--no-emit-package", "bentoml", "--no-header", "--no-annotate", "--no-hashes",
        "--output-file", dist / "bento-requirements.txt", cwd=REPO)  # fmt: skip
    home = root / "bentoml-home"
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    out = run(sys.executable, "-m", "bentoml", "build", "bento", "--output", "tag",
              cwd=root, env=env)  # fmt: skip
    tag = out.strip().splitlines()[-1].removeprefix("__tag__:")
    name, _, bento_version = tag.partition(":")
    return home / "bentos" / name / bento_version


def test_the_bento_carries_the_project_wheel(bento: Path) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wheels = sorted(p.name for p in (bento / "env/python/wheels").iterdir())
    assert wheels == [f"icecube_stream-{project['version']}-py3-none-any.whl"]
    with zipfile.ZipFile(bento / "env/python/wheels" / wheels[0]) as wheel:
        names = set(wheel.namelist())
    # The service's own imports, and the topic declarations it reads at start.
    assert {"icecube_stream/serving/app.py", "icecube_stream/wire/topics/topics.yaml"} <= names
    assert (bento / "src/service.py").read_text() == (REPO / "bento/service.py").read_text()


def test_requirements_are_pinned_to_the_tested_versions_and_never_name_the_project(
    bento: Path,
) -> None:
    lines = (bento / "env/python/requirements.txt").read_text().splitlines()
    requirements = [Requirement(line) for line in lines if line and not line.startswith("#")]
    assert "icecube-stream" not in {r.name for r in requirements}  # not on PyPI: the wheel is
    unpinned = [str(r) for r in requirements if not str(r.specifier).startswith("==")]
    assert unpinned == []
    # Pinned from uv.lock: the versions installed here, where the tests run.
    applicable = [r for r in requirements if r.marker is None or r.marker.evaluate()]
    assert {r.name for r in applicable} >= {"bentoml", "torch", "mlflow"}
    differ = [
        f"{r.name}: {r.specifier} here {version(r.name)}"
        for r in applicable
        if str(r.specifier) != f"=={version(r.name)}"
    ]
    assert differ == []


def test_the_bento_describes_the_service(bento: Path) -> None:
    described = yaml.safe_load((bento / "bento.yaml").read_text())
    assert described["service"] == "service:DirectionService"
    assert described["name"] == "icecube-direction"
    assert described["bentoml_version"] == version("bentoml")
    assert {"name": "ICECUBE_MODEL_ALIAS", "value": "champion", "stage": "all"} in described["envs"]
    assert described["models"] == []  # the model comes from MLflow at start, not from the Bento
