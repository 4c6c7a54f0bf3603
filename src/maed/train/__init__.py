"""Training: losses, the two-stage loop, distributed setup, checkpoints and logging (ORIGINAL.md §6).

    from maed.train import train
    run_dir = train("stage1", overrides=["TRAIN.BATCH_SIZE_IMG=32"])
    train("stage2", pretrained=run_dir / "checkpoints" / "last.pt")
    train(resume=run_dir)          # continue an interrupted run where it stopped

A run that SIGTERM or SIGUSR1 stops early saves ``last.pt`` and raises ``TrainingStopped``.

Submodules: ``losses`` (the objective), ``engine`` (the loop), ``optim`` (its settings, optimiser and
schedule), ``stopping`` (stop signals, exit status), ``run`` (a run from plan to finish: data, model, run
directory), ``distributed`` (torchrun / Slurm / DDP), ``streams`` (resumable data order),
``checkpointing`` (files and the trainer's state), ``validation``, ``run_log``, ``cli`` (``maed train``).
Importing this package imports none of them.
"""

from __future__ import annotations

import importlib

#: names loaded from their module on first use (start-up: `maed train --help` imports this package)
_EXPORTS = {
    "train": "maed.train.run",
    "Trainer": "maed.train.engine",
    "TrainingError": "maed.train.stopping",
    "TrainingStopped": "maed.train.stopping",
    "MAEDLoss": "maed.train.losses",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'maed.train' has no attribute {name!r}")
