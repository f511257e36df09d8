"""rliable statistics on tidy frames (Agarwal et al. 2021): stratified-bootstrap 95% intervals of IQM, mean,
median and optimality gap; IQM sample-efficiency curves; performance profiles; probability of improvement.

Scores are the headline metric (SMAC win rate, Flatland completion), already in [0, 1], so no
normalisation is applied. An algorithm enters a cross-task statistic with the seeds it completed on every
task of the benchmark; seeds or tasks it lacks are reported by ``coverage``, never silently filled.
Bootstraps are reproducible: numpy's global generator is seeded before each rliable call, because
rliable's ``random_state`` does not control arch's resampling.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

BOOTSTRAP_SEED = 0
TAUS = np.linspace(0.0, 1.0, 101)


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean over runs and tasks (all axes but the last when ``scores`` has 3): the value of
    rliable's ``aggregate_iqm`` (scipy's 25% ``trim_mean``) without scipy's per-call overhead, which
    dominates inside a bootstrap."""
    flat = np.sort(scores.reshape(-1, scores.shape[-1]) if scores.ndim == 3 else scores.reshape(-1), axis=0)
    cut = int(0.25 * len(flat))
    return flat[cut:len(flat) - cut].mean(axis=0)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's ``probability_of_improvement`` (Mann-Whitney U / (n_x n_y), averaged over tasks),
    vectorised: per task, P(X > Y) + P(X = Y) / 2 over all pairs of runs."""
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float((greater + 0.5 * ties).mean())


AGGREGATES = {"IQM": iqm, "Mean": metrics.aggregate_mean, "Median": metrics.aggregate_median,
              "Optimality gap": metrics.aggregate_optimality_gap}  # the gap's threshold is 1, a perfect score


def intervals(score_dict: dict, func, reps: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Point estimates and 95% stratified-bootstrap intervals of ``func`` for each key: (point, lower, upper)."""
    out = {}
    for key, scores in score_dict.items():  # one seed per key, so adding an algorithm changes no other's interval
        np.random.seed(BOOTSTRAP_SEED)
        point, ci = rly.get_interval_estimates({key: scores}, func, reps=reps)
        out[key] = (np.atleast_1d(point[key]).astype(float), np.atleast_1d(ci[key][0]), np.atleast_1d(ci[key][1]))
    return out


def score_matrices(absolute: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per algorithm, a (seeds x tasks) array of final scores over the seeds complete on every task."""
    tasks = sorted(absolute.task.unique())
    matrices = {}
    for algo, group in absolute.groupby("algorithm"):
        table = group.pivot_table(index="seed", columns="task", values="value").reindex(columns=tasks).dropna()
        if len(table):
            matrices[algo] = table.to_numpy()
    return matrices


def curve_arrays(evals: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per algorithm, a (seeds x tasks x steps) array on the evaluation steps every run has."""
    tasks = sorted(evals.task.unique())
    per_run = evals.groupby(["algorithm", "task", "seed"]).step.apply(frozenset)
    steps = np.array(sorted(frozenset.intersection(*per_run))) if len(per_run) else np.array([])
    arrays = {}
    for algo, group in evals[evals.step.isin(steps)].groupby("algorithm"):
        table = group.pivot_table(index="seed", columns=["task", "step"], values="value")
        table = table.reindex(columns=pd.MultiIndex.from_product([tasks, steps])).dropna()
        if len(table):
            arrays[algo] = table.to_numpy().reshape(len(table), len(tasks), len(steps))
    return arrays, steps


def per_task_table(absolute: pd.DataFrame, reps: int) -> pd.DataFrame:
    """IQM over seeds with its interval, per task and algorithm."""
    rows = []
    for (task, algo), group in absolute.groupby(["task", "algorithm"]):
        est = intervals({algo: group.value.to_numpy()[:, None]}, lambda s: np.array([iqm(s)]), reps)
        point, lo, hi = (float(x[0]) for x in est[algo])
        rows.append(dict(task=task, algorithm=algo, statistic="IQM", seeds=len(group), point=point, lower=lo, upper=hi))
    return pd.DataFrame(rows)


def aggregate_table(matrices: dict[str, np.ndarray], reps: int) -> pd.DataFrame:
    """IQM, mean, median and optimality gap across all tasks, with intervals, per algorithm."""
    est = intervals(matrices, lambda s: np.array([fn(s) for fn in AGGREGATES.values()]), reps)
    rows = []
    for algo, (point, lo, hi) in est.items():
        for i, name in enumerate(AGGREGATES):
            rows.append(dict(task="all tasks", algorithm=algo, statistic=name, seeds=len(matrices[algo]),
                             point=point[i], lower=lo[i], upper=hi[i]))
    return pd.DataFrame(rows)


def iqm_curves(arrays: dict[str, np.ndarray], steps: np.ndarray, reps: int) -> pd.DataFrame:
    """IQM across runs and tasks at every evaluation step, with intervals (a tidy frame)."""
    est = intervals(arrays, iqm, reps)
    return pd.concat([pd.DataFrame(dict(algorithm=algo, step=steps, point=p, lower=lo, upper=hi))
                      for algo, (p, lo, hi) in est.items()], ignore_index=True)


def task_curves(evals: pd.DataFrame, reps: int) -> pd.DataFrame:
    """Per task, the IQM over seeds at every evaluation step, with intervals (a tidy frame)."""
    frames = []
    for task, group in evals.groupby("task"):
        arrays, steps = curve_arrays(group)
        frames.append(iqm_curves(arrays, steps, reps).assign(task=task))
    return pd.concat(frames, ignore_index=True)


def performance_profiles(matrices: dict[str, np.ndarray], reps: int) -> pd.DataFrame:
    """Fraction of runs scoring above tau, for tau in [0, 1], with intervals (score distributions)."""
    def profile(scores):
        return (scores.reshape(-1, 1) > TAUS).mean(axis=0)

    est = intervals(matrices, profile, reps)
    return pd.concat([pd.DataFrame(dict(algorithm=algo, tau=TAUS, point=p, lower=lo, upper=hi))
                      for algo, (p, lo, hi) in est.items()], ignore_index=True)


def improvement_table(matrices: dict[str, np.ndarray], reps: int, targets: tuple[str, ...]) -> pd.DataFrame:
    """P(target > baseline): the probability that a run of ``target`` beats one of the baseline on a
    random task (Mann-Whitney), for each target present and each other algorithm, with intervals.
    ``all_ties``: every run of both scored the same on each task, so the 0.5 says nothing but that."""
    pairs = {f"{target},{other}": (matrices[target], matrices[other])
             for target in targets if target in matrices for other in matrices if other != target}
    if not pairs:
        return pd.DataFrame(columns=["comparison", "point", "lower", "upper", "all_ties"])
    est = intervals(pairs, lambda x, y: np.array([probability_of_improvement(x, y)]), reps)
    return pd.DataFrame([dict(comparison=f"P({key.replace(',', ' > ')})", point=float(p[0]), lower=float(lo[0]),
                              upper=float(hi[0]), all_ties=all_tied(*pairs[key])) for key, (p, lo, hi) in est.items()])


def all_tied(x: np.ndarray, y: np.ndarray) -> bool:
    """Whether runs ``x`` and ``y`` (runs x tasks) all scored one value per task."""
    return all(np.unique(np.concatenate([x[:, t], y[:, t]])).size == 1 for t in range(x.shape[1]))


def coverage(frame: pd.DataFrame) -> list[str]:
    """Per algorithm, the tasks and seeds present for some algorithm of this benchmark but missing for it."""
    absolute = frame[frame.metric.str.startswith("absolute/")]
    tasks, seeds = sorted(absolute.task.unique()), sorted(absolute.seed.unique())
    lines = []
    for algo in sorted(absolute.algorithm.unique()):
        own = absolute[absolute.algorithm == algo]
        missing_tasks = [t for t in tasks if t not in set(own.task)]
        if missing_tasks:
            lines.append(f"{algo}: missing task(s) {', '.join(missing_tasks)}")
        for task in sorted(set(own.task)):
            missing = [s for s in seeds if s not in set(own[own.task == task].seed)]
            if missing:
                lines.append(f"{algo}: {task} missing seed(s) {', '.join(map(str, missing))}")
    return lines
