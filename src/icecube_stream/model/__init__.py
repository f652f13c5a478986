"""The learned direction reconstruction: features (shared by training and serving), batching,
network, von Mises-Fisher loss, training runs tracked in MLflow, the model registry and
inference (its benchmark is a tool: icecube_stream.tools.model_bench).

torch and mlflow are imported by the modules that need them, never here, so importing the
feature builder (which the streaming workers use) stays cheap.
"""

import os

# OpenMP threads that spin while waiting at a barrier steal the only other core of a shared
# 2-core machine from their own peer: measured here, 2 torch threads ran 1,000-3,000 events/s at
# batch 256 with the default (spinning) policy and 12,000 with PASSIVE. It must be set before
# torch loads its OpenMP runtime, hence here; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
