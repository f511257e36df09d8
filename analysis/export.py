"""Tables (Markdown, LaTeX, CSV) and the marl-eval JSON export.

marl-eval's raw-data format (instadeepai/marl-eval README, "Data Structure for Raw Experiment data", and
its ``JsonLogger``): ``{env: {task: {algorithm: {seed_k: {step_0: {step_count, metric: [values]}, ...,
absolute_metrics: {metric: [values]}}}}}}``, the absolute metrics beside the steps at the seed level. Each of
our evaluations is stored as one value (the mean over its episodes), which the format allows.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def write_table(table: pd.DataFrame, path: Path) -> list[Path]:
    """CSV keeps every number; Markdown and LaTeX show ``point [lower, upper]``."""
    shown = table.drop(columns=["point", "lower", "upper"]).assign(
        value=[f"{r.point:.3f} [{r.lower:.3f}, {r.upper:.3f}]" for r in table.itertuples()])
    out = [path.with_suffix(ext) for ext in (".csv", ".md", ".tex")]
    table.to_csv(out[0], index=False)
    out[1].write_text(shown.to_markdown(index=False) + "\n")
    out[2].write_text(shown.to_latex(index=False))
    return out


def marl_eval_json(frame: pd.DataFrame, environment: str, metrics: list[str]) -> dict:
    """One benchmark's completed runs in marl-eval's format; ``metrics`` are names without the ``eval/`` prefix."""
    data: dict = {}
    wanted = frame[frame.metric.isin([f"eval/{m}" for m in metrics] + [f"absolute/{m}" for m in metrics])]
    for (task, algo, seed), run in wanted.groupby(["task", "algorithm", "seed"]):
        evals = run[run.metric.str.startswith("eval/")]
        steps = {}
        for i, (step, rows) in enumerate(evals.groupby("step", sort=True)):
            steps[f"step_{i}"] = {"step_count": int(step),
                                  **{m.removeprefix("eval/"): [float(v)] for m, v in zip(rows.metric, rows.value)}}
        absolute = run[run.metric.str.startswith("absolute/")]
        if steps:
            steps["absolute_metrics"] = {m.removeprefix("absolute/"): [float(v)] for m, v in zip(absolute.metric, absolute.value)}
        task_name = task.split("/", 1)[1]
        data.setdefault(environment, {}).setdefault(task_name, {}).setdefault(algo, {})[f"seed_{seed}"] = steps
    return data


def write_marl_eval(frame: pd.DataFrame, environment: str, metrics: list[str], path: Path) -> Path:
    path.write_text(json.dumps(marl_eval_json(frame, environment, metrics), indent=1))
    return path
