"""`icecube-stream stack ...`: the local services as supervised processes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from icecube_stream.cli.common import console, print_table
from icecube_stream.cli.help_format import HELP_MARKUP
from icecube_stream.stack.kafka import current_settings

if TYPE_CHECKING:
    from icecube_stream.stack.manager import ServiceStatus

stack_app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    help="The local stack of real services (Kafka, MongoDB wire, MLflow, Prometheus with "
    "Alertmanager and the blackbox exporter) and the "
    "pipeline's components (model-server, worker) run as plain processes. Ports and "
    "directories come from ICECUBE_* environment variables.",
    no_args_is_help=True,
)

T = TypeVar("T")

SERVICE_NAMES = "kafka, mongo, mlflow, alertmanager, blackbox, prometheus, model-server, worker"
Names = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="SERVICE",
        help=f"Services, by name or comma-separated: {SERVICE_NAMES}.",
        show_default=False,
    ),
]
Only = Annotated[str | None, typer.Option(help="The same as SERVICE..., comma-separated.")]


def _names(names: list[str] | None, only: str | None) -> list[str] | None:
    """`stack up worker model-server`, `stack up worker,model-server` and `--only` alike."""
    words = [*(names or []), *([only] if only else [])]
    picked = [name.strip() for word in words for name in word.split(",") if name.strip()]
    return picked or None


def _stack_call(call: Callable[[], T]) -> T:
    """A stack failure as one red line and exit 1, not a traceback."""
    from icecube_stream.stack.service import StackError

    try:
        return call()
    except StackError as error:
        console.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(1) from None


@stack_app.command("install")
def stack_install(names: Names = None, only: Only = None) -> None:
    """Fetch or build the services (Kafka jars, FerretDB, Prometheus) into the cache; idempotent."""
    from icecube_stream.stack import manager

    picked = _names(names, only)
    _stack_call(lambda: manager.install(current_settings(), picked, report=console.print))


@stack_app.command("up")
def stack_up(
    names: Names = None,
    only: Only = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            "--brokers",
            min=1,
            max=4,
            help="Kafka nodes (a KRaft cluster on this machine, node n on port 9092 + 2(n-1)); "
            "fixed when the cluster's storage is first made. Topics then get 3 replicas and "
            "need 2 in sync.",
        ),
    ] = None,
    secure: Annotated[
        bool | None,
        typer.Option(
            "--secure/--no-secure",
            help="Kafka on SASL_SSL with SCRAM users and ACLs (CA and passwords made in the "
            "state folder), the model server with a token. Fixed like --brokers; commands then "
            "act as the stack's owner. docs/security.md.",
            show_default=False,
        ),
    ] = None,
    netns: Annotated[
        bool | None,
        typer.Option(
            "--netns/--no-netns",
            help="Each Kafka node in a network namespace of its own (10.77.0.n:9092), so `chaos` "
            "can cut one off from the others and the clients. Needs root; fixed like --brokers.",
        ),
    ] = None,
) -> None:
    """Install what is missing, start the services and wait until each answers a health check.

    Without SERVICE, the infrastructure (kafka, mongo, mlflow, alertmanager, blackbox,
    prometheus); the pipeline's
    components start when named: `stack up model-server worker` (they need a champion model).
    """
    from icecube_stream.stack import manager

    layout = {"kafka_brokers": brokers, "kafka_netns": netns, "stack_secure": secure}
    asked = {key: value for key, value in layout.items() if value is not None}
    settings = current_settings().model_copy(update=asked)
    picked = _names(names, only)
    statuses = _stack_call(lambda: manager.up(settings, picked, report=console.print))
    _print_status(statuses)


@stack_app.command("down")
def stack_down(names: Names = None, only: Only = None) -> None:
    """Stop exactly the processes `stack up` started (by pid file and run tag), every service
    unless named; nothing else is touched."""
    from icecube_stream.stack import manager

    picked = _names(names, only)
    _stack_call(lambda: manager.down(current_settings(), picked, report=console.print))


@stack_app.command("status")
def stack_status(
    names: Names = None,
    only: Only = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Every service the stack knows (or those named), running or not, with endpoint, pid and
    health. Exits 1 when something needs acting on: an infrastructure service not healthy, or
    a pipeline component started and not healthy since (exited, orphaned, unhealthy)."""
    from icecube_stream.stack import manager

    statuses = _stack_call(lambda: manager.status(current_settings(), _names(names, only)))
    if as_json:
        services = {
            s.name: {"endpoint": s.endpoint, "pid": s.pid, "health": s.health} for s in statuses
        }
        typer.echo(json.dumps({"healthy": all(s.ok for s in statuses), "services": services}))
    else:
        _print_status(statuses)
    if not all(s.ok for s in statuses):
        raise typer.Exit(1)


def _print_status(statuses: Sequence[ServiceStatus]) -> None:
    from icecube_stream.stack.manager import HEALTH

    colours = {"healthy": "green", "unhealthy": "red", "stopped": "dim", "exited": "red",
               "orphaned": "red", "foreign": "yellow"}  # fmt: skip
    print_table(
        f"local stack ({current_settings().state_dir})",
        ("service", "endpoint", "pid", "health"),
        [(s.name, s.endpoint, str(s.pid or "-"), f"[{colours[s.health]}]{s.health}[/]")
         for s in statuses],
        no_wrap=True,
    )  # fmt: skip
    for health in sorted({s.health for s in statuses} - {"healthy"}):
        console.print(f"{health}: {HEALTH[health]}", highlight=False)
    console.print(f"logs: {current_settings().state_dir / 'logs'}")
