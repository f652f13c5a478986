"""Commands the alerts and runbooks tell an operator to run are code: each one must parse."""

import re
import shlex
from pathlib import Path

import pytest
from deploy_checks import cli_argv_problem

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ["deploy/prometheus/alerts.yml", "docs/operations.md", "docs/geometry.md"]
QUOTED = re.compile(r"`icecube-stream ([^`]+)`")


def quoted_commands() -> list[tuple[str, str]]:
    found = []
    for name in SOURCES:
        text = re.sub(r"\s+", " ", (ROOT / name).read_text())  # quotes may wrap across lines
        found += [(name, command) for command in QUOTED.findall(text)]
    return found


def test_the_runbooks_quote_the_new_commands() -> None:
    commands = {command for _, command in quoted_commands()}
    assert "dlq replay --reason geometry-mismatch" in commands
    assert any(command.startswith("train --data DIR --geometry") for command in commands)


@pytest.mark.parametrize(("source", "command"), quoted_commands())
def test_every_quoted_command_parses(source: str, command: str) -> None:
    argv = [word for word in shlex.split(command) if word not in ("…", "...")]
    assert cli_argv_problem(argv) is None, f"{source}: icecube-stream {command}"
