"""The model commands, `train`, `predict` and `model bench`: thin wrappers over
icecube_stream.model (torch and mlflow are imported inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from icecube_stream.cli.common import print_table
from icecube_stream.cli.help_format import HELP_MARKUP
from icecube_stream.stack.kafka import current_settings

model_app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    help="The direction model: inference benchmark.",
    no_args_is_help=True,
)


def train_command(
    data: Annotated[Path, typer.Option("--data", help="Kaggle-layout data set with truth.")],
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
    the MLflow tag `geometry_id`; it refuses data of any other geometry. Angles are printed in
    degrees; --json gives radians (keys ending in `_rad`).
    """
    import contextlib
    import math
    import sys
    from dataclasses import replace

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
                f"{math.degrees(report.val_mean_angular_error):.1f}°",
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
                    data, chosen, settings, promote, hooks, geometry=detector
                )
        except (EventDataError, ValueError) as error:
            err.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None
    summary = outcome.as_dict()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    cal = outcome.calibration
    mean, median, linefit = (
        math.degrees(radians)
        for radians in (
            outcome.val_mean_angular_error_rad,
            outcome.val_median_angular_error_rad,
            outcome.linefit_val_mean_angular_error_rad,
        )
    )
    rows = [
        ("validation mean error (deg)", f"{mean:.2f}"),
        ("validation median error (deg)", f"{median:.2f}"),
        ("LineFit on the same events (deg)", f"{linefit:.2f}"),
        (
            "within 1 / 2 sigma",
            f"{cal['fraction_within_1sigma']:.1%} / {cal['fraction_within_2sigma']:.1%} "
            f"(vMF expects {cal['expected_within_1sigma']:.1%} / "
            f"{cal['expected_within_2sigma']:.1%})",
        ),
        (
            "within the 50 / 90 % radius",
            f"{outcome.containment['fraction_within_50']:.1%} / "
            f"{outcome.containment['fraction_within_90']:.1%} (kappa scales: track-like "
            f"{outcome.kappa_calibration['track_scale']:.3f}, cascade "
            f"{outcome.kappa_calibration['cascade_scale']:.3f}, starting-track slope "
            f"{outcome.kappa_calibration['starting_slope']:.2f})",
        ),
        (
            "track/cascade accuracy",
            "-" if outcome.classifier is None else f"{outcome.classifier['accuracy']:.1%}",
        ),
        ("training time", f"{outcome.train_seconds:.0f} s"),
        ("promoted", f"{outcome.promoted}: {outcome.reason}"),
        ("MLflow run", outcome.run_id),
    ]
    title = f"{settings.model_name} v{outcome.model_version} ({chosen.name})"
    print_table(title, ("figure", "value"), rows)


def predict_command(
    data: Annotated[Path, typer.Option("--data", help="Kaggle-layout data directory.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="File to write: .parquet (every column) or .csv (Kaggle submission: event_id, "
            "azimuth, zenith in radians).",
        ),
    ],
    model: Annotated[
        str, typer.Option("--model", help="champion, or an MLflow model URI / directory.")
    ] = "champion",
    split: Annotated[
        str, typer.Option("--split", help="train or test (Kaggle's test split has no truth).")
    ] = "train",
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")
    ] = None,
) -> None:
    """Directions and uncertainties for a data set, without the streaming pipeline.

    Parquet columns: event_id, azimuth, zenith, sigma, x, y, z, angular_uncertainty, kappa,
    track_probability
    (angles and sigma in radians; sigma = angular_uncertainty). CSV: Kaggle's submission format.
    Data of a detector other than the model's is refused, naming both geometries.
    """
    import time

    from icecube_stream.cli.progress import event_progress
    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.model.predict import output_format, predict_dataset, write_predictions
    from icecube_stream.model.registry import load_model

    err = Console(stderr=True)
    try:
        what = output_format(out)
        direction_model = load_model(model, current_settings())
        dataset = EventDataset(data, split=split)
        total = dataset.count_events()
        if max_events is not None:
            total = max_events if total is None else min(total, max_events)
        started = time.perf_counter()
        with event_progress(err) as progress:
            task = progress.add_task(f"predicting with {model}", total=total)
            table = predict_dataset(
                direction_model, dataset, max_events, lambda n: progress.advance(task, n)
            )
        write_predictions(table, out)
    except (EventDataError, ValueError, OSError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    seconds = time.perf_counter() - started
    rate = table.height / seconds if seconds > 0 else 0.0
    err.print(
        f"{table.height:,} events in {seconds:.2f} s: {rate:,.0f} events/s "
        f"(reading, predicting, writing) -> {out} ({what})",
        highlight=False,
    )


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
        Path | None, typer.Option("--data", help="Events to run on (default: 4096 simulated).")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """In-process CPU inference speed (events/s) at batch sizes 1, 32 and 256."""
    from icecube_stream.events.batch import concat_batches
    from icecube_stream.events.geometry import icecube_geometry
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.events.simulator import Simulator
    from icecube_stream.model.configs import get_config
    from icecube_stream.model.data import load_events
    from icecube_stream.model.inference import DirectionModel
    from icecube_stream.model.registry import load_model
    from icecube_stream.tools.model_bench import benchmark

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
    print_table(
        f"inference on CPU, {result['threads']} threads ({model})",
        ("batch size", "events", "end to end (events/s)", "network only (events/s)"),
        [
            (size, str(figures["events"]), f"{figures['end_to_end_eps']:,.0f}",
             f"{figures['network_eps']:,.0f}")
            for size, figures in result["batch_sizes"].items()
        ],
    )  # fmt: skip
