"""Evaluation: metrics of the original protocol (``metrics``, pure functions), protocols as values and the
evaluation settings (``protocol``), the runner behind ``maed eval`` (``evaluator``) and what it writes
(``outputs``). Importing this package imports none of them."""
