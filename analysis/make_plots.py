"""Regenerate every figure, table and export from run records.

    python analysis/make_plots.py [--suite NAME] [--results DIR] [--reps N] [--metric NAME] [--compare ALGO ...]

Per benchmark (a suite on one family and backend, and on StarCraft II one game build: results of different
backends or game versions are never pooled), with
the headline metric (SMAC win rate, Flatland completion) or ``--metric``'s score (SMAC return / 20,
Flatland score; each run's record names the scores of its family) and rliable's 95% stratified-bootstrap
intervals:

  figures/<stem>_curves        evaluation metric against environment steps, per task (IQM over seeds)
  figures/<stem>_iqm_curve     sample efficiency: IQM across tasks and runs at each evaluation step
  figures/<stem>_aggregates    IQM, mean, median and optimality gap across tasks, per algorithm
  figures/<stem>_profiles      performance profiles of the absolute metric
  figures/<stem>_improvement   probability that MABL (and each --compare algorithm) improves on each other one
  figures/<stem>_ablation      MABL against its single-level ablation, per task
  tables/<stem>_absolute_<metric>, tables/<stem>_improvement, tables/<stem>_ablation   (.md .tex .csv)
  tables/<stem>_curves.csv, tables/<stem>_iqm_curve.csv, marl_eval/<stem>.json (marl-eval's raw-data format)

where <stem> is <suite>_<benchmark>, <benchmark> is smac_sim, smac_sc2 or flatland, and a ``--metric`` other
than the headline appends _<metric> to the stem. Figures are
PNG and PDF. Bootstraps are seeded, so the outputs are reproducible. Exit code 1 when there is nothing to analyse.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis import figures, stats  # noqa: E402
from analysis.export import write_marl_eval, write_table  # noqa: E402
from analysis.loading import SkippedRecord, load_records  # noqa: E402
from envs.errors import UsageError, require_writable  # noqa: E402

DEFAULT_RESULTS = Path("results")  # in the working directory


def ablation_table(per_task: pd.DataFrame, improvement: pd.DataFrame, pair: tuple[str, str], seeds: int
                   ) -> pd.DataFrame:
    """Per task and across tasks: the IQM of an algorithm and of its ablation (``pair``), and the probability
    that the first improves on the second, taken from the improvement table (the same seeded bootstrap, so it
    is not computed twice)."""
    full, ablated = pair
    rows = per_task[per_task.algorithm.isin(pair)]
    across = improvement[improvement.comparison == f"P({full} > {ablated})"]
    across = across.rename(columns={"comparison": "statistic"}).assign(task="all tasks", algorithm=full, seeds=seeds)
    return pd.concat([rows, across[rows.columns]], ignore_index=True)


def caption(matrices: dict, reps: int, what: str) -> str:
    """What a figure's intervals are and how many runs and tasks it pools (written under the plot)."""
    seeds = "/".join(str(n) for n in sorted({m.shape[0] for m in matrices.values()}))
    tasks = next(iter(matrices.values())).shape[1]
    return (f"{what}. {seeds} run(s) per algorithm on each of {tasks} task(s); "
            f"bands and bars: 95% stratified-bootstrap intervals ({reps} resamples).")


def analyse(group: pd.DataFrame, stem: str, benchmark: str, title: str, metric: str, score: tuple[float, str],
            results: Path, reps: int, comparisons: dict, compare: tuple[str, ...] = ()) -> list[Path]:
    """Every output of one benchmark (``benchmark`` names the family and backend) for ``metric``, divided by
    ``score``'s divisor onto rliable's [0, 1] scale (performance profiles, optimality gap) and labelled by
    its label; ``comparisons`` are those the suite declared (its records'), ``compare`` more improvement
    targets. Returns the files written."""
    figs, tabs = results / "figures", results / "tables"
    divisor, label = score
    absolute = group[group.metric == f"absolute/{metric}"].assign(value=lambda f: f.value / divisor)
    evals = group[group.metric == f"eval/{metric}"].assign(value=lambda f: f.value / divisor)
    matrices = stats.score_matrices(absolute)
    per_task_curves = stats.task_curves(evals, reps)
    per_task_curves.to_csv(tabs / f"{stem}_curves.csv", index=False)
    written = [tabs / f"{stem}_curves.csv"] + figures.task_curves(
        per_task_curves, label, title, figs / f"{stem}_curves",
        caption(matrices, reps, f"IQM over seeds of the evaluation {label}"))
    per_task = stats.per_task_table(absolute, reps)
    aggregates = stats.aggregate_table(matrices, reps)
    written += write_table(pd.concat([per_task, aggregates], ignore_index=True), tabs / f"{stem}_absolute_{metric}")
    written += figures.interval_plot(aggregates, "algorithm", label, title, figs / f"{stem}_aggregates",
                                     caption(matrices, reps, f"Absolute {label} aggregated across tasks"))
    arrays, steps = stats.curve_arrays(evals)
    if len(steps):
        curves = stats.iqm_curves(arrays, steps, reps)
        curves.to_csv(tabs / f"{stem}_iqm_curve.csv", index=False)
        written += [tabs / f"{stem}_iqm_curve.csv"]
        written += figures.iqm_curve(curves, label, title, figs / f"{stem}_iqm_curve",
                                     caption(matrices, reps, f"IQM of the evaluation {label} across runs and tasks"))
    written += figures.profiles(stats.performance_profiles(matrices, reps), label, title, figs / f"{stem}_profiles",
                                caption(matrices, reps, f"Performance profiles of the absolute {label}"))
    pair = tuple(comparisons["ablation"])  # the ablation table reads P(algorithm > its ablation) from here
    targets = tuple(dict.fromkeys((*comparisons["improvement"], *compare, *pair[:1])))
    improvement = stats.improvement_table(matrices, reps, targets)
    if len(improvement):
        written += write_table(improvement, tabs / f"{stem}_improvement")
        written += figures.interval_plot(improvement, "comparison", "probability of improvement", title,
                                         figs / f"{stem}_improvement",
                                         caption(matrices, reps, f"Probability of improvement, absolute {label}"),
                                         limits=(0, 1))
    if pair and set(pair) <= set(matrices):
        written += write_table(ablation_table(per_task, improvement, pair, len(matrices[pair[0]])),
                               tabs / f"{stem}_ablation")
        written += figures.ablation(per_task, pair, label, f"{title}: ablation", figs / f"{stem}_ablation",
                                    caption(matrices, reps, f"IQM over seeds of the absolute {label}, per task"))
    exported = list(dict.fromkeys([metric, "return_mean"]))  # the headline first, as before --metric existed
    written.append(write_marl_eval(group, benchmark, exported, results / "marl_eval" / f"{stem}.json"))
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", help="only records of this suite")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory (default: ./results)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions (default 2000)")
    p.add_argument("--metric", help="score to analyse instead of the headline (SMAC win_rate, Flatland completion): "
                                    "SMAC return_mean, Flatland score")
    p.add_argument("--compare", nargs="+", default=[], metavar="ALGO",
                   help="also tabulate the probability that ALGO (an algorithm or a variant such as "
                        "mabl+reward_global) improves on each other algorithm; MABL's is always tabulated")
    args = p.parse_args(argv)
    if args.reps < 10:
        p.error(f"--reps must be >= 10, got {args.reps}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRecord)
        frame, report = load_records(args.results, args.suite, prefixes=("eval/", "absolute/"))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(report)
    figures.name_algorithms(report.display_names)
    recorded = sorted(p.name for p in (args.results / "runs").glob("*") if p.is_dir())
    if args.suite and args.suite not in recorded:
        print(f"no records of suite {args.suite!r} under {args.results / 'runs'}; suites recorded there: "
              f"{', '.join(recorded) or 'none'}", file=sys.stderr)
        return 1
    if frame.empty:
        where = f"suite {args.suite!r} under {args.results / 'runs'}" if args.suite else str(args.results / "runs")
        print(f"no completed runs in {where}; run a suite first, e.g. `python -m suites.run smoke`, or point "
              "--results at a results directory", file=sys.stderr)
        return 1
    known = sorted({m for benchmark in report.benchmarks.values() for m in benchmark.scores})
    if args.metric is not None and args.metric not in known:
        p.error(f"unknown --metric {args.metric!r}; valid metrics of these records: {', '.join(known)}")
    unknown = sorted(set(args.compare) - set(frame.algorithm))
    if unknown:
        p.error(f"--compare {', '.join(unknown)}: no completed runs of that name; algorithms in these records: "
                f"{', '.join(sorted(frame.algorithm.unique()))}")
    try:
        for sub in ("figures", "tables", "marl_eval"):
            require_writable(args.results / sub, "--results")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    analysed = 0
    for (suite, family, backend, game), group in frame.groupby(["suite", "family", "backend", "game"]):
        described = report.benchmarks[family, backend]
        label, metric = described.title + (f", game version {game}" if game else ""), args.metric or described.metric
        if metric not in described.scores:
            print(f"\n{label}, suite {suite}: not analysed, {metric} is not one of its scores "
                  f"(valid: {', '.join(described.scores)})")
            continue
        benchmark = family if backend == family else f"{family}_{backend}"  # smac_sim, smac_sc2, flatland
        if game:  # one benchmark per game version: smac_sc2_4_10_0_75689
            benchmark += "_" + game.replace(".", "_")
        stem = f"{suite}_{benchmark}" + ("" if metric == described.metric else f"_{metric}")
        written = analyse(group, stem, benchmark, f"{label}: {suite}", metric, described.scores[metric], args.results,
                          args.reps, report.comparisons[suite], tuple(args.compare))
        analysed += 1
        print(f"\n{label}, suite {suite}: {group.groupby(['task', 'algorithm', 'seed']).ngroups} run(s), "
              f"{len(written)} file(s) under {args.results}")
        for line in stats.coverage(group):
            print(f"  incomplete: {line}")
        for path in written:
            print(f"  {path.relative_to(args.results)}")
    return 0 if analysed else 1


if __name__ == "__main__":
    sys.exit(main())
