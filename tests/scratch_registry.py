"""Registered models and experiments that tests create in the live MLflow, removed after use.

Several test sessions (and a user) share one MLflow, so every name carries this session's tag:
the end-of-session check then finds what this session left behind and nothing of anyone else's.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from icecube_stream.config import Settings


class ScratchRegistry:
    """Hands out names of this session and removes what was registered under them."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.session = uuid.uuid4().hex[:6]

    def name(self, prefix: str) -> str:
        """`prefix-<session>-<random>`: unique, and recognisably this session's."""
        return f"{prefix}-{self.session}-{uuid.uuid4().hex[:6]}"

    @contextmanager
    def isolated(
        self, settings: Settings, model_prefix: str, experiment_prefix: str
    ) -> Iterator[Settings]:
        """`settings` with a registered model and an experiment of their own, removed on exit
        (also when the test failed), so the live `icecube-direction` champion is never touched."""
        scratch = settings.model_copy(
            update={
                "model_name": self.name(model_prefix),
                "mlflow_experiment": self.name(experiment_prefix),
            }
        )
        try:
            yield scratch
        finally:
            self.remove(scratch.model_name, scratch.mlflow_experiment)

    def remove(self, model_name: str, experiment: str) -> None:
        """Delete the registered model (its versions and aliases go with it) and the experiment.

        MLflow only marks an experiment deleted: the SQLite store keeps its row, runs and
        artifacts (about 1 MB per tiny model) until `mlflow gc`. That is enough here: a deleted
        experiment is out of searches and the UI, and its name is never reused. Purging for good
        would mean opening the live server's database behind its back.
        """
        client = MlflowClient(self.tracking_uri)
        try:
            client.delete_registered_model(model_name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":  # never registered: nothing to do
                raise
        found = client.get_experiment_by_name(experiment)
        if found is not None and found.lifecycle_stage == "active":
            client.delete_experiment(found.experiment_id)

    def leftovers(self) -> list[str]:
        """Registered models and live experiments of this session still in MLflow."""
        client = MlflowClient(self.tracking_uri)
        pattern = f"name LIKE '%-{self.session}-%'"
        models = [m.name for m in client.search_registered_models(filter_string=pattern)]
        experiments = [e.name for e in client.search_experiments(filter_string=pattern)]
        return sorted(models + experiments)
