"""``python -m suites.run SUITE [options]``: run a suite, resuming where it stopped.

Exit codes: 0 every run completed, 1 some run failed (the others still ran), 2 bad usage.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envs.errors import UsageError
from suites.definitions import SUITES, get_suite
from suites.records import DONE, recorded_settings, run_status
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
    p.add_argument("--seeds", type=_positive("--seeds"), help="number of seeds 0..N-1 (default: the suite's)")
    p.add_argument("--algorithms", nargs="+", help="subset of the suite's algorithms")
    p.add_argument("--tasks", nargs="+", help="subset of the suite's tasks, e.g. smac/3m")
    p.add_argument("--budget", help="named budget of the suite (tiny, short, paper)")
    p.add_argument("--steps", type=_positive("--steps"), help="environment steps per run (overrides the budget)")
    p.add_argument("--eval-episodes", type=_positive("--eval-episodes"), help="episodes per evaluation")
    p.add_argument("--preset", help="algorithm preset (default: the suite's)")
    p.add_argument("--set", action="append", default=[], dest="assignments", metavar="[ALGORITHM.]FIELD=VALUE",
                   help="override one field of the algorithm config (repeatable), e.g. --set model_lr=1e-4 or "
                        "--set mappo.ppo_epoch=10; an unscoped field applies to every selected algorithm that has "
                        "it. Each run's config.json records the values used")
    p.add_argument("--variant", default="", metavar="NAME",
                   help="name these runs as a variant of each algorithm (with --set or --preset): records under "
                        "<algorithm>+NAME beside the algorithm's own, analysed as an algorithm of their own")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--backend", default="auto", help="auto, or a family's backend (SMAC: sim or sc2); a backend of another "
                                                     "family leaves a task on its own family's choice")
    p.add_argument("--compile-env", action="store_true",
                   help="torch.compile the SMAC simulator's step: 2.5-8x faster stepping after 20-30 s of compiling "
                        "per run; worth it from about 100k steps")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory")
    p.add_argument("--jobs", type=_positive("--jobs"), default=1,
                   help="local launcher: runs in parallel, each in its own process (default 1: in this process)")
    p.add_argument("--launcher", default="local", help="local or ray")
    p.add_argument("--address", help="ray: address of a running cluster (default: start a local instance)")
    p.add_argument("--gpus-per-run", type=float, help="ray: GPU fraction per run (default 1 on cuda, else 0)")
    p.add_argument("--wandb", nargs="?", const="marl-wm-bench", default="", metavar="PROJECT",
                   help="also log every run to Weights & Biases (project default marl-wm-bench); offline into each "
                        "run's directory when there are no credentials. Needs pip install -e '.[wandb]'")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their status, run nothing")
    return p


def expand(args) -> list[RunSpec]:
    """The suite's runs after the command-line filters; raises UsageError on bad names or values."""
    import envs
    from algorithms import check_algorithm, parse_assignments

    suite = get_suite(args.suite)
    tasks = args.tasks or list(suite.tasks)
    for t in tasks:
        envs.check_task(t)
    algos = args.algorithms or list(suite.algorithms)
    for a in algos:
        check_algorithm(a)
    budget = args.budget or suite.default_budget
    if budget not in suite.budgets:
        raise UsageError(f"unknown budget {budget!r} for suite {suite.name}; "
                              f"valid budgets: {', '.join(suite.budgets)}")
    steps, interval = suite.budgets[budget]
    steps = args.steps or steps
    overrides = parse_assignments(args.assignments, algos)
    _check_variant(args.variant)
    _check_device(args.device)
    _check_launcher(args)
    _check_wandb(args.wandb)
    env_specs = {t: envs.env_spec(t, args.backend) for t in tasks}  # each task's family and backend, resolved once
    return [RunSpec(suite=suite.name, task=t, algorithm=a, preset=args.preset or suite.preset_for(a), seed=k, steps=steps,
                    eval_interval=min(interval, steps), eval_episodes=args.eval_episodes or suite.eval_episodes,
                    device=args.device, backend=env_specs[t].backend, env_spec=env_specs[t],
                    compile_env=args.compile_env, overrides=tuple(sorted(overrides[a].items())), variant=args.variant,
                    wandb=args.wandb)
            for t in tasks for a in algos for k in range(args.seeds or suite.seeds)]


def _check_variant(name: str) -> None:
    import re

    if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}", name):
        raise UsageError(f"invalid --variant {name!r}: it names run directories, so use up to 40 letters, digits, "
                         "'_', '.' or '-', starting with a letter or digit")


def _check_wandb(project: str) -> None:
    import importlib.util

    from suites.experiment import WANDB_HINT

    if project and importlib.util.find_spec("wandb") is None:
        raise UsageError(WANDB_HINT)


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"invalid --device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA requested but not available: install a CUDA build of torch==2.13.0 on a GPU "
                         "machine, or use --device cpu.")


def _check_launcher(args) -> None:
    from suites.launchers import LAUNCHERS, RAY_HINT

    if args.launcher not in LAUNCHERS:
        raise UsageError(f"unknown launcher {args.launcher!r}; valid launchers: {', '.join(LAUNCHERS)}")
    if args.launcher != "ray" and (args.address or args.gpus_per_run is not None):
        raise UsageError("--address and --gpus-per-run need --launcher ray")
    if args.gpus_per_run is not None and not 0 <= args.gpus_per_run:
        raise UsageError(f"--gpus-per-run must be >= 0, got {args.gpus_per_run}")
    if args.launcher == "ray" and not args.dry_run:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UsageError(RAY_HINT)


def _check_records_match(runs: list[RunSpec], configs: dict, results: Path) -> None:
    """A run already on disk must have been started with the same preset and config: resuming or skipping
    it under other settings would put two configurations in one record."""
    import json

    for spec in runs:
        run_dir = results / "runs" / spec.run_id
        recorded = recorded_settings(run_dir)
        if recorded is None:
            continue
        now = json.loads(json.dumps({"preset": spec.preset, **configs[spec.task, spec.algorithm].asdict()}))
        changed = [f"{k} {recorded[k]!r} recorded, {v!r} now" for k, v in now.items() if recorded.get(k, v) != v]
        if changed:
            more = f"; and {len(changed) - 4} more" if len(changed) > 4 else ""
            raise UsageError(f"{run_dir} was recorded with other settings ({'; '.join(changed[:4])}{more}); name "
                             "these settings with --variant NAME (recorded beside it), use another --results "
                             "directory, or delete that record to start it again")


def launch(runs: list[RunSpec], args) -> list:
    """Run ``runs`` with the chosen launcher; outcomes in the same order."""
    from suites import launchers

    if args.launcher == "ray":
        gpus = args.gpus_per_run if args.gpus_per_run is not None else float(args.device.startswith("cuda"))
        return launchers.run_ray(runs, args.results, args.address, gpus)
    if args.jobs == 1:
        return launchers.run_sequential(runs, args.results)
    import torch

    return launchers.run_parallel(runs, args.results, args.jobs, torch.cuda.device_count())


def main(argv: list[str] | None = None) -> int:
    from algorithms.cuda_graphs import prefer_expandable_segments
    from suites.runner import resolve_config

    prefer_expandable_segments()  # before any CUDA allocation; launched workers inherit it
    args = parser().parse_args(argv)
    try:
        runs = expand(args)
        configs = {}
        for spec in runs:  # preset names and fit are checked before anything runs, once per task and algorithm
            if (spec.task, spec.algorithm) not in configs:
                configs[spec.task, spec.algorithm] = resolve_config(spec)[0]
        results = args.results
        _check_records_match(runs, configs, results)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    statuses = {s.run_id: run_status(results / "runs" / s.run_id) for s in runs}
    if args.dry_run:
        for s in runs:
            print(f"{statuses[s.run_id]:8s} {s.run_id}  ({s.steps} steps, preset {s.preset})")
        return 0
    import envs

    for task in {envs.family_of(s.task).name: s.task for s in runs}.values():
        envs.resolve_backend(task, args.backend)  # a family's notice about its backend choice, once

    todo = [s for s in runs if statuses[s.run_id] != DONE]
    try:
        outcomes = {o.run_id: (o.status, o.detail) for o in launch(todo, args)} if todo else {}
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    summary = [(s.run_id, *outcomes[s.run_id]) if s.run_id in outcomes else (s.run_id, "done (skipped)", "")
               for s in runs]
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
