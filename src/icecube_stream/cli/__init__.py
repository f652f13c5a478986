"""The `icecube-stream` command line: one typer app over the packages below.

The commands live in a module per group beside this one (stack, data, topics, stream, model,
observe, tools, about), each a thin wrapper that imports its package only when it runs. Here they
are only named and mounted, in the order `--help` lists them.
"""

from __future__ import annotations

import typer

from icecube_stream.cli import about, data, model, observe, sky, stack, stream, tools, topics
from icecube_stream.cli.help_format import HELP_MARKUP, hide_flag_metavars

hide_flag_metavars()  # `--json`, not `--json <bool>`, in every command's --help

app = typer.Typer(
    rich_markup_mode=HELP_MARKUP,
    help="icecube-stream: real-time neutrino-direction reconstruction on Kafka.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    callback=about.root_options,
)

app.command("check-truth")(observe.check_truth_command)
app.command("skymap")(sky.skymap_command)
app.command("simulate")(data.simulate)
app.command("evaluate")(data.evaluate_command)
app.command("stats")(data.stats_command)
app.command("produce")(stream.produce_command)
app.command("train")(model.train_command)
app.command("predict")(model.predict_command)
app.command("worker", context_settings=stream.FAUST_ARGUMENTS)(stream.worker_command)
app.command("bench")(tools.bench_command)
app.command("chaos")(tools.chaos_command)
app.command("demo")(tools.demo_command)
app.command("config")(about.config_command)

app.add_typer(stack.stack_app, name="stack")
app.add_typer(topics.topics_app, name="topics")
app.add_typer(model.model_app, name="model")
app.add_typer(stream.predictions_app, name="predictions")
app.add_typer(stream.dlq_app, name="dlq")
app.add_typer(observe.alerts_app, name="alerts")
observe.alerts_app.command("tail")(stream.alerts_tail)


def main() -> None:
    app()
