"""Event data: the Kaggle layout (`layout`), in-memory batches (`batch`), data sets on disk
(`dataset`), detector geometry, the simulator and their statistics."""
