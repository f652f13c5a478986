"""The streaming commands: `produce` (the emitter), `worker` (Faust), `predictions tail|get` and
`dlq show|replay`, thin wrappers over icecube_stream.stream and the Faust app."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from icecube_stream.cli.common import console
from icecube_stream.cli.help_format import HELP_MARKUP
from icecube_stream.stack.kafka import current_settings

#: `worker` hands every argument it does not know to Faust.
FAUST_ARGUMENTS = {"allow_extra_args": True, "ignore_unknown_options": True}

predictions_app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    help="Predictions: the newest on `icecube.predictions`, or one event's from MongoDB.",
    no_args_is_help=True,
)
dlq_app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    help="The dead-letter topic `icecube.pulses.dlq`: rejected input with its reason.",
    no_args_is_help=True,
)

T = TypeVar("T")


def _reachable(call: Callable[[], T]) -> T:
    """A service that does not answer, or a missing topic, as one red line and exit 1."""
    from icecube_stream.stream.lookup import MongoUnreachableError
    from icecube_stream.stream.topics import TopicMissingError

    try:
        return call()
    except (TopicMissingError, MongoUnreachableError) as error:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


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

    from icecube_stream import metrics
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
    serve_metrics(settings.host, settings.emitter_metrics_port, metrics.EMITTER_REGISTRY)
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


def worker_command(ctx: typer.Context) -> None:
    """Run the Faust stream worker (same as `faust -A icecube_stream.app worker -l info`).

    Extra arguments go to Faust, e.g. `icecube-stream worker --web-port 6067`.
    """
    import sys

    from icecube_stream.app import app as faust_app

    sys.argv = ["faust", "worker", "-l", "info", *ctx.args]
    faust_app.main()


@predictions_app.command("tail")
def predictions_tail(
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="Show the newest N first.")] = 10,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the newest predictions (direction, uncertainty, model, latency); Ctrl-C stops."""
    from icecube_stream.stream.tail import tail

    def show() -> None:
        for record in tail(current_settings(), last, follow):
            _print_prediction(record, as_json)

    with contextlib.suppress(KeyboardInterrupt):
        _reachable(show)


def alerts_tail(
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="Show the newest N first.")] = 10,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the newest neutrino alerts: name, time, RA/Dec, 90 % radius, p_astro, FAR, map."""
    from icecube_stream.stream.tail import tail
    from icecube_stream.wire.topics import ALERTS

    def show() -> None:
        for record in tail(current_settings(), last, follow, ALERTS):
            _print_alert(record, as_json)

    with contextlib.suppress(KeyboardInterrupt):
        _reachable(show)


@predictions_app.command("get")
def predictions_get(
    event_id: Annotated[int, typer.Argument(help="The event's id.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="The document as JSON.")] = False,
) -> None:
    """One event's prediction from MongoDB; exits 1 when there is none.

    On the local stack (FerretDB on SQLite) this scans the collection: seconds at a million
    predictions.
    """
    from icecube_stream.stream.lookup import find_prediction

    settings = current_settings()
    record = _reachable(lambda: find_prediction(settings, event_id))
    if record is None:
        where = f"{settings.mongo_database}.{settings.mongo_collection}"
        console.print(f"[red]error:[/red] no prediction for event {event_id} in {where}")
        raise typer.Exit(1)
    _print_prediction(record, as_json)


def _print_prediction(record: dict[str, Any], as_json: bool) -> None:
    """One line per prediction: directions in degrees for people, radians in JSON."""
    if as_json or "error" in record:
        typer.echo(json.dumps(record))
        return
    latency = (record["predicted_at_ns"] - record["emitted_at_ns"]) / 1e6
    flags = f" [{','.join(record['flags'])}]" if record["flags"] else ""
    typer.echo(
        f"event {record['event_id']:>12}  az {math.degrees(record['azimuth']):6.1f}°  "
        f"zen {math.degrees(record['zenith']):5.1f}°  "
        f"±{math.degrees(record['angular_uncertainty']):5.1f}°  "
        f"{record['model_name']} v{record['model_version']}  "
        f"{record['n_pulses']:>5} pulses  {latency:7.1f} ms{flags}"
    )


def _print_alert(record: dict[str, Any], as_json: bool) -> None:
    """One line per alert, in GCN's units: degrees, TeV, per year for people."""
    if as_json or "error" in record:
        typer.echo(json.dumps(record))
        return
    from datetime import datetime

    made = datetime.fromisoformat(record["alert_datetime"])
    latency = made - datetime.fromisoformat(record["trigger_time"])
    per_year = record["far"] * 365.25 * 86400
    typer.echo(
        f"{record['event_name'][0]}  {record['trigger_time']} ({record['trigger_time_source']})  "
        f"RA {record['ra']:7.2f}°  Dec {record['dec']:+6.2f}°  "
        f"±{record['ra_dec_error']:.2f}° (90 %)  {record['nu_energy']:.0f} TeV  "
        f"p_astro {record['p_astro']:.2f}  FAR {per_year:.3g}/yr  "
        f"after {latency.total_seconds():.2f} s  {record['healpix_url']}"
    )


Reason = Annotated[
    str | None,
    typer.Option(help="Only records of this dlq.reason, e.g. geometry-mismatch [all]."),
]


@dlq_app.command("show")
def dlq_show(
    reason: Reason = None,
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="The newest N (0: all).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Dead-lettered records with their headers: reason, error, source topic and offset,
    event ids; oldest first."""
    from datetime import UTC, datetime

    from icecube_stream.stream.dlq import dead_letters

    letters = _reachable(lambda: dead_letters(current_settings(), reason, last))
    for letter in letters:
        if as_json:
            typer.echo(json.dumps(letter.as_dict()))
            continue
        headers = letter.headers
        at = datetime.fromtimestamp(int(headers.get("dlq.at", "0")) / 1e9, UTC)
        events = headers.get("dlq.event_id", "")
        typer.echo(
            f"{at:%Y-%m-%d %H:%M:%S}  {headers.get('dlq.reason', '?')}  "
            f"from {headers.get('dlq.topic', '?')}[{headers.get('dlq.partition', '?')}]"
            f"@{headers.get('dlq.offset', '?')}  {letter.value_bytes} bytes"
            + (f"  events {events}" if events else "")
        )
        typer.echo(f"    {headers.get('dlq.error', '')}")
    if not as_json:
        console.print(f"{len(letters)} record(s)" + (f" of reason {reason}" if reason else ""))


@dlq_app.command("replay")
def dlq_replay(
    reason: Reason = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be sent; send nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Send dead-lettered messages back to the topic they came from, after fixing the cause.

    Each record is re-sent once: a consumer group per reason remembers how far replay got, and
    moves only after Kafka acknowledged every re-sent message. Exits 1 if any send failed.
    """
    from icecube_stream.stream.dlq import replay

    report = _reachable(lambda: replay(current_settings(), reason, dry_run))
    figures = {"replayed": report.replayed, "skipped": report.skipped, "dry_run": dry_run,
               "truncated": report.truncated, "failed": report.failed}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        console.print(
            f"{report.replayed} {'would be replayed' if dry_run else 'replayed'}, "
            f"{report.skipped} of other reasons left, "
            f"{report.truncated} stored truncated (cannot be replayed), {report.failed} failed"
        )
    if not report.ok:
        raise typer.Exit(1)
