"""The MLflow server tracks a run and registers a model version with an alias."""

import uuid

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel

from icecube_stream.config import Settings

pytestmark = pytest.mark.integration


class Constant(PythonModel):  # type: ignore[misc]
    def predict(self, context: object, model_input: list[float]) -> list[float]:
        return [0.5 for _ in model_input]


def test_log_a_run_and_register_a_model_version(stack: Settings) -> None:
    mlflow.set_tracking_uri(stack.mlflow_tracking_uri)
    mlflow.set_experiment(f"integration-{uuid.uuid4().hex[:8]}")
    name = f"it-model-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run() as run:
        mlflow.log_param("hidden", 64)
        for epoch, loss in enumerate([1.0, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=epoch)
        mlflow.pyfunc.log_model(name="model", python_model=Constant(), registered_model_name=name)

    client = MlflowClient(stack.mlflow_tracking_uri)
    stored = client.get_run(run.info.run_id)
    assert stored.data.params["hidden"] == "64"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5, 0.25]
    version = client.search_model_versions(f"name='{name}'")[0]
    assert version.run_id == run.info.run_id
    client.set_registered_model_alias(name, "champion", version.version)
    assert client.get_model_version_by_alias(name, "champion").version == version.version
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert loaded.predict([1.0, 2.0]) == [0.5, 0.5]
