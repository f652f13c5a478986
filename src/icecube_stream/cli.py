"""The `icecube-stream` command line: thin commands that call into the packages."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from icecube_stream.observe.commands import register as register_observe_commands
from icecube_stream.stack.kafka import current_settings

if TYPE_CHECKING:
    from icecube_stream.model.reconstructor import ModelReconstructor
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
register_observe_commands(app)  # alerts, check-truth

console = Console(stderr=True)
T = TypeVar("T")

Only = Annotated[
    str | None,
    typer.Option(help="Comma-separated services: kafka,mongo,prometheus,mlflow (default: all)."),
]


def _only(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], no_wrap: bool = False
) -> None:
    """A table of figures on stdout; `--json` variants print JSON instead."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=no_wrap)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


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

    _stack_call(lambda: manager.install(current_settings(), _only(only), report=console.print))


@stack_app.command("up")
def stack_up(
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
    netns: Annotated[
        bool | None,
        typer.Option(
            "--netns/--no-netns",
            help="Each Kafka node in a network namespace of its own (10.77.0.n:9092), so `chaos` "
            "can cut one off from the others and the clients. Needs root; fixed like --brokers.",
        ),
    ] = None,
) -> None:
    """Install what is missing, start the services and wait until each answers a health check."""
    from icecube_stream.stack import manager

    layout = {"kafka_brokers": brokers, "kafka_netns": netns}
    asked = {key: value for key, value in layout.items() if value is not None}
    settings = current_settings().model_copy(update=asked)
    statuses = _stack_call(lambda: manager.up(settings, _only(only), report=console.print))
    _print_status(statuses)


@stack_app.command("down")
def stack_down(only: Only = None) -> None:
    """Stop exactly the processes `stack up` started (by pid file); nothing else is touched."""
    from icecube_stream.stack import manager

    _stack_call(lambda: manager.down(current_settings(), _only(only), report=console.print))


@stack_app.command("status")
def stack_status(
    only: Only = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Each service with its endpoint, pid and health; exits 1 unless all are healthy."""
    from icecube_stream.stack import manager

    statuses = _stack_call(lambda: manager.status(current_settings(), _only(only)))
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
    colours = {"healthy": "green", "unhealthy": "red", "foreign": "yellow", "stopped": "dim"}
    _print_table(
        f"local stack ({current_settings().state_dir})",
        ("service", "endpoint", "pid", "health"),
        [(s.name, s.endpoint, str(s.pid or "-"), f"[{colours[s.health]}]{s.health}[/]")
         for s in statuses],
        no_wrap=True,
    )  # fmt: skip
    console.print(f"logs: {current_settings().state_dir / 'logs'}")


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
    first_event_id: Annotated[
        int,
        typer.Option(
            help="Event ids count up from here; keep data sets sent to one pipeline apart."
        ),
    ] = 1,
    geometry: Annotated[
        str | None,
        typer.Option(
            "--geometry", help="Another detector's sensor_geometry.csv (default: IceCube's)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events per batch_N.parquet file.")
    ] = 200_000,
) -> None:
    """Simulate IceCube events and write them as a Kaggle-format data set (split `train`).

    The detector is IceCube's real sensor geometry, shipped with the package; the data set's
    sensor_geometry.csv records it, and with it the geometry identity that models check.
    """
    import time
    from pathlib import Path

    from rich.progress import Progress

    from icecube_stream.events.dataset import DatasetWriter
    from icecube_stream.events.geometry import geometry_name, load_geometry
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.events.simulator import Simulator

    err = Console(stderr=True)
    try:
        detector = load_geometry(geometry)
    except EventDataError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    simulator = Simulator(detector, seed=seed, first_event_id=first_event_id)
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
        f"(simulation and writing, one process) -> {out}, geometry "
        f"{geometry_name(detector.identity)}",
        highlight=False,
    )


@app.command("evaluate")
def evaluate_command(
    data: Annotated[str, typer.Option("--data", help="Kaggle-layout data directory.")],
    model: Annotated[
        str, typer.Option("--model", help="linefit, champion, or an MLflow model URI / directory.")
    ] = "linefit",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")
    ] = None,
) -> None:
    """Angular error of a reconstructor on a data set with truth, overall and per event type."""
    from rich.progress import Progress

    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.evaluate import evaluate, get_reconstructor
    from icecube_stream.events.layout import EventDataError

    err = Console(stderr=True)
    try:
        reconstructor = (
            get_reconstructor(model) if model == "linefit" else _model_reconstructor(model)
        )
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
    calibration = getattr(reconstructor, "calibration", None)
    if calibration is not None:
        summary["calibration"] = calibration(result.errors)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    _print_table(
        f"{model} on {data}",
        ("events", "n", "mean angular error (rad)", "median (rad)"),
        [
            (name, str(figures["n_events"]), f"{figures['mean_angular_error']:.3f}",
             f"{figures['median_angular_error']:.3f}")
            for name, figures in [("all", summary), *summary["per_type"].items()]
        ],
    )  # fmt: skip
    if "calibration" in summary:
        cal = summary["calibration"]
        Console().print(
            f"calibration: {cal['fraction_within_1sigma']:.1%} of events within the predicted "
            f"1 sigma (vMF expects {cal['expected_within_1sigma']:.1%}), "
            f"{cal['fraction_within_2sigma']:.1%} within 2 sigma "
            f"(expects {cal['expected_within_2sigma']:.1%})"
        )


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

    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.geometry import geometry_name
    from icecube_stream.events.layout import EventDataError
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
    stats["geometry_id"] = dataset.geometry.identity
    if as_json:
        typer.echo(json.dumps(stats))
        return
    _print_table(
        f"event statistics: {data}",
        ("statistic", "this data set", "real events (reference)"),
        stats_rows(stats),
    )
    if stats.get("event_types"):
        Console().print(f"event types: {stats['event_types']}")
    Console().print(f"geometry: {geometry_name(dataset.geometry.identity)}")


# ------------------------------------------------------------------------------ streaming

topics_app = typer.Typer(
    help="Kafka topics declared in topics/topics.yaml (partitions, configs, Avro schemas).",
    no_args_is_help=True,
)
app.add_typer(topics_app, name="topics")


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


@app.command("produce")
def produce_command(
    data: Annotated[Path, typer.Option(help="Kaggle-layout data set (folder).")],
    rate: Annotated[
        float | None, typer.Option(help="Events per second (default: as fast as possible).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    loop: Annotated[bool, typer.Option(help="Start over at the end, until --limit.")] = False,
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep watching DATA/<split>/ for new batch files (move them in atomically); "
            "archive each once Kafka acknowledged all its events; resume after a restart. "
            "Files are known by their SHA-256, not their name: one sent in full before is "
            "archived without resending.",
        ),
    ] = False,
    archive: Annotated[
        Path | None, typer.Option(help="Where --watch moves finished files [DATA/archive].")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Send a data set's events to `icecube.pulses` as frames (acks=all, idempotent producer).

    Exits 1 if any event was not acknowledged by Kafka.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.observe.http import serve_metrics
    from icecube_stream.stream import emitter, topics
    from icecube_stream.wire.topics import PULSES

    settings = current_settings()
    try:
        topics.require_topics(settings, PULSES)
        dataset = None if watch else EventDataset(data, split=split)
    except (EventDataError, topics.TopicMissingError) as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    serve_metrics(settings.host, settings.emitter_metrics_port)
    if dataset is None:
        from icecube_stream.stream.watcher import watch as watch_folder

        console.print(f"watching {data / split} (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            watch_folder(settings, data, archive or data / "archive", split, rate,
                         say=console.print)  # fmt: skip
        return
    total = limit if limit is not None else (None if loop else dataset.count_events())
    with Progress(
        TextColumn("producing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), console=console, disable=as_json,
    ) as progress:  # fmt: skip
        task = progress.add_task("produce", total=total, rate="")

        def show(report: emitter.EmitReport, sent: int) -> None:
            progress.update(task, completed=sent, rate=f"{report.events} acked")

        report = emitter.emit(
            settings, emitter.dataset_batches(dataset, limit, loop), rate_hz=rate, on_progress=show
        )
    summary = {
        "events": report.events,
        "frames": report.frames,
        "bytes": report.bytes,
        "failed_events": report.failed_events,
        "unacknowledged_frames": report.unacknowledged_frames,
        "seconds": round(report.seconds, 3),
        "events_per_s": round(report.events_per_s, 1),
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(
            f"{report.events} events in {report.frames} frames to {settings.topic(PULSES)} "
            f"in {report.seconds:.1f} s ({report.events_per_s:,.0f} events/s)"
        )
    if not report.ok:
        console.print(
            f"[red]error:[/red] {report.failed_events} events in failed frames, "
            f"{report.unacknowledged_frames} frames unacknowledged"
        )
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------- model
# train / model bench, and the model side of `evaluate`: thin wrappers over icecube_stream.model
# (torch and mlflow are imported inside the commands).


def _model_reconstructor(model: str) -> ModelReconstructor:
    from icecube_stream.model.reconstructor import ModelReconstructor
    from icecube_stream.model.registry import load_model

    return ModelReconstructor(load_model(model, current_settings()))


model_app = typer.Typer(help="The direction model: inference benchmark.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@app.command("train")
def train_command(
    data: Annotated[str, typer.Option("--data", help="Kaggle-layout data set with truth.")],
    config: Annotated[str, typer.Option("--config", help="quick or default.")] = "quick",
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Override the config's epochs.")
    ] = None,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=100, help="Use at most N training events.")
    ] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Move the champion alias even if not better.")
    ] = False,
    geometry: Annotated[
        str | None,
        typer.Option(
            "--geometry",
            help="Train for another detector, given its sensor_geometry.csv (default: IceCube). "
            "A data set of a different geometry is refused.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Train the direction model, track it in MLflow, register it, maybe promote it champion.

    The model records the geometry identity of its detector (IceCube's unless --geometry), as
    the MLflow tag `geometry_id`; it refuses data of any other geometry.
    """
    import contextlib
    import sys
    from dataclasses import replace
    from pathlib import Path

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from icecube_stream.events.geometry import load_geometry
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.model.configs import get_config
    from icecube_stream.model.train import EpochReport
    from icecube_stream.model.training_run import Hooks, train_and_register

    err = Console(stderr=True)
    settings = current_settings()
    try:
        chosen = get_config(config, epochs)
        detector = load_geometry(geometry)
    except ValueError as error:  # EventDataError included
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(2) from None
    chosen = replace(chosen, threads=settings.torch_threads)
    if max_events is not None:
        chosen = replace(chosen, max_train_events=max_events)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task(f"loading {data}", total=None, info="")

        def on_loaded(n_train: int, n_val: int) -> None:
            progress.update(
                task,
                description=f"training {chosen.name}",
                total=n_train * chosen.epochs,
                info=f"{n_train} train / {n_val} val events",
            )

        def on_epoch(report: EpochReport) -> None:
            progress.update(
                task,
                info=f"epoch {report.epoch}/{chosen.epochs} val error "
                f"{report.val_mean_angular_error:.3f} rad",
            )

        hooks = Hooks(
            on_loaded=on_loaded,
            on_step=lambda n: progress.advance(task, n),
            on_epoch=on_epoch,
            on_message=lambda m: err.print(m, highlight=False),
        )
        try:
            # MLflow prints run links with print(); stdout is reserved for --json.
            with contextlib.redirect_stdout(sys.stderr):
                outcome = train_and_register(
                    Path(data), chosen, settings, promote, hooks, geometry=detector
                )
        except (EventDataError, ValueError) as error:
            err.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None
    summary = outcome.as_dict()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    cal = outcome.calibration
    rows = [
        ("validation mean error (rad)", f"{outcome.val_mean_angular_error:.4f}"),
        ("validation median error (rad)", f"{outcome.val_median_angular_error:.4f}"),
        ("LineFit on the same events", f"{outcome.linefit_val_mean_angular_error:.4f}"),
        (
            "within 1 / 2 sigma",
            f"{cal['fraction_within_1sigma']:.1%} / {cal['fraction_within_2sigma']:.1%} "
            f"(vMF expects {cal['expected_within_1sigma']:.1%} / "
            f"{cal['expected_within_2sigma']:.1%})",
        ),
        ("training time", f"{outcome.train_seconds:.0f} s"),
        ("promoted", f"{outcome.promoted}: {outcome.reason}"),
        ("MLflow run", outcome.run_id),
    ]
    title = f"{settings.model_name} v{outcome.model_version} ({chosen.name})"
    _print_table(title, ("figure", "value"), rows)


@app.command("predict")
def predict_command(
    data: Annotated[str, typer.Option("--data", help="Kaggle-layout data directory.")],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write, one row per event.")],
    model: Annotated[
        str, typer.Option("--model", help="champion, or an MLflow model URI / directory.")
    ] = "champion",
    split: Annotated[str, typer.Option("--split", help="train or test.")] = "train",
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")
    ] = None,
) -> None:
    """Directions and uncertainties for a data set, without the streaming pipeline.

    Columns: event_id, azimuth, zenith, x, y, z, angular_uncertainty (rad), kappa. Data of a
    detector other than the model's is refused, naming both geometries.
    """
    from rich.progress import Progress

    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.model.predict import predict_dataset
    from icecube_stream.model.registry import load_model

    err = Console(stderr=True)
    try:
        direction_model = load_model(model, current_settings())
        dataset = EventDataset(data, split=split)
        total = dataset.count_events()
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(f"predicting with {model}", total=max_events or total)
            table = predict_dataset(
                direction_model, dataset, max_events, lambda n: progress.advance(task, n)
            )
    except (EventDataError, ValueError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(out)
    err.print(f"{table.height:,} predictions -> {out}", highlight=False)


@model_app.command("bench")
def model_bench(
    model: Annotated[
        str,
        typer.Option(
            "--model", help="champion, an MLflow URI / directory, or untrained (speed only)."
        ),
    ] = "champion",
    config: Annotated[
        str, typer.Option("--config", help="Architecture for --model untrained.")
    ] = "quick",
    data: Annotated[
        str | None, typer.Option("--data", help="Events to run on (default: 4096 simulated).")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """In-process CPU inference speed (events/s) at batch sizes 1, 32 and 256."""
    from icecube_stream.events.batch import concat_batches
    from icecube_stream.events.geometry import icecube_geometry
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.events.simulator import Simulator
    from icecube_stream.model.bench import benchmark
    from icecube_stream.model.configs import get_config
    from icecube_stream.model.data import load_events
    from icecube_stream.model.inference import DirectionModel
    from icecube_stream.model.registry import load_model

    err = Console(stderr=True)
    settings = current_settings()
    try:
        if data is not None:
            events = load_events(data, max_events=8192)
        else:
            events = concat_batches(list(Simulator(icecube_geometry(), seed=7).iter_batches(4096)))
        if model == "untrained":
            chosen = get_config(config)
            direction_model = DirectionModel(chosen.features, chosen.network, events.geometry)
        else:
            direction_model = load_model(model, settings)
            direction_model.check_geometry(events.geometry)
    except (EventDataError, ValueError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    result = benchmark(direction_model, events, threads=threads or settings.torch_threads)
    result["model"] = model
    if as_json:
        typer.echo(json.dumps(result))
        return
    _print_table(
        f"inference on CPU, {result['threads']} threads ({model})",
        ("batch size", "events", "end to end (events/s)", "network only (events/s)"),
        [
            (size, str(figures["events"]), f"{figures['end_to_end_eps']:,.0f}",
             f"{figures['network_eps']:,.0f}")
            for size, figures in result["batch_sizes"].items()
        ],
    )  # fmt: skip


predictions_app = typer.Typer(help="Predictions on the `icecube.predictions` topic.")
app.add_typer(predictions_app, name="predictions")


@predictions_app.command("tail")
def predictions_tail(
    last: Annotated[int, typer.Option("--last", "-n", help="Show the newest N first.")] = 10,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the newest predictions (direction, uncertainty, model, latency); Ctrl-C stops."""
    import math

    from icecube_stream.stream.tail import tail

    settings = current_settings()
    try:
        for record in tail(settings, last, follow):
            if as_json:
                typer.echo(json.dumps(record), nl=True)
                continue
            latency = (record["predicted_at_ns"] - record["emitted_at_ns"]) / 1e6
            flags = f" [{','.join(record['flags'])}]" if record["flags"] else ""
            typer.echo(
                f"event {record['event_id']:>12}  az {math.degrees(record['azimuth']):6.1f}°  "
                f"zen {math.degrees(record['zenith']):5.1f}°  "
                f"±{math.degrees(record['angular_uncertainty']):5.1f}°  "
                f"{record['model_name']} v{record['model_version']}  "
                f"{record['n_pulses']:>5} pulses  {latency:7.1f} ms{flags}"
            )
    except KeyboardInterrupt:
        pass


dlq_app = typer.Typer(
    help="The dead-letter topic `icecube.pulses.dlq`: rejected input with its reason.",
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("replay")
def dlq_replay(
    reason: Annotated[
        str | None,
        typer.Option(help="Only records of this dlq.reason, e.g. geometry-mismatch [all]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Send dead-lettered messages back to the topic they came from, after fixing the cause.

    Each record is re-sent once: a consumer group per reason remembers how far replay got, and
    moves only after Kafka acknowledged every re-sent message. Exits 1 if any send failed.
    """
    from icecube_stream.stream.dlq import replay

    report = replay(current_settings(), reason)
    figures = {"replayed": report.replayed, "skipped": report.skipped,
               "truncated": report.truncated, "failed": report.failed}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        console.print(
            f"{report.replayed} replayed, {report.skipped} of other reasons left, "
            f"{report.truncated} stored truncated (cannot be replayed), {report.failed} failed"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("worker", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker_command(ctx: typer.Context) -> None:
    """Run the Faust stream worker (same as `faust -A icecube_stream.app worker -l info`).

    Extra arguments go to Faust, e.g. `icecube-stream worker --web-port 6067`.
    """
    import sys

    from icecube_stream.app import app as faust_app

    sys.argv = ["faust", "worker", "-l", "info", *ctx.args]
    faust_app.main()


@app.command("bench")
def bench_command(
    events: Annotated[int, typer.Option(help="Simulated events (half for each phase).")] = 20_000,
    rate: Annotated[float, typer.Option(help="Offered rate of the latency phase, Hz.")] = 2700.0,
    data: Annotated[
        Path | None, typer.Option(help="Use this Kaggle-layout data set instead of simulating.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """End-to-end throughput and latency on this machine, beside raw Kafka, in-process inference
    and one-HTTP-call-per-event, with CPU seconds per component. Needs `stack up` and a champion.
    """
    from icecube_stream.events.batch import concat_batches
    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.geometry import icecube_geometry
    from icecube_stream.events.simulator import Simulator
    from icecube_stream.stream.bench import Bench

    def say(message: str) -> None:
        if not as_json:
            console.print(message)

    if data is not None:
        batch = concat_batches(list(EventDataset(data).iter_batches(max_events=events)))
    else:
        say(f"simulating {events:,} events")
        batch = concat_batches(list(Simulator(icecube_geometry(), seed=7).iter_batches(events)))
    result = Bench(current_settings(), batch, say).run(rate).as_dict()
    if as_json:
        typer.echo(json.dumps(result))
        return
    rows = [
        ("end-to-end throughput (events/s)", f"{result['throughput_eps']:,.0f}"),
        (f"latency p50 at {rate:,.0f} Hz (s)", f"{result['latency_p50_s']:.3f}"),
        (f"latency p99 at {rate:,.0f} Hz (s)", f"{result['latency_p99_s']:.3f}"),
        ("lost / duplicated", f"{result['lost']} / {result['duplicated']}"),
        *[(f"limit: {k} (events/s)", f"{v:,.0f}") for k, v in result["reference"].items()],
        ("speed-up over one HTTP call per event", f"{result['speedup_over_naive']}x"),
        *[(f"CPU s per 1,000 events: {k}", f"{v:.3f}")
          for k, v in result["cpu_s_per_1000_events"].items()],
    ]  # fmt: skip
    _print_table(f"bench: {result['events']:,} events on this machine", ("measure", "value"), rows)


@app.command("chaos")
def chaos_command(
    events: Annotated[
        int, typer.Option(help="Simulated events in the pool the traffic loops over.")
    ] = 20_000,
    rate: Annotated[float, typer.Option(help="Offered rate throughout, Hz.")] = 2700.0,
    worker_kills: Annotated[
        int, typer.Option(help="Worker SIGKILLs, each while it holds work.")
    ] = 10,
    broker_down: Annotated[
        float, typer.Option(help="Seconds one broker of a 3-node cluster stays down (0: none).")
    ] = 30.0,
    partition: Annotated[
        float,
        typer.Option(help="Seconds one broker is cut off, on a cluster from `--netns` (0: none)."),
    ] = 30.0,
    mongo_down: Annotated[float, typer.Option(help="Seconds MongoDB stays down.")] = 30.0,
    model_down: Annotated[float, typer.Option(help="Seconds the model server stays down.")] = 90.0,
    model_errors: Annotated[
        float, typer.Option(help="Seconds the model server's answers are replaced by 500s.")
    ] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Faults on the live stack while events flow, then what every sink received, per fault.

    A private pipeline (like `bench`): worker SIGKILLs while it holds work, the Kafka broker
    killed (and, on a cluster from `stack up --brokers 3`, one broker down for 30 s; with
    `--netns` also one cut off by a network partition for 30 s), MongoDB and
    the model server down, a spell of 500 answers from the model server, a second worker joining
    and leaving, and a poison corpus of 30+ kinds written straight to the raw topic. Prints, per
    fault: events in flight when it hit, predictions written per second while it lasted, events
    lost, duplicates in MongoDB and on the predictions topic, dead letters by reason, seconds
    until the backlog recovered. Needs `stack up` and a champion; takes minutes.
    Exits 1 when an event was lost or written twice to MongoDB, a poison message did not end as
    expected, or the backlog took over 30 s to recover.
    """
    from icecube_stream.events.batch import concat_batches
    from icecube_stream.events.geometry import icecube_geometry
    from icecube_stream.events.simulator import Simulator
    from icecube_stream.stream.chaos import Chaos, Plan

    def say(message: str) -> None:
        if not as_json:
            console.print(message)

    pool = concat_batches(list(Simulator(icecube_geometry(), seed=11).iter_batches(events)))
    plan = Plan(worker_kills=worker_kills, broker_down_s=broker_down, partition_s=partition,
                mongo_down_s=mongo_down, model_down_s=model_down,
                model_errors_s=model_errors)  # fmt: skip
    outcome = Chaos(current_settings(), pool, say).run(plan, rate)
    if as_json:
        result = {"rows": [r.as_dict() for r in outcome.rows], "ok": outcome.ok,
                  "poison_mismatches": outcome.poison_mismatches,
                  "emitter_failed_events": outcome.emitter_failed_events}  # fmt: skip
        typer.echo(json.dumps(result))
    else:
        header = ("fault", "in flight when hit", "events", "written/s during", "lost",
                  "dup MongoDB", "dup predictions topic", "dead letters by reason",
                  "recovered (s)")  # fmt: skip
        rows = [(r.fault, r.in_flight, f"{r.events:,}", f"{r.written_per_s:,.0f}", str(r.lost),
                 str(r.mongo_duplicates),
                 str(r.topic_duplicates),
                 ", ".join(f"{k} {v}" for k, v in sorted(r.dead_letters.items())) or "-",
                 "-" if r.recovered_s is None else f"{r.recovered_s:.1f}")
                for r in outcome.rows]  # fmt: skip
        _print_table("chaos: faults while events flow", header, rows, no_wrap=True)
        for line in outcome.poison_mismatches:
            console.print(f"[red]poison:[/red] {line}", highlight=False)
    if not outcome.ok:
        raise typer.Exit(1)


@app.command("demo")
def demo_command(
    events: Annotated[int, typer.Option(help="Simulated events to send.")] = 5000,
    rate: Annotated[float, typer.Option(help="Offered rate, events per second.")] = 2700.0,
    workdir: Annotated[Path, typer.Option(help="Where the demo data sets go.")] = Path(
        "/tmp/icecube-demo"
    ),
) -> None:
    """The pipeline end to end on simulated events (run after `stack up`; `make demo` does).

    Trains the quick model first if there is no champion, starts the model server and the
    worker, sends the events, waits for every prediction and prints a summary. The pipeline
    keeps running until `make stack-down`.
    """
    from icecube_stream import demo

    settings = current_settings()
    summary = demo.run(settings, workdir, events, rate, say=console.print)
    typer.echo("\n".join(summary.lines(settings)))
