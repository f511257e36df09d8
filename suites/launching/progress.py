"""Progress a person can read while a suite runs, however it is launched.

Every run keeps ``progress.json`` in its record directory up to date (steps done, budget, measured steps per
second), at most every ``EVERY`` seconds and at the end. The sequential launcher shows a suite bar (runs
done of all, the running one, an ETA from measured throughput) above the run's own bar; the process and
Ray launchers read the files of the runs in flight and print one summary line at a fixed interval.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

EVERY = 10.0  # seconds between progress.json writes
FILE = "progress.json"


class RunProgress:
    """What the runner reports to: an optional tqdm bar plus the run's progress file, which also names the
    seed members the run trains with (``group``, run ids; the run alone when solo): they advance together."""

    def __init__(self, record_dir: Path, total: int, group: tuple[str, ...], bar=None, record=None):
        self.path, self.total, self.bar, self.record, self.group = record_dir / FILE, total, bar, record, group
        self.steps = self.first_steps = 0
        self.started = self.written = time.monotonic()

    def start(self, steps: int) -> None:
        """The run begins (or resumes) at ``steps`` (a bar shared by seed members counts them all)."""
        self.steps = self.first_steps = steps
        if self.bar is not None:
            self.bar.update(steps)
        self.write()

    def advance(self, steps: int) -> None:
        self.steps += steps
        if self.bar is not None:
            self.bar.update(steps)
        if time.monotonic() - self.written >= EVERY:
            self.write()

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def say(self, line: str) -> None:
        """A line on stdout that does not tear a progress bar on the terminal, and in the run's record."""
        from tqdm import tqdm

        with tqdm.external_write_mode():
            print(line, flush=True)
        if self.record is not None:
            self.record(line)

    def write(self) -> None:
        elapsed = time.monotonic() - self.started
        rate = (self.steps - self.first_steps) / elapsed if elapsed > 0 else 0.0
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"steps": self.steps, "total": self.total, "steps_per_second": rate,
                                   "group": list(self.group)}))
        os.replace(tmp, self.path)
        self.written = time.monotonic()


def read(record_dir: Path) -> dict | None:
    try:
        return json.loads((record_dir / FILE).read_text())
    except (OSError, ValueError):
        return None


def summary(estimate: SuiteEta, finished: set[str], failed: int) -> str:
    """One line: runs finished of all, each unfinished run that has started with its share done and rate, and
    the ETA of the rest from each kind of run's own rate, shared among the groups in flight (the parallel, Ray
    and submitit launchers run that many processes at once)."""
    parts, flying = [], set()
    for run_id, record_dir, _, _, planned in estimate.runs:
        state = read(record_dir)
        if run_id in finished or state is None:  # not started: nothing to show, all its steps still to go
            continue
        share = state["steps"] / state["total"] if state["total"] else 0.0
        parts.append(f"{run_id} {share:.0%} ({state['steps_per_second']:,.0f} steps/s)")
        flying.add(_group(state, planned))
    eta = estimate.left(finished, parallel=max(1, len(flying)))
    head = f"[{len(finished)}/{len(estimate.runs)} runs done" + (f", {failed} failed" if failed else "") + f"; {eta}]"
    return head + (" running: " + "; ".join(parts) if parts else "")


def status_table(runs: list[tuple[str, Path, int]]) -> str:
    """Every run's state from its directory alone (records, progress file, lease), whatever launched it and on
    whichever node: done, running (and who holds it), interrupted, partial, failed or pending; steps done of
    its budget; its own measured rate; for a run not yet done, the time its remaining steps take at that rate,
    and the submitit job it was given to if no process holds it (queued, or ended: SLURM's ``squeue`` says
    which). ``runs``: (run id, directory, budget)."""
    from suites.launching.lease import live_holder
    from suites.launching.records import DONE, PARTIAL, attempts, run_status, submission

    rows, remaining = [], {}  # by group: its members train at once, so it needs its slowest member's time
    for run_id, record_dir, total in runs:
        state, holder, progress = run_status(record_dir), live_holder(record_dir), read(record_dir) or {}
        recorded = attempts(record_dir)
        last = recorded[-1][1].get("status") if recorded else None
        label = ("running" if holder is not None else
                 "interrupted" if state == PARTIAL and last == "INTERRUPTED" else state)
        steps = total if state == DONE else progress.get("steps", 0)
        rate = progress.get("steps_per_second") or 0.0
        eta = ""
        if state != DONE and rate > 0:
            eta = _duration((total - steps) / rate)
            group = _group(progress, (run_id,))
            remaining[group] = max(remaining.get(group, 0.0), (total - steps) / rate)
        job = submission(record_dir) if holder is None and state != DONE else None
        rows.append((run_id, label, f"{steps:,}/{total:,}", f"{rate:,.0f} steps/s" if rate else "", eta,
                     f"by {holder}" if holder is not None else
                     f"given to submitit job {job['job_id']} ({job['cluster']})" if job else ""))
    header = ("run", "state", "steps", "rate", "left", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + ("  " + row[5] if row[5] else "")
             for row in [header, *rows]]
    counts = {}
    for row in rows:
        counts[row[1]] = counts.get(row[1], 0) + 1
    lines.append(", ".join(f"{n} {label}" for label, n in counts.items())
                 + (f"; the unfinished runs that have started need {_duration(sum(remaining.values()))} more at "
                    "their own rates" if remaining else ""))
    return "\n".join(line.rstrip() for line in lines)


def _group(state: dict, planned: tuple[str, ...]) -> tuple[str, ...]:
    """The seed members a run trains with: as its progress file says once it has started (whoever launched
    it), else as planned."""
    return tuple(state["group"]) if state.get("group") else planned


class SuiteEta:
    """The time a suite has left, from each run's own rate. Runs of one algorithm on one task train at about
    the same speed, so the rate a run of that kind has shown (its progress file) stands for the others of its
    kind not yet started, and a kind not yet seen borrows the slowest rate seen so far. One smoothed rate over
    the whole suite, as tqdm keeps, mixes fast MAPPO steps with world-model learner pauses and jumps between
    minutes and hours. The seed members of a group (``--seed-batch``) train at once, each at its own rate,
    so a group takes as long as its slowest member, not the sum of theirs."""

    def __init__(self, runs: list[tuple[str, Path, int, tuple, tuple[str, ...]]]):
        self.runs = runs  # (run id, record dir, budget, kind, the run ids of its planned group)
        self.rates: dict[tuple, float] = {}

    def left(self, finished: set[str], parallel: int = 1) -> str:
        """ETA text for the runs not in ``finished``, ``parallel`` groups of them training at once."""
        states = {run_id: read(record_dir) or {} for run_id, record_dir, *_ in self.runs}
        for run_id, _, _, kind, _ in self.runs:
            if states[run_id].get("steps_per_second"):
                self.rates[kind] = states[run_id]["steps_per_second"]
        if not self.rates:
            return "ETA unknown"
        slowest, groups = min(self.rates.values()), {}
        for run_id, _, total, kind, planned in self.runs:
            if run_id in finished:
                continue
            state = states[run_id]
            rate = state.get("steps_per_second") or self.rates.get(kind, slowest)
            group = _group(state, planned)
            groups[group] = max(groups.get(group, 0.0), max(0, total - state.get("steps", 0)) / rate)
        return f"ETA {_duration(sum(groups.values()) / parallel)}"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {int(seconds % 60):02d} s"


class PlainBar:
    """The part of tqdm's interface the sequential launcher uses, as plain lines at most every ``every``
    seconds: what a log file (CI, nohup, SLURM) gets instead of a redrawn bar, which there becomes
    thousands of lines of cursor movements."""

    def __init__(self, total: int, desc: str = "", every: float = 30.0, heading: Callable[[], str] | None = None):
        """``heading``: text read at each line and put before ``desc`` (the suite's runs done and ETA, which
        change while this bar runs)."""
        self.total, self.desc, self.every, self.n, self.postfix = total, desc, every, 0, ""
        self.heading = heading
        self.started = self.printed = time.monotonic()

    def update(self, steps: int) -> None:
        self.n += steps
        if time.monotonic() - self.printed >= self.every:
            elapsed = time.monotonic() - self.started
            desc = f"{self.heading()}; {self.desc}" if self.heading is not None else self.desc
            print(f"{desc}: {self.n:,}/{self.total:,} steps ({self.n / elapsed:,.0f} steps/s)"
                  + (f", {self.postfix}" if self.postfix else ""), file=sys.stderr, flush=True)
            self.printed = time.monotonic()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def set_description_str(self, text: str) -> None:
        """A new description is a line of its own (the suite's runs done, as each run starts and at the end)."""
        if text != self.desc:
            print(text + (f", {self.postfix}" if self.postfix else ""), file=sys.stderr, flush=True)
        self.desc = text

    def close(self) -> None:
        pass

    @staticmethod
    def write(line: str) -> None:
        print(line, flush=True)
