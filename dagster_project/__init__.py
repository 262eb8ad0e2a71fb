"""Batch-prediction MLOps pipeline: Dagster definitions plus the plain-Python ML code they call."""
