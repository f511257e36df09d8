"""A suite command's plan: the runs it expands to, every name and value checked before anything runs."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import torch

import envs
from algorithms import check_algorithm
from envs.errors import UsageError
from suites.launching.launchers import CLUSTERS, LAUNCHERS, RAY_HINT, SUBMITIT_HINT
from suites.launching.metrics import WANDB_HINT
from suites.launching.records import recorded_settings
from suites.planning.assignments import parse_sweep
from suites.planning.definitions import Suite
from suites.planning.options import RunOptions
from suites.planning.spec import RunSpec


def plan(suite: Suite, options: RunOptions) -> list[RunSpec]:
    """The suite's runs under ``options`` (its filters, budget and settings); raises UsageError on bad names or
    values. Callable from Python: ``plan(get_suite("smoke"), RunOptions(seeds=2, device="cuda"))``."""
    tasks = options.tasks or suite.tasks
    for t in tasks:
        envs.check_task(t)
    algos = options.algorithms or suite.algorithms
    for a in (*algos, *suite.improvement, *suite.ablation):  # a comparison may name a variant: mabl+NAME
        check_algorithm(a.partition("+")[0])
    budget = options.budget or suite.default_budget
    if budget not in suite.budgets:
        raise UsageError(f"unknown budget {budget!r} for suite {suite.name}; "
                         f"valid budgets: {', '.join(suite.budgets)}")
    steps, interval = suite.budgets[budget]
    steps = options.steps or steps
    grids = parse_sweep(list(options.assignments), list(algos))
    check_device(options.device)
    check_launcher(options)
    check_wandb(options.wandb)
    env_specs = {t: envs.env_spec(t, options.backend) for t in tasks}  # each task's family and backend, resolved once
    for points in grids.values():  # each point's variant names run directories
        for point, _ in points:
            check_variant(variant_name(options.variant, point), f"the sweep point {point!r}" if point else "--variant")
    return [RunSpec(suite=suite.name, task=t, algorithm=a, preset=options.preset or suite.preset_for(a), seed=k,
                    steps=steps, eval_interval=min(interval, steps),
                    eval_episodes=options.eval_episodes or suite.eval_episodes, device=options.device,
                    backend=env_specs[t].backend, env_spec=env_specs[t], compile_env=options.compile_env,
                    overrides=tuple(sorted(overrides.items())), variant=variant_name(options.variant, point),
                    wandb=options.wandb, threads=options.threads or 0, improvement=suite.improvement,
                    ablation=suite.ablation)
            for t in tasks for a in algos for point, overrides in grids[a] for k in range(options.seeds or suite.seeds)]


def variant_name(prefix: str, point: str) -> str:
    """A sweep point's variant: ``--variant`` as a prefix to the point's ``FIELD-VALUE`` name."""
    return "_".join(part for part in (prefix, point) if part)


def check_variant(name: str, source: str = "--variant") -> None:
    if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
        raise UsageError(f"invalid variant name {name!r} (from {source}): it names run directories, so use up to 100 "
                         "letters, digits, '_', '.' or '-', starting with a letter or digit")


def check_wandb(project: str) -> None:
    if project and importlib.util.find_spec("wandb") is None:
        raise UsageError(WANDB_HINT)


def check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"invalid --device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA requested but not available: install a CUDA build of torch==2.13.0 on a GPU "
                         "machine, or use --device cpu.")


def check_launcher(options: RunOptions) -> None:
    if options.launcher not in LAUNCHERS:
        raise UsageError(f"unknown launcher {options.launcher!r}; valid launchers: {', '.join(LAUNCHERS)}")
    if options.launcher != "ray" and options.address:
        raise UsageError("--address needs --launcher ray")
    if options.launcher == "local" and (options.gpus_per_run is not None or options.cpus_per_run is not None):
        raise UsageError("--gpus-per-run and --cpus-per-run need --launcher ray or submitit")
    slurm = {"--partition": options.partition, "--time": options.time, "--array-parallelism": options.array_parallelism}
    if options.launcher != "submitit" and (options.cluster or any(v is not None for v in slurm.values())):
        raise UsageError("--cluster, --partition, --time and --array-parallelism need --launcher submitit")
    if options.launcher == "local" and options.requeues is not None:
        raise UsageError("--requeues needs --launcher submitit or ray")
    if options.launcher == "submitit":
        if options.cluster not in CLUSTERS:
            raise UsageError(f"--launcher submitit needs --cluster, one of: {', '.join(CLUSTERS)}"
                             + (f" (got {options.cluster!r})" if options.cluster else ""))
        ignored = [flag for flag, value in slurm.items() if value is not None and flag != "--time"]
        if options.cluster == "local" and ignored:
            raise UsageError(f"{', '.join(ignored)} {'applies' if len(ignored) == 1 else 'apply'} only to --cluster slurm")
    for flag, value in (("--gpus-per-run", options.gpus_per_run), ("--cpus-per-run", options.cpus_per_run)):
        if value is not None and not 0 <= value:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    if options.launcher == "submitit" and options.gpus_per_run is not None and options.gpus_per_run != int(options.gpus_per_run):
        raise UsageError(f"--gpus-per-run with submitit is a whole number of GPUs, got {options.gpus_per_run}")
    hints = {"ray": RAY_HINT, "submitit": SUBMITIT_HINT}
    if options.launcher in hints and not options.dry_run and importlib.util.find_spec(options.launcher) is None:
        raise UsageError(hints[options.launcher])


def check_records_match(runs: list[RunSpec], results: Path) -> None:
    """Every run's config can be built (preset names and fit are checked before anything runs, once per task
    and algorithm), and a run already on disk was started with the same preset and config: resuming or
    skipping it under other settings would put two configurations in one record."""
    configs = {}  # one per task, algorithm, preset and overrides: every sweep point has its own
    for run_spec in runs:
        settings = (run_spec.task, run_spec.algorithm, run_spec.preset, run_spec.overrides)
        if settings not in configs:
            configs[settings] = run_spec.algorithm_config()
    for run_spec in runs:
        run_dir = results / "runs" / run_spec.run_id
        recorded = recorded_settings(run_dir)
        if recorded is None:
            continue
        config = configs[run_spec.task, run_spec.algorithm, run_spec.preset, run_spec.overrides]
        now = json.loads(json.dumps({"preset": run_spec.preset, **config.asdict()}))
        changed = [f"{k} {recorded[k]!r} recorded, {v!r} now" for k, v in now.items() if recorded.get(k, v) != v]
        if changed:
            more = f"; and {len(changed) - 4} more" if len(changed) > 4 else ""
            raise UsageError(f"{run_dir} was recorded with other settings ({'; '.join(changed[:4])}{more}); name "
                             "these settings with --variant NAME (recorded beside it), use another --results "
                             "directory, or delete that record to start it again")


def seed_groups(runs: list[RunSpec], seed_batch: int) -> list[tuple[RunSpec, ...]]:
    """``runs`` in groups of at most ``seed_batch`` seed members: runs that differ only in their seed, in seed
    order (a group is one process and one launcher job; ``suites/training/loop.py``)."""
    by_settings: dict[RunSpec, list[RunSpec]] = {}
    for run_spec in runs:
        by_settings.setdefault(dataclasses.replace(run_spec, seed=0), []).append(run_spec)
    return [tuple(members[i:i + seed_batch])
            for members in (sorted(m, key=lambda s: s.seed) for m in by_settings.values())
            for i in range(0, len(members), seed_batch)]
