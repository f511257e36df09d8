"""Load run records into one tidy pandas frame.

One row per logged scalar: suite, family, task, backend, algorithm, preset, seed, step, metric, value,
status. Only each run's COMPLETED attempt is loaded; partial, failed and unreadable records are skipped
and listed in the report, never silently included.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from suites.records import attempts, run_status

COLUMNS = ["suite", "family", "task", "backend", "algorithm", "preset", "seed", "step", "metric", "value", "status"]


@dataclass
class LoadReport:
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run dir, reason)

    def __str__(self) -> str:
        lines = [f"loaded {self.loaded} completed run(s); skipped {len(self.skipped)}"]
        lines += [f"  skipped {run}: {why}" for run, why in self.skipped]
        return "\n".join(lines)


def run_dirs(results: Path) -> list[Path]:
    """Directories holding one run's attempts (``.../seed_<k>``)."""
    return sorted(p for p in (results / "runs").glob("**/seed_*") if p.is_dir())


def load_records(results: Path, suite: str | None = None) -> tuple[pd.DataFrame, LoadReport]:
    report, frames = LoadReport(), []
    for run_dir in run_dirs(results):
        status = run_status(run_dir)
        completed = [n for n, r in attempts(run_dir) if r.get("status") == "COMPLETED"]
        if not completed:
            report.skipped.append((str(run_dir), f"status {status}"))
            continue
        attempt = run_dir / str(completed[-1])
        try:
            config = json.loads((attempt / "config.json").read_text())
            metrics = json.loads((attempt / "metrics.json").read_text())
        except (OSError, ValueError) as err:
            report.skipped.append((str(run_dir), f"unreadable record ({type(err).__name__})"))
            continue
        if suite and config.get("suite") != suite:
            continue
        rows = [(config["suite"], config["family"], config["task"], config["backend"], config["algorithm"],
                 config["preset"], config["seed"], step, name, value, "COMPLETED")
                for name, series in metrics.items() for step, value in zip(series["steps"], series["values"])]
        frames.append(pd.DataFrame(rows, columns=COLUMNS))
        report.loaded += 1
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return frame, report


def benchmark_label(family: str, backend: str) -> str:
    """Results of different backends are never pooled: each gets its own label."""
    if family == "smac":
        return "SMAC (StarCraft II)" if backend == "sc2" else "SMAC (simulator)"
    return family.capitalize()
