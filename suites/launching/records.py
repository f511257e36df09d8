"""Run records on disk: ``results/runs/<suite>/<task>/<algorithm>/seed_<k>/``.

A named variant of an algorithm (``--variant NAME``: other ``--set`` values or another preset) lives
under ``<algorithm>+<NAME>`` beside the algorithm's own runs, and is analysed as an algorithm of its own.

Runs on a family's other backends live under ``<task>_<backend>`` (StarCraft II runs of a SMAC task under
``<task>_sc2``) beside those on its first backend, so two backends never share a record, a skip decision
or a resume.

Each run directory is the base directory of its own Sacred FileStorageObserver, so parallel runs never
share one. Sacred numbers its attempts ``1/``, ``2/``, ... (a resumed run is a new attempt); the
suite's ``checkpoint.pt`` and ``best_policy.pt`` sit beside them.
"""
from __future__ import annotations

import json
from pathlib import Path

import envs

DONE, PARTIAL, FAILED, PENDING = "done", "partial", "failed", "pending"


RECORD_FORMAT = 2  # written into every config.json; the analysis refuses another with a clear reason


def algorithm_label(algorithm: str, variant: str = "") -> str:
    """What records, tables and figures call a run's algorithm: ``mabl``, or ``mabl+<variant>``."""
    return f"{algorithm}+{variant}" if variant else algorithm


def run_id(suite: str, task: str, algorithm: str, seed: int, backend: str, variant: str = "") -> str:
    default = next(iter(envs.family_of(task).backends))  # a family's first backend records under the task alone
    task_dir = task.replace("/", "_") + ("" if backend == default else f"_{backend}")
    return f"{suite}/{task_dir}/{algorithm_label(algorithm, variant)}/seed_{seed}"


def attempts(record_dir: Path) -> list[tuple[int, dict]]:
    """Sacred attempts with a readable run.json, oldest first; unreadable ones are skipped."""
    found = []
    if not record_dir.is_dir():
        return found
    for d in record_dir.iterdir():
        if d.is_dir() and d.name.isdigit():
            try:
                found.append((int(d.name), json.loads((d / "run.json").read_text())))
            except (OSError, ValueError):
                continue
    return sorted(found, key=lambda x: x[0])


def mark_interrupted(record_dir: Path) -> list[int]:
    """Before a new attempt of this run starts: earlier attempts still marked RUNNING were killed (a killed
    process never writes its status, and one run never runs twice at once), so mark them INTERRUPTED (a
    Sacred status) and name the attempt that replaces them. Returns the attempts marked."""
    runs = attempts(record_dir)
    following = (runs[-1][0] + 1) if runs else 1
    marked = []
    for number, run in runs:
        if run.get("status") == "RUNNING":
            run.update(status="INTERRUPTED", superseded_by=f"attempt {following}")
            (record_dir / str(number) / "run.json").write_text(json.dumps(run, indent=2))
            marked.append(number)
    return marked


def recorded_settings(record_dir: Path) -> dict | None:
    """The preset and algorithm config fields the run's latest attempt recorded; None when there is no
    attempt or its config.json is unreadable."""
    runs = attempts(record_dir)
    if not runs:
        return None
    try:
        config = json.loads((record_dir / str(runs[-1][0]) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return {"preset": config.get("preset"), **config.get("algorithm_config", {})}


def completed_summary(record_dir: Path) -> dict:
    """What a completed attempt reported: its steps and absolute metric (empty where unreadable)."""
    for number, run in reversed(attempts(record_dir)):
        if run.get("status") == "COMPLETED":
            try:
                return {"steps": run.get("result", {}).get("steps"),
                        "absolute": json.loads((record_dir / str(number) / "info.json").read_text())["absolute"]}
            except (OSError, ValueError, KeyError, AttributeError):
                return {"steps": None, "absolute": {}}
    return {"steps": None, "absolute": {}}


def run_status(record_dir: Path) -> str:
    runs = attempts(record_dir)
    if any(r.get("status") == "COMPLETED" for _, r in runs):
        return DONE
    if runs and runs[-1][1].get("status") == "FAILED":
        return FAILED
    if (record_dir / "checkpoint.pt").exists():
        return PARTIAL
    return PENDING


SUBMITTED = "submitted.json"  # in a run's directory: the submitit job it was given to (job id, cluster, host, folder)


def submission(record_dir: Path) -> dict | None:
    """The submitit job a run was last given to, as its ``submitted.json`` says (whether or not that job still
    runs: ``launchers.submitted_job`` asks); None if it was given to none."""
    try:
        return json.loads((record_dir / SUBMITTED).read_text())
    except (OSError, ValueError):
        return None
