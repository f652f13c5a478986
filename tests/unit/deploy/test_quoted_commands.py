"""Commands the alerts, runbooks, README and docs tell a user to run are code: each must parse."""

import re
import shlex
from pathlib import Path

import pytest
from deploy_checks import cli_argv_problem

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [
    "deploy/prometheus/alerts.yml",
    "README.md",
    *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md")),
]
QUOTED = re.compile(r"`icecube-stream ([^`]+)`")
FENCED = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.DOTALL)
PLACEHOLDER = re.compile(r"[A-Z][A-Z_0-9]*")
IN_BLOCK = re.compile(r"^\s*(?:\$ )?icecube-stream (.+)$", re.MULTILINE)


def quoted_commands() -> list[tuple[str, str]]:
    """Inline quotes (which may wrap across lines) and lines of fenced code blocks."""
    found = []
    for name in SOURCES:
        text = (ROOT / name).read_text()
        found += [(name, command) for command in QUOTED.findall(re.sub(r"\s+", " ", text))]
        for block in FENCED.findall(text):
            found += [(name, command) for command in IN_BLOCK.findall(block)]
    return found


def test_the_runbooks_quote_the_new_commands() -> None:
    commands = {command for _, command in quoted_commands()}
    assert "dlq replay --reason geometry-mismatch" in commands
    assert any(command.startswith("train --data DIR --geometry") for command in commands)


def runnable(command: str) -> tuple[list[str], bool]:
    """The argv a quote stands for, and whether it is a whole command line rather than a
    reference to one (`train`, `simulate …`). A synopsis (`bench [--rounds R] [--json]`) stands
    for its longest form, with the first of each `a|b` and 1 for each placeholder (`N`, `DIR`)."""
    words = shlex.split(command.replace("[", "").replace("]", ""), comments=True)
    argv = [
        "1" if PLACEHOLDER.fullmatch(word) else word.split("|")[0]
        for word in words
        if word not in ("…", "...")
    ]
    whole = len(argv) == len(words) and any(word.startswith("-") for word in argv)
    return argv, whole


@pytest.mark.parametrize(("source", "command"), quoted_commands())
def test_every_quoted_command_parses(source: str, command: str) -> None:
    argv, whole = runnable(command)
    problem = cli_argv_problem(argv)
    if problem is not None and not whole:  # a reference names a command, not all it needs
        problem = None if "Missing option" in problem or "no subcommand" in problem else problem
    assert problem is None, f"{source}: icecube-stream {command}"
