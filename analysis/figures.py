"""Seaborn figures, each saved as PNG and PDF. Inputs are the tidy frames of ``analysis.stats``.

Every figure names algorithms as a paper would (``display_name``), gives each the same colour and marker in
every figure, keeps its legend outside the data, and states under the plot what its intervals are and how
many runs and tasks they pool (the ``caption`` that ``make_plots`` writes).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

from suites.planning.definitions import ALGORITHMS, SCRIPTED  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")

MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "<", ">")
KNOWN = (*ALGORITHMS, *SCRIPTED)


_names: dict[str, str] = {}  # algorithm -> display name, from the records (``name_algorithms``)


def name_algorithms(names: dict[str, str]) -> None:
    """Name algorithms as their runs recorded it (``LoadReport.display_names``, from each algorithm's config)."""
    _names.clear()
    _names.update(names)


def display_name(algorithm: str) -> str:
    """``mabl_single_level`` -> "MABL (single level)"; a variant ``mabl+reward_global`` -> "MABL + reward_global";
    an algorithm without a recorded name keeps its own."""
    base, _, variant = algorithm.partition("+")
    name = _names.get(base, base)
    return f"{name} + {variant}" if variant else name


def display_comparison(text: str) -> str:
    """``P(mabl > mabl_single_level)`` -> ``P(MABL > MABL (single level))``; other text unchanged."""
    if not (text.startswith("P(") and " > " in text):
        return text
    a, b = text[2:-1].split(" > ")
    return f"P({display_name(a)} > {display_name(b)})"


def ordered_names(algorithms) -> list[str]:
    """Display names in the order every figure and table uses: the suite's algorithms, the scripts, then
    variants and others alphabetically."""
    return _style(algorithms)[0]


def _style(algorithms) -> tuple[list[str], dict, dict]:
    """Display names in a fixed order (known algorithms, then variants alphabetically), and a colour and a
    marker for each, fixed by the algorithm's place in that order so it looks the same in every figure."""
    present = set(algorithms)
    everyone = [*KNOWN, *sorted(present - set(KNOWN))]
    colours = sns.color_palette("colorblind", len(everyone))
    names = [display_name(a) for a in everyone if a in present]
    colour = {display_name(a): colours[i] for i, a in enumerate(everyone)}
    marker = {display_name(a): MARKERS[i % len(MARKERS)] for i, a in enumerate(everyone)}
    return names, colour, marker


def _save(fig, path: Path, caption: str) -> list[Path]:
    fig.tight_layout()  # labels inside the figure, so the caption goes below all of them
    fig.text(0.0, 0.0, caption, ha="left", va="top", fontsize=7, color="0.3")
    out = [path.with_suffix(f".{ext}") for ext in ("png", "pdf")]
    for p in out:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


def _legend_outside(fig, names: list[str]) -> None:
    """One legend for the figure, right of the panels, never over the data: every algorithm of any panel
    (a task may lack some), in the order of ``names``."""
    entries = {}
    for ax in fig.axes:
        entries.update(zip(*reversed(ax.get_legend_handles_labels())))
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    shown = [n for n in names if n in entries]
    fig.legend([entries[n] for n in shown], shown, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def _bands(ax, data: pd.DataFrame, x: str) -> None:
    """Point estimates as lines with markers, 95% intervals as shaded bands, one colour per algorithm. Each
    later line is drawn thinner, with a smaller marker, on top of the earlier ones, so lines that coincide
    (several algorithms at 0, say) still show every colour."""
    names, colour, marker = _style(data.algorithm.unique())
    data = data.assign(algorithm=data.algorithm.map(display_name))
    every = max(1, data[x].nunique() // 10)  # about ten markers per line, however dense the curve
    for i, name in enumerate(names):
        group = data[data.algorithm == name].sort_values(x)
        wider = (len(names) - 1 - i) / max(1, len(names) - 1)  # 1 for the first line, 0 for the last
        ax.plot(group[x], group.point, color=colour[name], marker=marker[name], markevery=every, label=name,
                linewidth=1.2 + 2.0 * wider, markersize=4 + 5 * wider, zorder=2 + i)
        ax.fill_between(group[x], group.lower, group.upper, color=colour[name], alpha=0.15, linewidth=0)


def _score_limits(curves: pd.DataFrame) -> tuple[float, float]:
    """Scores are on [0, 1] (make_plots scales them): every panel shows the whole scale, a little more when
    a return passes it."""
    return -0.03, max(1.03, float(curves.upper.max()) + 0.03)


def task_curves(curves: pd.DataFrame, label: str, title: str, path: Path, caption: str) -> list[Path]:
    """Evaluation metric against environment steps, one panel per task (IQM over seeds, 95% intervals)."""
    tasks = sorted(curves.task.unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        _bands(ax, curves[curves.task == task], "step")
        ax.set(title=task, xlabel="environment steps", ylabel=f"IQM {label}", ylim=_score_limits(curves))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 16k, 2M: full step counts run into each other
    fig.suptitle(title)
    _legend_outside(fig, ordered_names(curves.algorithm.unique()))
    return _save(fig, path, caption)


def iqm_curve(curves: pd.DataFrame, label: str, title: str, path: Path, caption: str) -> list[Path]:
    """Sample efficiency: IQM across runs and tasks at each evaluation step, with stratified-bootstrap CIs."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    _bands(ax, curves, "step")
    ax.set(title=title, xlabel="environment steps", ylabel=f"IQM {label}", ylim=_score_limits(curves))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    _legend_outside(fig, ordered_names(curves.algorithm.unique()))
    return _save(fig, path, caption)


def profiles(data: pd.DataFrame, label: str, title: str, path: Path, caption: str) -> list[Path]:
    """Performance profiles: the fraction of runs with a final score above tau."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    _bands(ax, data, "tau")
    ax.set(title=title, xlabel=f"{label} threshold τ", ylabel="fraction of runs with score > τ",
           xlim=(0, 1), ylim=(0, 1.02))
    _legend_outside(fig, ordered_names(data.algorithm.unique()))
    return _save(fig, path, caption)


def interval_plot(table: pd.DataFrame, row: str, value: str, title: str, path: Path, caption: str,
                  limits: tuple[float, float] | None = None) -> list[Path]:
    """Point estimates with 95% intervals as horizontal bars, one line per ``row`` and one panel per
    statistic when the table has several. Rows that are algorithms get their colours (rliable's
    ``plot_interval_estimates`` style); other rows (comparisons) are drawn in one colour."""
    panels = list(dict.fromkeys(table.statistic)) if "statistic" in table else [None]
    by_algorithm = row == "algorithm"
    if by_algorithm:
        names, colour, _ = _style(table.algorithm.unique())
        table = table.assign(algorithm=table.algorithm.map(display_name))
    else:
        tied = table["all_ties"] if "all_ties" in table else [False] * len(table)
        table = table.assign(**{row: [display_comparison(v) + (" (all ties)" if t else "")
                                      for v, t in zip(table[row], tied)]})
        names = list(dict.fromkeys(table[row]))
        colour = dict.fromkeys(names, sns.color_palette("colorblind")[0])
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.2 * len(panels), 6), 0.45 * len(names) + 1.4),
                             squeeze=False, sharey=True)
    for ax, panel in zip(axes[0], panels):
        rows = (table if panel is None else table[table.statistic == panel]).set_index(row).reindex(names)
        for y, (name, r) in enumerate(rows.iterrows()):
            ax.barh(y, r.upper - r.lower, left=r.lower, height=0.6, color=colour[name], alpha=0.75)
            ax.vlines(r.point, y - 0.3, y + 0.3, color="black", linewidth=1.5)
        ax.set_yticks(range(len(names)), names)
        ax.set(title=panel or title, xlabel=value, ylabel="")
        low, high = limits or (rows.lower.min(), rows.upper.max())
        pad = 0.05 * max(high - low, 0.1)  # an interval of zero width still shows its estimate
        ax.set_xlim(low - pad, high + pad)
    axes[0][0].invert_yaxis()  # the panels share it: the first row at the top
    if panels != [None]:
        fig.suptitle(title)
    return _save(fig, path, caption)


def ablation(per_task: pd.DataFrame, pair: tuple[str, str], label: str, title: str, path: Path,
             caption: str) -> list[Path]:
    """Per task, the IQM over seeds of an algorithm and its ablation (``pair``), with 95% intervals."""
    _, colour, marker = _style(per_task.algorithm.unique())
    tasks = sorted(per_task.task.unique())
    fig, ax = plt.subplots(figsize=(1.2 * len(tasks) + 3, 3.8))
    for offset, algo in zip((-0.12, 0.12), pair):
        rows = per_task[per_task.algorithm == algo].set_index("task").reindex(tasks)
        x = [i + offset for i in range(len(tasks))]
        point, lower, upper = (rows[c].to_numpy() for c in ("point", "lower", "upper"))  # a Series of one task warns
        name = display_name(algo)
        ax.errorbar(x, point, yerr=[point - lower, upper - point], fmt=marker[name], capsize=4, color=colour[name],
                    label=name)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set(title=title, xlabel="", ylabel=f"IQM {label}", ylim=_score_limits(per_task))  # the score's whole scale
    _legend_outside(fig, ordered_names(per_task.algorithm.unique()))
    return _save(fig, path, caption)
