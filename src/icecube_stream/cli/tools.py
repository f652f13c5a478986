"""The tool commands, `bench`, `chaos` and `demo`: each drives the live stack through a
module of icecube_stream.tools."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from icecube_stream.cli.common import console, print_table
from icecube_stream.stack.kafka import current_settings


def bench_command(
    events: Annotated[int, typer.Option(help="Simulated events (half for each phase).")] = 20_000,
    rate: Annotated[float, typer.Option(help="Offered rate of the latency phase, Hz.")] = 2700.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of every measurement.")] = 3,
    data: Annotated[
        Path | None, typer.Option(help="Use this Kaggle-layout data set instead of simulating.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """End-to-end throughput, latency and the sustainable rate on this machine, beside in-process
    inference of the same events, raw Kafka and one-HTTP-call-per-event, with CPU seconds per
    component; every figure over several rounds (min / median / max). Needs `stack up` and a
    champion. Takes a few minutes per round.
    """
    from icecube_stream.events.batch import concat_batches
    from icecube_stream.events.dataset import EventDataset
    from icecube_stream.events.geometry import icecube_geometry
    from icecube_stream.events.simulator import Simulator
    from icecube_stream.tools.bench import Bench, summary

    def say(message: str) -> None:
        if not as_json:
            console.print(message)

    if data is not None:
        batch = concat_batches(list(EventDataset(data).iter_batches(max_events=events)))
    else:
        say(f"simulating {events:,} events")
        batch = concat_batches(list(Simulator(icecube_geometry(), seed=7).iter_batches(events)))
    results = [r.as_dict() for r in Bench(current_settings(), batch, say).run(rate, rounds)]
    figures = summary(results)
    if as_json:
        typer.echo(json.dumps({"rounds": results, "summary": figures}))
        return
    print_table(
        f"bench: {rounds} rounds of {batch.n_events:,} events at {rate:,.0f} Hz on this machine",
        ("measure", "min", "median", "max"),
        [(name, *map(_figure, values)) for name, values in figures.items()],
    )


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
    from icecube_stream.tools.chaos import Chaos, Plan

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
                  "dup MongoDB", "dup predictions topic", "alerts (lost, twice)",
                  "dead letters by reason", "recovered (s)")  # fmt: skip
        rows = [(r.fault, r.in_flight, f"{r.events:,}", f"{r.written_per_s:,.0f}", str(r.lost),
                 str(r.mongo_duplicates),
                 str(r.topic_duplicates),
                 f"{r.alerts:,} ({r.alerts_lost}, {r.alert_duplicates})",
                 ", ".join(f"{k} {v}" for k, v in sorted(r.dead_letters.items())) or "-",
                 "-" if r.recovered_s is None else f"{r.recovered_s:.1f}")
                for r in outcome.rows]  # fmt: skip
        print_table("chaos: faults while events flow", header, rows, no_wrap=True)
        for line in outcome.poison_mismatches:
            console.print(f"[red]poison:[/red] {line}", highlight=False)
    if not outcome.ok:
        raise typer.Exit(1)


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
    from icecube_stream.tools import demo

    settings = current_settings()
    summary = demo.run(settings, workdir, events, rate, say=console.print)
    typer.echo("\n".join(summary.lines(settings)))


def _figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
