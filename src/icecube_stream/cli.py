"""The `icecube-stream` command line: thin commands that call into the packages."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="icecube-stream: real-time neutrino-direction reconstruction on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def main() -> None:
    app()
