"""The MLflow server tracks a run and registers a model version with an alias; what tests
register there is removed afterwards."""

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel

from icecube_stream.config import Settings
from scratch_registry import ScratchRegistry

pytestmark = pytest.mark.integration


class Constant(PythonModel):  # type: ignore[misc]
    def predict(self, context: object, model_input: list[float]) -> list[float]:
        return [0.5 for _ in model_input]


def test_log_a_run_and_register_a_model_version(isolated: Settings) -> None:
    mlflow.set_tracking_uri(isolated.mlflow_tracking_uri)
    mlflow.set_experiment(isolated.mlflow_experiment)
    name = isolated.model_name
    with mlflow.start_run() as run:
        mlflow.log_param("hidden", 64)
        for epoch, loss in enumerate([1.0, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=epoch)
        mlflow.pyfunc.log_model(name="model", python_model=Constant(), registered_model_name=name)

    client = MlflowClient(isolated.mlflow_tracking_uri)
    stored = client.get_run(run.info.run_id)
    assert stored.data.params["hidden"] == "64"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5, 0.25]
    version = client.search_model_versions(f"name='{name}'")[0]
    assert version.run_id == run.info.run_id
    client.set_registered_model_alias(name, "champion", version.version)
    assert client.get_model_version_by_alias(name, "champion").version == version.version
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert loaded.predict([1.0, 2.0]) == [0.5, 0.5]


def test_a_scratch_model_and_experiment_are_removed_on_exit(
    stack: Settings, scratch_registry: ScratchRegistry
) -> None:
    client = MlflowClient(stack.mlflow_tracking_uri)
    with scratch_registry.isolated(stack, "it-model", "it-model") as scratch:
        experiment = client.create_experiment(scratch.mlflow_experiment)
        client.create_registered_model(scratch.model_name)
        mine = {scratch.model_name, scratch.mlflow_experiment}
        assert mine <= set(scratch_registry.leftovers())
    assert mine.isdisjoint(scratch_registry.leftovers())
    assert client.search_registered_models(f"name = '{scratch.model_name}'") == []
    # Marked deleted, not purged (see ScratchRegistry.remove).
    assert client.get_experiment(experiment).lifecycle_stage == "deleted"
