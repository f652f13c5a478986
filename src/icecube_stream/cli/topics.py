"""`icecube-stream topics apply`: the declared Kafka topics made real."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from icecube_stream.cli.common import console
from icecube_stream.cli.help_format import HELP_MARKUP
from icecube_stream.stack.kafka import current_settings

topics_app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    help="Kafka topics declared in topics/topics.yaml (partitions, configs, Avro schemas).",
    no_args_is_help=True,
)


@topics_app.command("apply")
def topics_apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report drift.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Create missing topics, raise partition counts, set configs; report what cannot be fixed.

    Exits 1 when drift remains (e.g. more partitions than declared: Kafka cannot shrink).
    """
    from icecube_stream.stream import topics

    changes = topics.apply(current_settings(), dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps({c.topic: {"action": c.action, "detail": c.detail} for c in changes}))
    else:
        for change in changes:
            console.print(f"{change.topic}: {change.action} {change.detail}".rstrip())
    if any(change.action in {"drift", "missing"} for change in changes):
        raise typer.Exit(1)
