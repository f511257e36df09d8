"""``python -m suites.run SUITE [options]``: run a suite, resuming where it stopped.

Exit codes: 0 every run completed, 1 some run failed (the others still ran), 2 bad usage.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suites.definitions import SUITES, get_suite
from suites.records import DONE, run_status
from suites.runner import RunSpec

DEFAULT_RESULTS = Path(__file__).resolve().parent.parent / "results"


def _positive(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m suites.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", help=f"one of: {', '.join(sorted(SUITES))}")
    p.add_argument("--seeds", type=_positive("--seeds"), default=1, help="number of seeds (0..N-1)")
    p.add_argument("--algorithms", nargs="+", help="subset of the suite's algorithms")
    p.add_argument("--tasks", nargs="+", help="subset of the suite's tasks, e.g. smac/3m")
    p.add_argument("--budget", help="named budget of the suite (tiny, short, paper)")
    p.add_argument("--steps", type=_positive("--steps"), help="environment steps per run (overrides the budget)")
    p.add_argument("--eval-episodes", type=_positive("--eval-episodes"), help="episodes per evaluation")
    p.add_argument("--preset", help="algorithm preset (default: the suite's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--backend", default="auto", help="SMAC backend: auto, sim or sc2")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their status, run nothing")
    return p


def expand(args) -> list[RunSpec]:
    """The suite's runs after the command-line filters; raises UsageError on bad names or values."""
    import envs
    from algorithms import check_algorithm

    suite = get_suite(args.suite)
    tasks = args.tasks or list(suite.tasks)
    for t in tasks:
        envs.check_task(t)
    algos = args.algorithms or list(suite.algorithms)
    for a in algos:
        check_algorithm(a)
    budget = args.budget or suite.default_budget
    if budget not in suite.budgets:
        raise envs.UsageError(f"unknown budget {budget!r} for suite {suite.name}; "
                              f"valid budgets: {', '.join(suite.budgets)}")
    steps, interval = suite.budgets[budget]
    steps = args.steps or steps
    envs.resolve_backend(tasks[0], args.backend, quiet=True)  # validates the name, fails early if missing
    _check_device(args.device)
    return [RunSpec(suite=suite.name, task=t, algorithm=a, preset=args.preset or suite.preset, seed=k, steps=steps,
                    eval_interval=min(interval, steps), eval_episodes=args.eval_episodes or suite.eval_episodes,
                    device=args.device, backend=args.backend)
            for t in tasks for a in algos for k in range(args.seeds)]


def _check_device(device: str) -> None:
    import torch

    from envs import UsageError

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"invalid --device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA requested but not available: install a CUDA build of torch==2.13.0 on a GPU "
                         "machine, or use --device cpu.")


def main(argv: list[str] | None = None) -> int:
    from envs import UsageError
    from suites.runner import resolve_config

    args = parser().parse_args(argv)
    try:
        runs = expand(args)
        checked = set()
        for spec in runs:  # preset names and fit are checked before anything runs, once per task and algorithm
            if (spec.task, spec.algorithm) not in checked:
                resolve_config(spec)
                checked.add((spec.task, spec.algorithm))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = args.results
    statuses = {s.run_id: run_status(results / "runs" / s.run_id) for s in runs}
    if args.dry_run:
        for s in runs:
            print(f"{statuses[s.run_id]:8s} {s.run_id}  ({s.steps} steps, preset {s.preset})")
        return 0
    if args.backend == "auto":
        import envs
        envs.resolve_backend(runs[0].task, "auto")  # prints the one-line notice once

    from tqdm import tqdm

    from suites.experiment import execute

    summary = []
    for spec in runs:
        if statuses[spec.run_id] == DONE:
            summary.append((spec.run_id, "done (skipped)", ""))
            continue
        bar = tqdm(total=spec.steps, desc=spec.run_id, unit="step", dynamic_ncols=True, leave=True)
        try:
            result = execute(spec, results, progress=bar)
            absolute = result["absolute"]
            summary.append((spec.run_id, "COMPLETED", ", ".join(f"{k}={v:.3f}" for k, v in absolute.items())))
        except KeyboardInterrupt:
            bar.close()
            print("\ninterrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
            return 130
        except Exception as err:  # one failing run never stops the others
            summary.append((spec.run_id, "FAILED", f"{type(err).__name__}: {err}"))
        finally:
            bar.close()
    width = max(len(r) for r, _, _ in summary)
    print("\nrun".ljust(width + 1), "status           absolute metric / reason")
    for run_id, status, detail in summary:
        print(run_id.ljust(width), f"{status:16s}", detail)
    failed = [r for r, st, _ in summary if st == "FAILED"]
    if failed:
        print(f"\n{len(failed)} run(s) failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
