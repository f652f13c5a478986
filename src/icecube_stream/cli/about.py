"""What an operator asks of the installation itself: `--version`, and `config`, the settings
every command would run with. Errors across the project say "set ICECUBE_...", so `config`
shows each variable's name beside its value and where the value came from."""

from __future__ import annotations

import json
from importlib import metadata
from typing import Annotated, Any

import typer
from pydantic import SecretBytes, SecretStr, ValidationError
from rich.console import Console
from rich.table import Table

from icecube_stream.cli.common import console
from icecube_stream.config import Settings

PACKAGE = "icecube-stream"
MASK = "***"
SECRET_WORDS = ("token", "password", "secret")


def _print_version(value: bool) -> None:
    """Eager, so it answers before the app asks for a command."""
    if value:
        typer.echo(f"{PACKAGE} {metadata.version(PACKAGE)}")
        raise typer.Exit()


def root_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Options of `icecube-stream` itself, before any command."""


def env_name(field: str) -> str:
    return f"{Settings.model_config.get('env_prefix', '')}{field.upper()}"


def is_secret(field: str, value: Any) -> bool:
    """By type and by name, so a secret added as a plain str is still never printed."""
    return isinstance(value, SecretStr | SecretBytes) or any(w in field for w in SECRET_WORDS)


def effective_settings() -> dict[str, dict[str, Any]]:
    """Every field: its variable, JSON value (secrets masked) and source. Raises
    ValidationError for a bad variable and StackError where one contradicts the Kafka cluster."""
    from icecube_stream.stack.kafka import cluster_settings

    asked = Settings()
    settings = cluster_settings(asked)  # what current_settings() gives every other command
    values = settings.model_dump(mode="json")
    report = {}
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if getattr(asked, field) != value:
            source = "kafka cluster"  # recorded when the cluster was formatted; it wins
        elif field in asked.model_fields_set:
            source = "environment"
        else:
            source = "default"
        shown = MASK if value is not None and is_secret(field, value) else values[field]
        report[field] = {"variable": env_name(field), "value": shown, "source": source}
    return report


def config_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """The effective settings: each ICECUBE_* variable, its value and whether it came from the
    environment or the default. Secrets are masked.

    Exits 1 when a variable is invalid or contradicts the local Kafka cluster.
    """
    from icecube_stream.stack.service import StackError

    try:
        report = effective_settings()
    except ValidationError as error:
        # Only the field and the reason: the rejected input may be a secret.
        for problem in error.errors():
            name = env_name(str(problem["loc"][0])) if problem["loc"] else "settings"
            console.print(f"[red]error:[/red] {name}: {problem['msg']}", highlight=False)
        raise typer.Exit(1) from None
    except StackError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report))
        return
    # Not print_table: variable names must stay whole (they are copied); long values fold.
    table = Table(title="Effective settings")
    widest = max(len(entry["variable"]) for entry in report.values())
    table.add_column("variable", no_wrap=True, min_width=widest)
    table.add_column("value", overflow="fold")
    table.add_column("source", no_wrap=True)
    for entry in report.values():
        value = entry["value"]
        table.add_row(entry["variable"], "-" if value is None else str(value), entry["source"])
    Console().print(table)
