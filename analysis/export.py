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

from analysis.figures import display_comparison, display_name, ordered_names


def write_table(table: pd.DataFrame, path: Path) -> list[Path]:
    """CSV keeps every number, one estimate per line. Markdown and LaTeX (booktabs rules) are what a paper
    shows: with an ``algorithm`` column, one row per task (and per statistic across tasks), one column per
    algorithm, each cell ``IQM [lower, upper]``, the best of a row in bold (the lowest optimality gap; every
    tied best cell, none where the whole row ties); otherwise one row per estimate, a probability of
    improvement that comes from ties alone marked "(all ties)"."""
    out = [path.with_suffix(ext) for ext in (".csv", ".md", ".tex")]
    table.to_csv(out[0], index=False)
    for target, bold, escape in ((out[1], "**{}**", str), (out[2], "\\textbf{{{}}}", _latex)):
        shown = _wide(table, bold, escape) if "algorithm" in table else _long(table, escape)
        if target.suffix == ".md":
            target.write_text(shown.to_markdown(index=False) + "\n")
        else:
            target.write_text(shown.to_latex(index=False, escape=False))
    return out


def _cell(row) -> str:
    return f"{row.point:.3f} [{row.lower:.3f}, {row.upper:.3f}]"


def _wide(table: pd.DataFrame, bold: str, escape) -> pd.DataFrame:
    rows = table.assign(
        row=[t if s == "IQM" and t != "all tasks" else f"{t}: {display_comparison(s)}"
             for t, s in zip(table.task, table.statistic)],
        column=table.algorithm.map(display_name), cell=[_cell(r) for r in table.itertuples()])
    wide = rows.pivot(index="row", columns="column", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(rows.row)), columns=ordered_names(table.algorithm.unique())).fillna("–")
    for label, group in rows.groupby("row", sort=False):
        statistic = group.statistic.iloc[0]
        if len(group) < 2 or statistic.startswith("P("):
            continue
        shown = group.point.round(3)  # ties as a reader sees them: every best cell bold, none if all are equal
        best = shown == (shown.min() if statistic == "Optimality gap" else shown.max())
        if best.all():
            continue
        for i in group.index[best]:
            wide.loc[label, group.column[i]] = bold.format(group.cell[i])
    wide.columns = [escape(c) for c in wide.columns]
    return wide.rename_axis(None, axis=1).rename_axis("task").reset_index().assign(task=lambda f: f.task.map(escape))


def _long(table: pd.DataFrame, escape) -> pd.DataFrame:
    label = table.columns[0]  # e.g. comparison
    names = [escape(display_comparison(v)) for v in table[label]]
    return pd.DataFrame({escape(label): names, "estimate [95% CI]": [
        _cell(r) + (" (all ties)" if getattr(r, "all_ties", False) else "") for r in table.itertuples()]})


def _latex(text: str) -> str:
    for char in "&%$#_{}":
        text = text.replace(char, "\\" + char)
    return text


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
