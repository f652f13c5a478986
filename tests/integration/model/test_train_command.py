"""`icecube-stream train` end to end against the live MLflow, then `evaluate --model champion`."""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from icecube_stream import cli
from icecube_stream.config import Settings, get_settings

pytestmark = pytest.mark.integration


def test_train_then_evaluate_champion(
    isolated: Settings, small_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ICECUBE_MODEL_NAME", isolated.model_name)
    monkeypatch.setenv("ICECUBE_MLFLOW_EXPERIMENT", isolated.mlflow_experiment)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(
            cli.app,
            ["train", "--data", str(small_dataset), "--config", "quick", "--epochs", "2", "--json"],
        )
        assert result.exit_code == 0, result.output
        outcome = json.loads(result.stdout)
        assert outcome["promoted"] is True
        assert 0 < outcome["val_mean_angular_error_rad"] < 3.2
        assert "median_sigma_rad" in outcome["calibration"]

        client = MlflowClient(isolated.mlflow_tracking_uri)
        run = client.get_run(outcome["run_id"])
        assert run.data.params["name"] == "quick"
        # MLflow metric names keep no unit suffix (radians, comparable with earlier runs).
        history = client.get_metric_history(outcome["run_id"], "val_mean_angular_error")
        assert [m.step for m in history] == [1, 2]
        plots = {a.path for a in client.list_artifacts(outcome["run_id"], "plots")}
        assert {"plots/error_histograms.png", "plots/calibration.png"} <= plots
        champion = client.get_model_version_by_alias(isolated.model_name, "champion")
        assert champion.version == outcome["model_version"]

        evaluated = runner.invoke(
            cli.app, ["evaluate", "--data", str(small_dataset), "--model", "champion", "--json"]
        )
        assert evaluated.exit_code == 0, evaluated.output
        summary = json.loads(evaluated.stdout)
        assert summary["n_events"] == 500
        assert {"mean_angular_error_rad", "median_angular_error_rad"} <= set(summary)
        assert 0 <= summary["calibration"]["fraction_within_2sigma"] <= 1

        missing = runner.invoke(
            cli.app, ["evaluate", "--data", str(small_dataset), "--model", "models:/nope@none"]
        )
        assert missing.exit_code == 1
    finally:
        get_settings.cache_clear()
