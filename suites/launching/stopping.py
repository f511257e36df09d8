"""Stopping a run cleanly on a signal: SIGTERM (what ``kill``, SLURM and job schedulers send), SIGINT (Ctrl-C),
SIGUSR1 (SLURM's warning before a time limit, with ``--signal=USR1@SECONDS``) and SIGUSR2 (submitit's). The
first such signal asks the training loop to stop at its next safe point, between two steps: every member writes
a checkpoint there and the runs end as INTERRUPTED at the step reached, so a rerun resumes them bit for bit,
as after a kill -9 but without losing the steps since the last evaluation. A second Ctrl-C stops at once;
other signals that follow (a launcher passing the stop on to its workers) change nothing."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2") if hasattr(signal, name))


class StopRequested(KeyboardInterrupt):
    """Raised by the training loop at its safe point after a stop signal, once every member has checkpointed;
    a KeyboardInterrupt, so every launcher treats it as one. ``steps``: each member's step reached."""

    def __init__(self, signal_name: str, steps: list[int]):
        super().__init__(f"{signal_name}: stopped at step(s) {', '.join(map(str, steps))}, checkpointed")
        self.signal_name, self.steps = signal_name, steps
        self.previous_handler = None  # what the signal did before the loop took it over (submitit: requeue)


class LeaseLost(KeyboardInterrupt):
    """Another process took over the run's lease (``suites/launching/lease.py``): stop at once, writing nothing more."""


class StopSignals:
    """While active, the first stop signal only sets ``requested`` (its name); a second SIGINT raises
    KeyboardInterrupt at once. Only the main thread can install handlers: elsewhere (a Ray task's thread)
    nothing is installed and the signals keep their usual effect."""

    def __init__(self):
        self.requested: str | None = None
        self.lost = False  # the lease was taken over: stop without a checkpoint

    def abandon(self) -> None:
        self.lost = True

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.requested is None:
            self.requested = name
        elif name == "SIGINT":  # Ctrl-C again: the person at the terminal will not wait
            raise KeyboardInterrupt

    @contextmanager
    def active(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        saved = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield self
        except StopRequested as err:
            err.previous_handler = saved.get(signal.Signals[err.signal_name])
            raise
        finally:
            for s, handler in saved.items():
                signal.signal(s, handler)
