"""One writer per run: while a process trains a run, the run's directory holds ``lease.json`` naming it (host,
pid, since), and the process touches the file every ``HEARTBEAT_SECONDS``. Another launcher on the same
results folder (a command started twice, a rerun while an array still runs, a second terminal) finds the
lease live and skips the run, saying who holds it.

A lease is stale, and taken over, when its holder is a process of this host that no longer exists (at once), or
when its heartbeat is older than ``STALE_SECONDS`` (a kill -9 elsewhere, a dead node: after 10 minutes), or at
once by a later attempt of the holder's own cluster job: a SLURM job requeued after a preemption that gave
no time to checkpoint (the same ``SLURM_JOB_ID``, a higher ``SLURM_RESTART_COUNT``), or a Ray task retried
after its worker died (``RAY_TASK_VARIABLE``; Ray runs a task's attempts one after another). The
lease is created with an atomic hard link of a complete file, and a stale one is moved aside by one atomic
rename that only one contender can win, so two processes never both hold it. A holder whose lease was taken
over (its heartbeat stalled for 10 minutes) stops at its next step without writing a checkpoint, so it never
writes beside the new holder.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LEASE = "lease.json"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0
RAY_TASK_VARIABLE = "SUITES_RAY_TASK"  # set by the Ray launcher's task: the task's id (the same across retries)


def current_job() -> tuple[str, float]:
    """The cluster job this process trains for, and which attempt of it this is (later attempts are larger):
    ("", 0) outside SLURM and Ray."""
    if os.environ.get(RAY_TASK_VARIABLE):
        return f"ray:{os.environ[RAY_TASK_VARIABLE]}", time.time()
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm:{os.environ['SLURM_JOB_ID']}", float(os.environ.get("SLURM_RESTART_COUNT", 0))
    return "", 0.0


class HeldElsewhere(RuntimeError):
    """Another process holds the run's lease: it is training the run now."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    since: float
    token: str
    job: str = ""  # the cluster job it trains for, and its attempt (``current_job``)
    attempt: float = 0.0

    def superseded_by(self, other: Holder) -> bool:
        """Whether ``other`` is a later attempt of this holder's own job (this one is then gone)."""
        return bool(self.job) and self.job == other.job and self.attempt < other.attempt

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host} (since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.since))})"


def _read(path: Path) -> tuple[Holder, float] | None:
    """The lease's holder and the time of its last heartbeat, or None when there is no (readable) lease."""
    try:
        heartbeat = path.stat().st_mtime
        return Holder(**json.loads(path.read_text())), heartbeat
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _alive(holder: Holder, heartbeat: float) -> bool:
    if holder.host == socket.gethostname():
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, another user's
            pass
    return time.time() - heartbeat < STALE_SECONDS


def live_holder(run_dir: Path) -> Holder | None:
    """Who is training the run in ``run_dir`` now, if anyone."""
    found = _read(run_dir / LEASE)
    return found[0] if found is not None and _alive(*found) else None


class RunLease:
    """The lease of one run directory, for this process."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LEASE
        self.holder = Holder(socket.gethostname(), os.getpid(), time.time(), uuid.uuid4().hex, *current_job())

    def acquire(self) -> Holder | None:
        """Take the lease; None when taken, else the live holder (another process)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        draft = self.path.with_name(f".lease.{self.holder.token}")
        draft.write_text(json.dumps(self.holder.__dict__))
        try:
            for _ in range(5):
                try:
                    os.link(draft, self.path)  # atomic, and fails if a lease exists
                    return None
                except FileExistsError:
                    found = _read(self.path)
                    if found is not None and _alive(*found) and not found[0].superseded_by(self.holder):
                        return found[0]
                    try:  # stale (or half-gone): move it aside; one contender wins, the others retry
                        os.rename(self.path, self.path.with_name(f".stale.{self.holder.token}"))
                        os.unlink(self.path.with_name(f".stale.{self.holder.token}"))
                    except FileNotFoundError:
                        pass
            found = _read(self.path)
            return found[0] if found else self.holder  # contended five times over: treat as held
        finally:
            draft.unlink(missing_ok=True)

    def held(self) -> bool:
        """Still ours; and touch it (the heartbeat)."""
        found = _read(self.path)
        if found is None or found[0].token != self.holder.token:
            return False
        os.utime(self.path)
        return True

    def release(self) -> None:
        found = _read(self.path)
        if found is not None and found[0].token == self.holder.token:
            self.path.unlink(missing_ok=True)


class Heartbeat:
    """Touches ``leases`` every ``HEARTBEAT_SECONDS`` from a daemon thread while the block runs; when one is
    found taken over, calls ``on_lost`` once (the training loop then stops at its next step, writing nothing
    more: ``suites/launching/stopping.py``)."""

    def __init__(self, leases: list[RunLease], on_lost: Callable[[], None], every: float = HEARTBEAT_SECONDS):
        self.leases, self.on_lost, self.every = leases, on_lost, every
        self._stop = threading.Event()
        self.lost: list[RunLease] = []

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, daemon=True, name="lease-heartbeat")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self.lost = [lease for lease in self.leases if not lease.held()]
            if self.lost:
                self.on_lost()
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
