"""The event-data commands, `simulate`, `evaluate` and `stats`: thin wrappers over
icecube_stream.events (imports stay inside the commands so `--help` does not pay for numpy and
polars; torch and mlflow only load for `evaluate --model` other than linefit)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from icecube_stream.cli.common import print_table
from icecube_stream.stack.kafka import current_settings

if TYPE_CHECKING:
    from icecube_stream.events.evaluate import Evaluation
    from icecube_stream.model.reconstructor import ModelReconstructor


def simulate(
    events: Annotated[int, typer.Option("--events", min=1, help="Triggered events to write.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Output directory (Kaggle layout); must be empty unless --force."
        ),
    ],
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
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write into a non-empty --out: the batch files and meta of an earlier data set "
            "there are deleted first, other files are kept.",
        ),
    ] = False,
) -> None:
    """Simulate IceCube events and write them as a Kaggle-format data set (split `train`).

    The detector is IceCube's real sensor geometry, shipped with the package; the data set's
    sensor_geometry.csv records it, and with it the geometry identity that models check.
    A non-empty --out is refused unless --force: writing over a data set would silently mix it
    with the old one's leftover batch files.
    """
    import time

    from rich.progress import Progress

    from icecube_stream.events.dataset import DatasetWriter, clear_split
    from icecube_stream.events.geometry import geometry_name, load_geometry
    from icecube_stream.events.layout import EventDataError
    from icecube_stream.events.simulator import Simulator

    err = Console(stderr=True)
    try:
        detector = load_geometry(geometry)
        _check_out(out, force)
    except EventDataError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    if force and out.is_dir():
        removed = clear_split(out, "train")
        if removed:
            err.print(f"--force: deleted {len(removed)} files of the data set in {out}")
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


def _check_out(out: Path, force: bool) -> None:
    """simulate's --out must be a directory that is missing or empty, unless --force."""
    from icecube_stream.events.layout import EventDataError

    if out.exists() and not out.is_dir():
        raise EventDataError(out, "--out exists and is not a directory")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not force:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise EventDataError(
            out,
            f"not empty ({shown}); refusing to write a data set over it. Choose an empty "
            "folder, or pass --force to delete its batch files and meta and write anew",
        )


def evaluate_command(
    data: Annotated[Path, typer.Option("--data", help="Kaggle-layout data directory.")],
    model: Annotated[
        str, typer.Option("--model", help="linefit, champion, or an MLflow model URI / directory.")
    ] = "linefit",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots",
            help="Also write PNG figures to this folder: error per event type, error vs pulse "
            "count, sigma calibration (models only), sky map of predicted vs true directions.",
        ),
    ] = None,
) -> None:
    """Angular error of a reconstructor on a data set with truth, overall and per event type.

    The table is in degrees; --json gives radians (keys ending in `_rad`). With --plots a model
    is drawn beside LineFit, scored on the same events.
    """
    from rich.progress import Progress

    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.evaluate import evaluate, get_reconstructor, linefit_reconstructor
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
                baseline=linefit_reconstructor if plots and model != "linefit" else None,
            )
        written = [] if plots is None else _write_plots(result, plots, model, reconstructor)
    except (EventDataError, ValueError) as error:
        err.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    summary = result.summary()
    model_report = getattr(reconstructor, "report", None)
    if model_report is not None:  # LineFit has no kappa and no classifier
        summary.update(model_report(result.errors, result.event_types))
    if as_json:
        if plots is not None:
            summary["plots"] = [str(path) for path in written]
        typer.echo(json.dumps(summary))
        return
    print_table(
        f"{model} on {data}",
        ("events", "n", "mean angular error (deg)", "median (deg)"),
        [
            (name, str(figures["n_events"]), _degrees(figures["mean_angular_error_rad"]),
             _degrees(figures["median_angular_error_rad"]))
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
    if "containment" in summary:
        _print_containment(summary["containment"])
    if "classifier" in summary:
        _print_classifier(summary["classifier"])
    for path in written:
        typer.echo(f"plot: {path}")


def stats_command(
    data: Annotated[Path, typer.Option("--data", help="Kaggle-layout data directory.")],
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
    print_table(
        f"event statistics: {data}",
        ("statistic", "this data set", "real events (reference)"),
        stats_rows(stats),
    )
    if stats.get("event_types"):
        Console().print(f"event types: {stats['event_types']}")
    Console().print(f"geometry: {geometry_name(dataset.geometry.identity)}")


def _print_containment(containment: dict[str, Any]) -> None:
    """The 50 % / 90 % containment table; the last column says whether 90 % is met."""
    tolerance = round(100 * containment["tolerance_90"])

    def row(name: str, figures: dict[str, Any]) -> tuple[str, ...]:
        within = figures["fraction_within_90"]
        return (
            name,
            str(figures["n_events"]),
            _percent(figures["fraction_within_50"]),
            _degrees(figures["median_radius_50_rad"]),
            _percent(within),
            _degrees(figures["median_radius_90_rad"]),
            "-" if within is None else ("ok" if figures["within_tolerance_90"] else "OFF"),
        )

    print_table(
        f"containment: truth within the 50 % / 90 % radius (90 % target: 90 +- {tolerance} %)",
        ("events", "n", "in r50", "median r50°", "in r90", "median r90°", "90 %"),
        [row("all", containment), *(row(n, f) for n, f in containment["per_type"].items())],
    )


def _print_classifier(classifier: dict[str, Any]) -> None:
    """Accuracy of the track/cascade call at the threshold, overall and per true type."""
    track_like = classifier["per_class"]["track_like"]
    rows = [
        ("all", str(classifier["n_events"]), _percent(classifier["accuracy"])),
        ("track-like", str(track_like["n_events"]), _percent(track_like["accuracy"])),
        *(
            (n, str(f["n_events"]), _percent(f["accuracy"]))
            for n, f in classifier["per_type"].items()
        ),
    ]
    print_table(
        f"track/cascade classifier (track-like at p >= {classifier['threshold']})",
        ("true type", "n", "accuracy"),
        rows,
    )


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.1%}"


def _degrees(radians: float | None) -> str:
    """An angle for people: degrees, one decimal ("-" when there were no events)."""
    return "-" if radians is None else f"{math.degrees(radians):.1f}"


def _write_plots(result: Evaluation, folder: Path, model: str, reconstructor: object) -> list[Path]:
    """PNG files of an evaluation, drawn with Agg (no display needed); matplotlib loads here."""
    import matplotlib

    matplotlib.use("Agg")
    from icecube_stream.model.evaluation_plots import write_evaluation_plots

    kappa = getattr(reconstructor, "kappa", None)
    if kappa is None:
        Console(stderr=True).print(f"no calibration plot: {model} predicts no sigma")
    label = "LineFit" if model == "linefit" else (Path(model).name or model)
    return write_evaluation_plots(result, folder, label, kappa)


def _model_reconstructor(model: str) -> ModelReconstructor:
    """`evaluate --model` other than linefit: torch and mlflow load only here."""
    from icecube_stream.model.reconstructor import ModelReconstructor
    from icecube_stream.model.registry import load_model

    return ModelReconstructor(load_model(model, current_settings()))
