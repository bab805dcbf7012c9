"""The monitoring service: the worker loop, the per-batch pipeline, reference and drift upkeep."""
