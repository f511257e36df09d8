"""Load run records into one tidy pandas frame.

One row per logged scalar: suite, family, task, backend, game, algorithm, preset, seed, step, metric, value,
status. ``game`` names the StarCraft II build a run's episodes came from (as its record's info.json says; empty
for the simulator and Flatland), so that results of different game versions are never pooled. How each
benchmark (a family on one backend) is titled and scored comes from the environment spec
its runs recorded, each algorithm's display name from its config and the comparisons from the suite, as
recorded too, so the analysis needs no knowledge of any family, algorithm or suite. A named variant's runs carry
``<algorithm>+<variant>`` as their algorithm, so every statistic and figure treats them as an algorithm of
their own. Only each run's COMPLETED attempt is loaded; partial, failed and unreadable records (a
half-written JSON, a missing file) are skipped with one warning each and listed in the report, never
silently included.
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from suites.launching.records import RECORD_FORMAT, algorithm_label, attempts, run_status

COLUMNS = ["suite", "family", "task", "backend", "game", "algorithm", "preset", "seed", "step", "metric", "value", "status"]
CONFIG_KEYS = ["suite", "family", "task", "backend", "algorithm", "preset", "seed"]  # read from config.json


class SkippedRecord(UserWarning):
    """A run record that the analysis leaves out, and why."""


@dataclass(frozen=True)
class Benchmark:
    """A family on one backend as its records describe it (``EnvSpec``'s family fields)."""

    title: str  # e.g. "SMAC (simulator)"
    metric: str  # the headline metric
    scores: dict[str, tuple[float, str]]  # metric -> (divisor onto [0, 1], label)

    @classmethod
    def recorded(cls, env_spec: dict) -> Benchmark:
        """From a record's ``env_spec``."""
        scores = {s["metric"]: (s["scale"], s["label"]) for s in env_spec["scores"]}
        return cls(env_spec["benchmark"], env_spec["metric"], scores)


@dataclass
class LoadReport:
    loaded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run dir, reason)
    benchmarks: dict[tuple[str, str], Benchmark] = field(default_factory=dict)  # (family, backend) -> description
    display_names: dict[str, str] = field(default_factory=dict)  # algorithm -> its name in figures, as recorded
    comparisons: dict[str, dict] = field(default_factory=dict)  # suite -> its comparisons, as its runs recorded them

    def skip(self, run_dir: Path, reason: str) -> None:
        self.skipped.append((str(run_dir), reason))
        warnings.warn(f"skipped {run_dir}: {reason}", SkippedRecord, stacklevel=3)

    def __str__(self) -> str:
        kinds = Counter(reason.split(" (")[0] for _, reason in self.skipped)
        counts = "".join(f"; {n} {kind}" for kind, n in sorted(kinds.items()))
        return f"loaded {self.loaded} completed run(s); skipped {len(self.skipped)}{counts}"


def game_label(attempt: Path) -> str:
    """The game version an attempt's episodes came from, e.g. "4.10.0.75689" (as the running game reported it,
    else the installed build it ran, "Base75689"); "" where its record names none (no game ran)."""
    info = attempt / "info.json"
    game = json.loads(info.read_text()).get("game") if info.is_file() else None
    if not game:
        return ""
    return str(game.get("game_version") or game.get("build_used") or "unknown")


def run_dirs(results: Path) -> list[Path]:
    """Directories holding one run's attempts (``.../seed_<k>``)."""
    return sorted(p for p in (results / "runs").glob("**/seed_*") if p.is_dir())


def load_records(results: Path, suite: str | None = None, prefixes: tuple[str, ...] | None = None
                 ) -> tuple[pd.DataFrame, LoadReport]:
    """Completed runs (of ``suite`` if given), keeping only metrics whose names start with ``prefixes``."""
    report, frames = LoadReport(), []
    for run_dir in run_dirs(results):
        if suite and run_dir.relative_to(results / "runs").parts[0] != suite:
            continue
        completed = [n for n, r in attempts(run_dir) if r.get("status") == "COMPLETED"]
        if not completed:
            numbered = [d for d in run_dir.iterdir() if d.is_dir() and d.name.isdigit()]
            unreadable = len(numbered) > len(attempts(run_dir))
            report.skip(run_dir, "unreadable record (run.json)" if unreadable else f"{run_status(run_dir)} run")
            continue
        attempt = run_dir / str(completed[-1])
        try:
            config = json.loads((attempt / "config.json").read_text())
            if config.get("record_format") != RECORD_FORMAT:
                report.skip(run_dir, f"record of another format ({config.get('record_format')!r}; this version "
                                     f"reads format {RECORD_FORMAT}: rerun the run, or analyse it with the version "
                                     f"that wrote it)")
                continue
            metrics = json.loads((attempt / "metrics.json").read_text())
            head = {k: config[k] for k in CONFIG_KEYS} | {"game": game_label(attempt),
                                                           "algorithm": algorithm_label(config["algorithm"], config["variant"])}
            benchmark = Benchmark.recorded(config["env_spec"])
            named, compared = config["display_name"], config["comparisons"]
        except (OSError, ValueError, KeyError) as err:
            report.skip(run_dir, f"unreadable record ({type(err).__name__}: {err})")
            continue
        report.display_names[config["algorithm"]] = named
        report.comparisons[config["suite"]] = compared
        rows = [(*(head[k] for k in COLUMNS[:COLUMNS.index("step")]), step, name, value, "COMPLETED")
                for name, series in metrics.items() if prefixes is None or name.startswith(prefixes)
                for step, value in zip(series["steps"], series["values"])]
        frames.append(pd.DataFrame(rows, columns=COLUMNS))
        report.benchmarks[config["family"], config["backend"]] = benchmark
        report.loaded += 1
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return frame, report

