"""Evaluation: metrics of the original protocol (``maed.eval.metrics``, pure functions) and the protocol
runner behind ``maed eval`` (``maed.eval.evaluator``). Importing this package imports neither."""
