"""Seaborn figures, each saved as PNG and PDF. Inputs are the tidy frames of ``analysis.stats``."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from suites.definitions import ALGORITHMS  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")


def _palette(algorithms) -> dict:
    """The same colour for an algorithm in every figure."""
    names = list(ALGORITHMS) + sorted(set(algorithms) - set(ALGORITHMS))
    return dict(zip(names, sns.color_palette("colorblind", len(names))))


def _save(fig, path: Path) -> list[Path]:
    fig.tight_layout()
    out = [path.with_suffix(f".{ext}") for ext in ("png", "pdf")]
    for p in out:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return out


def _bands(ax, data: pd.DataFrame, x: str, palette: dict) -> None:
    """Point estimates as lines, 95% intervals as shaded bands, one colour per algorithm."""
    sns.lineplot(data=data, x=x, y="point", hue="algorithm", palette=palette, ax=ax)
    for algo, group in data.groupby("algorithm"):
        ax.fill_between(group[x], group.lower, group.upper, color=palette[algo], alpha=0.2, linewidth=0)


def task_curves(curves: pd.DataFrame, label: str, title: str, path: Path) -> list[Path]:
    """Evaluation metric against environment steps, one panel per task (IQM over seeds, 95% intervals)."""
    tasks = sorted(curves.task.unique())
    palette = _palette(curves.algorithm.unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        _bands(ax, curves[curves.task == task], "step", palette)
        ax.set(title=task, xlabel="environment steps", ylabel=f"IQM {label}")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 16k, 2M: full step counts run into each other
    fig.suptitle(title)
    return _save(fig, path)


def iqm_curve(curves: pd.DataFrame, label: str, title: str, path: Path) -> list[Path]:
    """Sample efficiency: IQM across runs and tasks at each evaluation step, with stratified-bootstrap CIs."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    _bands(ax, curves, "step", _palette(curves.algorithm.unique()))
    ax.set(title=title, xlabel="environment steps", ylabel=f"IQM {label}")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    return _save(fig, path)


def profiles(data: pd.DataFrame, label: str, title: str, path: Path) -> list[Path]:
    """Performance profiles: the fraction of runs with a final score above tau."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    _bands(ax, data, "tau", _palette(data.algorithm.unique()))
    ax.set(title=title, xlabel=f"{label} threshold τ", ylabel="fraction of runs with score > τ",
           xlim=(0, 1), ylim=(0, 1.02))
    return _save(fig, path)


def interval_plot(table: pd.DataFrame, label: str, value: str, title: str, path: Path,
                  limits: tuple[float, float] | None = None) -> list[Path]:
    """Point estimates with 95% intervals as horizontal bars, one row per ``label`` (one panel per statistic
    when the table has several)."""
    panels = list(dict.fromkeys(table.statistic)) if "statistic" in table else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.6 * len(panels), 6), 0.5 * table[label].nunique() + 1.4),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
        rows = table if panel is None else table[table.statistic == panel]
        sns.pointplot(data=rows, x="point", y=label, linestyle="none", color="black", ax=ax)
        ax.hlines(range(len(rows)), rows.lower, rows.upper, color="tab:blue", linewidth=4, alpha=0.6)
        ax.set(title=panel or title, xlabel=value, ylabel="")
        if limits:
            ax.set_xlim(*limits)
    if panels != [None]:
        fig.suptitle(title)
    return _save(fig, path)


def ablation(per_task: pd.DataFrame, label: str, title: str, path: Path) -> list[Path]:
    """Per task, the IQM over seeds of MABL and the single-level ablation, with 95% intervals."""
    palette = _palette(per_task.algorithm.unique())
    tasks = sorted(per_task.task.unique())
    fig, ax = plt.subplots(figsize=(1.2 * len(tasks) + 3, 3.8))
    for offset, algo in ((-0.12, "mabl"), (0.12, "mabl_single_level")):
        rows = per_task[per_task.algorithm == algo].set_index("task").reindex(tasks)
        x = [i + offset for i in range(len(tasks))]
        point, lower, upper = (rows[c].to_numpy() for c in ("point", "lower", "upper"))  # a Series of one task warns
        ax.errorbar(x, point, yerr=[point - lower, upper - point], fmt="o", capsize=4,
                    color=palette[algo], label=algo)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set(title=title, xlabel="", ylabel=f"IQM {label}")
    ax.legend()
    return _save(fig, path)
