"""The learned direction reconstruction: features (shared by training and serving), batching,
network, von Mises-Fisher loss, training with MLflow tracking, inference and its benchmark.

torch and mlflow are imported by the modules that need them, never here, so importing the
feature builder (which the streaming workers use) stays cheap.
"""
