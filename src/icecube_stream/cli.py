"""The `icecube-stream` command line: thin commands that call into the packages."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from icecube_stream.config import get_settings

if TYPE_CHECKING:
    from icecube_stream.stack.manager import ServiceStatus

app = typer.Typer(
    help="icecube-stream: real-time neutrino-direction reconstruction on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
stack_app = typer.Typer(
    help="The local stack of real services (Kafka, MongoDB wire, Prometheus, MLflow) run as "
    "plain processes. Ports and directories come from ICECUBE_* environment variables.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")

console = Console(stderr=True)
T = TypeVar("T")

Only = Annotated[
    str | None,
    typer.Option(help="Comma-separated services: kafka,mongo,prometheus,mlflow (default: all)."),
]


def _only(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _stack_call(call: Callable[[], T]) -> T:
    from icecube_stream.stack.service import StackError

    try:
        return call()
    except StackError as error:
        console.print(f"[red]error:[/red] {error}", markup=True, highlight=False)
        raise typer.Exit(1) from None


@stack_app.command("install")
def stack_install(only: Only = None) -> None:
    """Fetch or build the services (Kafka jars, FerretDB, Prometheus) into the cache; idempotent."""
    from icecube_stream.stack import manager

    _stack_call(lambda: manager.install(get_settings(), _only(only), report=console.print))


@stack_app.command("up")
def stack_up(only: Only = None) -> None:
    """Install what is missing, start the services and wait until each answers a health check."""
    from icecube_stream.stack import manager

    statuses = _stack_call(lambda: manager.up(get_settings(), _only(only), report=console.print))
    _print_status(statuses)


@stack_app.command("down")
def stack_down(only: Only = None) -> None:
    """Stop exactly the processes `stack up` started (by pid file); nothing else is touched."""
    from icecube_stream.stack import manager

    _stack_call(lambda: manager.down(get_settings(), _only(only), report=console.print))


@stack_app.command("status")
def stack_status(
    only: Only = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Each service with its endpoint, pid and health; exits 1 unless all are healthy."""
    from icecube_stream.stack import manager

    statuses = _stack_call(lambda: manager.status(get_settings(), _only(only)))
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
    table = Table(title=f"local stack ({get_settings().state_dir})")
    for column in ("service", "endpoint", "pid", "health"):
        table.add_column(column, no_wrap=True)
    colours = {"healthy": "green", "unhealthy": "red", "foreign": "yellow", "stopped": "dim"}
    for s in statuses:
        health = f"[{colours[s.health]}]{s.health}[/]"
        table.add_row(s.name, s.endpoint, str(s.pid or "-"), health)
    Console().print(table)
    console.print(f"logs: {get_settings().state_dir / 'logs'}")


def main() -> None:
    app()


# ---------------------------------------------------------------------------- event data
# simulate / evaluate / stats: thin wrappers over icecube_stream.events (imports stay inside the
# commands so `--help` does not pay for numpy and polars).


@app.command("simulate")
def simulate(
    events: Annotated[int, typer.Option("--events", min=1, help="Triggered events to write.")],
    out: Annotated[str, typer.Option("--out", help="Output directory (Kaggle layout).")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same data.")] = 0,
    geometry: Annotated[
        str | None, typer.Option("--geometry", help="A sensor_geometry.csv to use instead.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events per batch_N.parquet file.")
    ] = 200_000,
) -> None:
    """Simulate IceCube-like events and write them as a Kaggle-format data set (split `train`)."""
    import time
    from pathlib import Path

    from rich.progress import Progress

    from icecube_stream.events.format import DatasetWriter, EventDataError
    from icecube_stream.events.geometry import load_geometry
    from icecube_stream.events.simulator import Simulator

    err = Console(stderr=True)
    try:
        detector = load_geometry(geometry)
    except EventDataError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    simulator = Simulator(detector, seed=seed)
    started = time.perf_counter()
    with (
        Progress(console=err, transient=False) as progress,
        DatasetWriter(Path(out), detector, events_per_file=batch_size) as writer,
    ):
        task = progress.add_task("simulating", total=events)
        for batch in simulator.iter_batches(events):
            writer.append(batch)
            progress.advance(task, batch.n_events)
    seconds = time.perf_counter() - started
    err.print(
        f"{events} events in {seconds:.1f} s: {events / seconds:,.0f} events/s "
        f"(simulation and writing, one process) -> {out}",
        highlight=False,
    )


@app.command("evaluate")
def evaluate_command(
    data: Annotated[str, typer.Option("--data", help="Kaggle-layout data directory.")],
    model: Annotated[str, typer.Option("--model", help="Reconstructor: linefit.")] = "linefit",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")
    ] = None,
) -> None:
    """Angular error of a reconstructor on a data set with truth, overall and per event type."""
    from rich.progress import Progress

    from icecube_stream.events.evaluate import evaluate, get_reconstructor
    from icecube_stream.events.format import EventDataError, EventDataset

    err = Console(stderr=True)
    try:
        reconstructor = get_reconstructor(model)
        dataset = EventDataset(data)
        total = dataset.scan_meta().select("event_id").collect().height
        if max_events is not None:
            total = min(total, max_events)
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(f"evaluating {model}", total=total)
            result = evaluate(
                dataset.iter_batches(max_events=max_events),
                reconstructor,
                on_batch=lambda n: progress.advance(task, n),
            )
    except (EventDataError, ValueError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"{model} on {data}")
    for column in ("events", "n", "mean angular error (rad)", "median (rad)"):
        table.add_column(column)
    rows = [("all", summary), *summary["per_type"].items()]
    for name, figures in rows:
        table.add_row(
            name,
            str(figures["n_events"]),
            f"{figures['mean_angular_error']:.3f}",
            f"{figures['median_angular_error']:.3f}",
        )
    Console().print(table)


@app.command("stats")
def stats_command(
    data: Annotated[str, typer.Option("--data", help="Kaggle-layout data directory.")],
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "train",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Look at the first N events only.")
    ] = 200_000,
) -> None:
    """Event statistics of a data set beside the ranges real IceCube events show."""
    from rich.progress import Progress

    from icecube_stream.events.format import EventDataError, EventDataset
    from icecube_stream.events.stats import compute_stats, stats_rows

    err = Console(stderr=True)
    try:
        dataset = EventDataset(data, split=split)
        with Progress(console=err, transient=True) as progress:
            total = dataset.count_events()
            if max_events is not None:
                total = min(total, max_events) if total is not None else max_events
            task = progress.add_task("reading", total=total)
            stats = compute_stats(
                dataset.iter_batches(max_events=max_events),
                on_batch=lambda n: progress.advance(task, n),
            ).as_dict()
    except EventDataError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(stats))
        return
    table = Table(title=f"event statistics: {data}")
    for column in ("statistic", "this data set", "real events (reference)"):
        table.add_column(column)
    for row in stats_rows(stats):
        table.add_row(*row)
    Console().print(table)
    if stats.get("event_types"):
        Console().print(f"event types: {stats['event_types']}")
