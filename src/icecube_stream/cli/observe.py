"""The observability commands, `alerts` and `check-truth`: thin wrappers over
icecube_stream.observe. `alerts` is also the group of `alerts tail` (cli/stream.py), the
neutrino alerts on their topic."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Annotated

import typer

from icecube_stream.cli.common import console
from icecube_stream.cli.help_format import HELP_MARKUP
from icecube_stream.stack.kafka import current_settings

alerts_app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    help="Operations alerts in Prometheus; `alerts tail`: the neutrino alerts on their topic.",
    invoke_without_command=True,
)


@alerts_app.callback()
def alerts_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Where Prometheus is and which alerts are pending or firing there; `alerts tail` prints
    the neutrino alerts of `icecube.alerts` instead.

    Exits 1 when Prometheus does not answer (then nothing is known about alerts).
    """
    if ctx.invoked_subcommand is not None:
        return
    from icecube_stream.observe.alerts import PrometheusUnavailableError, active_alerts

    settings = current_settings()
    url = settings.prometheus_url
    try:
        alerts = active_alerts(url)
    except PrometheusUnavailableError as error:
        if as_json:
            typer.echo(json.dumps({"prometheus_url": url, "error": str(error)}))
        console.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    firing = sum(a.state == "firing" for a in alerts)
    if as_json:
        summary = {
            "prometheus_url": url,
            "alerts_url": f"{url}/alerts",
            "firing": firing,
            "pending": len(alerts) - firing,
            "alerts": [a.as_dict() for a in alerts],
        }
        typer.echo(json.dumps(summary))
        return
    # Plain lines, not a table: `make demo` logs are read in narrow, non-interactive terminals.
    typer.echo(f"Prometheus: {url}  (alerts page: {url}/alerts)")
    typer.echo(f"alerts: {firing} firing, {len(alerts) - firing} pending")
    for a in alerts:
        where = " ".join(part for part in (a.component, a.instance) if part)
        typer.echo(f"  {a.state:<7} {a.severity:<8} {a.name}  [{where}]  {a.summary}")


def check_truth_command(
    data: Annotated[Path, typer.Option(help="The data set being replayed (Kaggle layout).")],
    split: Annotated[str, typer.Option(help="train (test has no truth).")] = "train",
) -> None:
    """Compare live predictions with the data set's true directions; serve the angular error
    on /metrics (ICECUBE_CHECKER_METRICS_PORT, in radians) until Ctrl-C, printing the running
    mean in degrees."""
    from icecube_stream import metrics
    from icecube_stream.observe import checker
    from icecube_stream.observe.http import serve_metrics

    settings = current_settings()
    try:
        truth = checker.read_truth(data, split)
    except checker.TruthError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None
    if not serve_metrics(settings.host, settings.checker_metrics_port, metrics.CHECKER_REGISTRY):
        console.print(f"[yellow]metrics port {settings.checker_metrics_port} busy[/yellow]")
    check = checker.TruthChecker(truth)
    console.print(f"checking predictions against {len(truth)} true directions; Ctrl-C stops")

    def show(_: int) -> None:
        mean = check.mean_error
        if mean is not None:
            console.print(
                f"mean angular error (last {len(check.recent)}): {math.degrees(mean):.2f}°"
            )

    stop = threading.Event()
    try:
        checker.run(settings, check, stop, on_batch=show)
    except KeyboardInterrupt:
        stop.set()
