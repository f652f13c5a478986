"""`--help` is what a user reads first: a flag must not look like it takes a value (typer 0.29
prints `--json <bool>`; cli/help_format.py undoes that), while options with values keep their
type."""

from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from icecube_stream.cli import app

pytestmark = pytest.mark.unit


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The root and every command and subcommand under it."""
    found = [path]
    if hasattr(command, "list_commands"):
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):
            found += command_paths(command.get_command(ctx, name), (*path, name))
    return found


COMMANDS = command_paths(typer.main.get_command(app))


def render_help(*path: str) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def option_line(help_text: str, option: str) -> str:
    return next(line for line in help_text.splitlines() if f" {option} " in line)


def test_every_command_is_rendered() -> None:
    assert {("config",), ("alerts",), ("stack", "up"), ("dlq", "replay")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "root")
def test_flags_show_no_metavar(path: tuple[str, ...]) -> None:
    help_text = render_help(*path)
    assert "<bool>" not in help_text


@pytest.mark.parametrize(
    ("path", "option", "metavar"),
    [
        (("simulate",), "--events", "<int"),  # `<int range> [x>=1]`
        (("produce",), "--rate", "<float>"),
        (("produce",), "--data", "<path>"),
    ],
)
def test_options_with_values_keep_their_metavar(
    path: tuple[str, ...], option: str, metavar: str
) -> None:
    assert metavar in option_line(render_help(*path), option)
