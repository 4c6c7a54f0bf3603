"""What a training run records, written by rank 0 only.

- ``train_log.txt``: the human-readable log (also echoed to stderr);
- ``log.jsonl``: one JSON object per line, always: ``{"event": "train", "step", "epoch", "lr", "loss",
  "loss_kp_2d", ..., "frames_per_s", "time"}``, ``{"event": "val", "epoch", "mpjpe", "pa-mpjpe", ...}``,
  and ``start`` / ``resume`` / ``pretrained`` / ``checkpoint`` / ``stop`` / ``nan`` events;
- TensorBoard scalars (``train_loss/<term>``, ``error/<metric>``, ``lr``, ``frames_per_s``) when the
  ``tensorboard`` package is installed (``pip install maed[log]``).

Other ranks log warnings and errors to stderr, prefixed with their rank.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

LOGGER_NAME = "maed.train"
TEXT_LOG = "train_log.txt"
JSONL_LOG = "log.jsonl"
TB_DIR = "tb"


def _plain(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN / inf
    return value


class RunLog:
    """Logger, JSONL file and optional TensorBoard writer of one run (active on rank 0 only)."""

    def __init__(self, run_dir: str | os.PathLike | None, *, rank: int = 0, tensorboard: bool = True):
        self.rank = rank
        self.active = rank == 0 and run_dir is not None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.logger = logging.getLogger(LOGGER_NAME if rank == 0 else f"{LOGGER_NAME}.rank{rank}")
        self._handlers: list[logging.Handler] = []
        if run_dir is not None:  # a run owns its handlers; without one, records go to the root logger
            self.logger.setLevel(logging.INFO)
            self.logger.propagate = False
            fmt = logging.Formatter(
                "%(asctime)s %(message)s" if rank == 0 else f"%(asctime)s [rank {rank}] %(message)s"
            )
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(fmt)
            stream.setLevel(logging.INFO if rank == 0 else logging.WARNING)
            self._add(stream)
        self._jsonl = None
        self.writer = None
        if self.active:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(self.run_dir / TEXT_LOG)
            file_handler.setFormatter(stream.formatter)
            self._add(file_handler)
            self._jsonl = open(self.run_dir / JSONL_LOG, "a")  # noqa: SIM115  (open for the whole run)
            if tensorboard:
                self.writer = _tensorboard_writer(self.run_dir / TB_DIR)
                if self.writer is None:
                    self.info("TensorBoard not installed (pip install maed[log]); logging to log.jsonl only")

    def _add(self, handler: logging.Handler) -> None:
        self.logger.addHandler(handler)
        self._handlers.append(handler)

    # ------------------------------------------------------------------------------------- text
    def info(self, msg: str) -> None:
        if self.rank == 0:
            self.logger.info(msg)

    def warning(self, msg: str) -> None:
        self.logger.warning(msg)

    def error(self, msg: str) -> None:
        self.logger.error(msg)

    # ------------------------------------------------------------------------------------- records
    def event(self, event: str, **fields: Any) -> None:
        """Append one JSON line ``{"event": event, **fields, "time": unix seconds}``."""
        if not self.active:
            return
        record = {"event": event, **{k: _plain(v) for k, v in fields.items()}, "time": round(time.time(), 3)}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()

    def scalars(self, prefix: str, values: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            v = _plain(v)
            if isinstance(v, (int, float)):
                self.writer.add_scalar(f"{prefix}{k}", v, global_step=step)

    def text(self, tag: str, text: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, 0)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for h in self._handlers:
            self.logger.removeHandler(h)
            h.close()
        if self._handlers:
            self.logger.propagate = True
        self._handlers.clear()


def _tensorboard_writer(log_dir: Path):
    try:
        import tensorboard  # noqa: F401  (torch's SummaryWriter needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(log_dir))
