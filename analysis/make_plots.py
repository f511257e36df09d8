"""Regenerate figures and tables from run records.

    python analysis/make_plots.py [--suite NAME] [--results DIR] [--reps N]

Per benchmark (family and backend, never mixed): a table of the absolute metric per task and
algorithm (IQM with 95% stratified-bootstrap intervals over seeds, rliable) plus the aggregate IQM,
mean, median and optimality gap across tasks; and sample-efficiency curves of the evaluation metric.
Bootstraps are reproducible: numpy's global generator is seeded before each rliable call, because
rliable's ``random_state`` does not control its resampling.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis.records import benchmark_label, load_records  # noqa: E402

BOOTSTRAP_SEED = 0
HEADLINE = {"smac": "win_rate", "flatland": "completion"}


def interval(scores: np.ndarray, func, reps: int) -> tuple[float, float, float]:
    """Point estimate and 95% stratified-bootstrap interval of ``func`` on a (runs x tasks) array."""
    from rliable import library as rly

    np.random.seed(BOOTSTRAP_SEED)
    point, ci = rly.get_interval_estimates({"x": scores}, func, reps=reps)
    return float(np.asarray(point["x"]).ravel()[0]), float(ci["x"][0].ravel()[0]), float(ci["x"][1].ravel()[0])


def aggregate_table(frame: pd.DataFrame, metric: str, reps: int) -> pd.DataFrame:
    from rliable import metrics as rm

    absolute = frame[frame.metric == f"absolute/{metric}"]
    rows = []
    iqm = lambda s: np.array([rm.aggregate_iqm(s)])  # noqa: E731
    for (task, algo), group in absolute.groupby(["task", "algorithm"]):
        point, lo, hi = interval(group.value.to_numpy()[:, None], iqm, reps)
        rows.append(dict(task=task, algorithm=algo, seeds=len(group), IQM=point, lower=lo, upper=hi))
    tasks = sorted(absolute.task.unique())
    aggregates = {"IQM": rm.aggregate_iqm, "Mean": rm.aggregate_mean, "Median": rm.aggregate_median,
                  "Optimality gap": rm.aggregate_optimality_gap}
    for algo, group in absolute.groupby("algorithm"):
        per_task = [group[group.task == t].value.to_numpy() for t in tasks]
        runs = min(len(x) for x in per_task)
        if runs == 0:
            continue
        scores = np.stack([x[:runs] for x in per_task], axis=1)  # (runs, tasks)
        for name, fn in aggregates.items():
            point, lo, hi = interval(scores, lambda s, fn=fn: np.array([fn(s)]), reps)
            rows.append(dict(task=f"all tasks ({name})", algorithm=algo, seeds=runs, IQM=point, lower=lo, upper=hi))
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, path: Path) -> None:
    shown = table.assign(value=[f"{r.IQM:.3f} [{r.lower:.3f}, {r.upper:.3f}]" for r in table.itertuples()])
    shown = shown[["task", "algorithm", "seeds", "value"]]
    table.to_csv(path.with_suffix(".csv"), index=False)
    path.with_suffix(".md").write_text(shown.to_markdown(index=False) + "\n")
    path.with_suffix(".tex").write_text(shown.to_latex(index=False))


def curves_figure(frame: pd.DataFrame, metric: str, title: str, path: Path) -> None:
    data = frame[frame.metric == f"eval/{metric}"]
    tasks = sorted(data.task.unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sns.lineplot(data=data[data.task == task], x="step", y="value", hue="algorithm", errorbar=("ci", 95),
                     n_boot=1000, seed=BOOTSTRAP_SEED, ax=ax)
        ax.set(title=task, xlabel="environment steps", ylabel=metric.replace("_", " "))
    fig.suptitle(title)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(path.with_suffix(f".{ext}"), dpi=150)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", help="only records of this suite")
    p.add_argument("--results", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions")
    args = p.parse_args(argv)
    frame, report = load_records(args.results, args.suite)
    print(report)
    if frame.empty:
        print(f"no completed runs under {args.results / 'runs'}; run a suite first, e.g. "
              "`python -m suites.run smoke`", file=sys.stderr)
        return 1
    figures, tables = args.results / "figures", args.results / "tables"
    figures.mkdir(parents=True, exist_ok=True)
    tables.mkdir(parents=True, exist_ok=True)
    for (suite, family, backend), group in frame.groupby(["suite", "family", "backend"]):
        metric = HEADLINE[family]
        stem = f"{suite}_{family}_{backend}"
        label = benchmark_label(family, backend)
        table = aggregate_table(group, metric, args.reps)
        write_table(table, tables / f"{stem}_absolute_{metric}")
        curves_figure(group, metric, f"{label}: {suite}", figures / f"{stem}_curves")
        print(f"{label} ({suite}): wrote {tables / stem}_absolute_{metric}.{{md,csv,tex}} and "
              f"{figures / stem}_curves.{{png,pdf}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
