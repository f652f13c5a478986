"""Event data: the Kaggle on-disk layout, detector geometry, the simulator and their statistics."""
