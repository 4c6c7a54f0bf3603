"""How training stops early and says so: SIGTERM / SIGUSR1 (Slurm preemption or time limit) noted by a
handler and acted on at the next step boundary, the exit status, and the errors that end a run."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import threading
from pathlib import Path

from maed.errors import MaedError

#: exit status of ``maed train`` stopped early by SIGTERM or SIGUSR1 (after saving last.pt): 128 + SIGTERM, what
#: a shell reports for a process SIGTERM ended, for both signals, since a rank that stopped because another one
#: got the signal cannot tell which it was
STOPPED_BY_SIGNAL_EXIT = 128 + signal.SIGTERM


class TrainingError(MaedError, RuntimeError):
    """Training cannot go on (a non-finite loss or weights); the last good checkpoint is kept."""


class TrainingStopped(Exception):
    """Training stopped before its last epoch because a rank received SIGTERM or SIGUSR1 (Slurm preemption
    or time limit); ``last.pt`` holds the step it reached and ``maed train --resume`` continues it.

    Not a user error: ``maed train`` exits with :data:`STOPPED_BY_SIGNAL_EXIT`, so that a command chained
    after it (``maed train ... && maed eval ...``) does not run as if training had finished.
    """

    exit_code = STOPPED_BY_SIGNAL_EXIT

    def __init__(self, run_dir: str | os.PathLike, *, step: int, signal_name: str | None = None):
        self.run_dir, self.step, self.signal_name = Path(run_dir), int(step), signal_name
        by = signal_name or "a stop signal"
        super().__init__(f"stopped by {by} after step {step} (last.pt saved); continue with {resume_command(run_dir)}")


def resume_command(run_dir: str | os.PathLike) -> str:
    """The shell command that continues a run, its directory quoted for any shell (spaces, quotes, ...)."""
    return f"maed train --resume {shlex.quote(str(run_dir))}"


class StopSignals:
    """Mixed into the :class:`~maed.train.engine.Trainer`: while :meth:`_stop_on_signals` is active, SIGTERM
    and SIGUSR1 are recorded in ``_stop_signal`` (this rank's signal, None before any) instead of ending the
    process; the trainer agrees on it with the other ranks at its next step."""

    _stop_signal: int | None = None

    def _signal_handler(self, signum, frame) -> None:
        self._stop_signal = signum

    @contextlib.contextmanager
    def _stop_on_signals(self):
        """SIGTERM / SIGUSR1 (Slurm preemption) finish the current step, save last.pt and stop."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self._signal_handler) for s in (signal.SIGTERM, signal.SIGUSR1)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    @property
    def stop_signal_name(self) -> str | None:
        """The stop signal this rank received (``SIGTERM``, ``SIGUSR1``), or None."""
        return None if self._stop_signal is None else signal.Signals(self._stop_signal).name
