"""``python -m suites.run SUITE [options]``: run a suite, resuming where it stopped.

Exit codes: 0 every run completed, 1 some run failed (the others still ran), 2 bad usage.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import envs
from envs.errors import UsageError, require_writable
from suites import launchers
from suites.definitions import SUITES
from suites.plan import check_records_match, expand, seed_groups
from suites.records import DONE, run_status
from suites.spec import RunSpec
from suites.suite_file import is_suite_file, option_arguments

DEFAULT_RESULTS = Path("results")  # in the working directory
DEFAULT_SEED_BATCH = 1  # seeds per process unless --seed-batch says otherwise (docs/performance.md)


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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """The error and where to read more, not the whole usage block above it."""
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists every option)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m suites.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", help=f"one of: {', '.join(sorted(SUITES))}; or a suite file, path/to/suite.toml "
                                 "(suites/examples/ has one)")
    p.add_argument("--seeds", type=_positive("--seeds"), help="number of seeds 0..N-1 (default: the suite's)")
    p.add_argument("--algorithms", nargs="+", help="subset of the suite's algorithms")
    p.add_argument("--tasks", nargs="+", help="tasks to run instead of the suite's: any registered task, e.g. smac/3m")
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
                   help="torch.compile the SMAC simulator's step: several times faster stepping after tens of "
                        "seconds of compiling per run; worth it from about 100k steps (docs/performance.md)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results directory (default: ./results)")
    p.add_argument("--seed-batch", type=_positive("--seed-batch"), metavar="K",
                   help="train up to K seeds of the same task, algorithm and settings in one process as one batch "
                        "of environments, each seed still a run of its own (record, checkpoint, evaluation); "
                        f"default {DEFAULT_SEED_BATCH} (docs/running-suites.md)")
    p.add_argument("--threads", type=_positive("--threads"), metavar="N",
                   help="torch CPU threads per run process (default: OMP_NUM_THREADS if set, else 1, which measured "
                        "fastest at the CPU presets and holds up beside other jobs; docs/performance.md)")
    p.add_argument("--jobs", type=_positive("--jobs"), default=1,
                   help="local launcher: runs in parallel, each in its own process (default 1: in this process)")
    p.add_argument("--launcher", default="local", help="local (default), ray or submitit")
    p.add_argument("--address", help="ray: address of a running cluster (default: start a local instance on the "
                                     "loopback interface)")
    p.add_argument("--gpus-per-run", type=float, help="ray: GPU fraction per run; submitit: GPUs per job (default 1 on "
                                                      "cuda, else 0)")
    p.add_argument("--cpus-per-run", type=float, help="ray and submitit: CPUs per run (default 1)")
    p.add_argument("--cluster", help="submitit: slurm, or local (the same jobs as processes on this machine)")
    p.add_argument("--partition", help="submitit on slurm: the partition to submit to")
    p.add_argument("--time", type=_positive("--time"), help="submitit: time limit per run in minutes (default 1440)")
    p.add_argument("--array-parallelism", type=_positive("--array-parallelism"),
                   help="submitit on slurm: at most this many runs at once (default: SLURM's)")
    p.add_argument("--wandb", nargs="?", const="marl-wm-bench", default="", metavar="PROJECT",
                   help="also log every run to Weights & Biases (project default marl-wm-bench); offline into each "
                        "run's directory when there are no credentials. Needs pip install -e '.[wandb]'")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their status, run nothing")
    return p


def launch(runs: list[RunSpec], args) -> list:
    """Run ``runs`` in groups of ``--seed-batch`` seeds with the chosen launcher; outcomes in group order."""
    groups = seed_groups(runs, args.seed_batch or DEFAULT_SEED_BATCH)
    gpus = args.gpus_per_run if args.gpus_per_run is not None else float(args.device.startswith("cuda"))
    cpus = args.cpus_per_run if args.cpus_per_run is not None else 1.0
    if args.launcher == "ray":
        return launchers.run_ray(groups, args.results, args.address, gpus, cpus)
    if args.launcher == "submitit":
        parameters = {"timeout_min": args.time or 1440, "gpus_per_node": int(gpus), "cpus_per_task": max(1, int(cpus)),
                      "slurm_partition": args.partition, "slurm_array_parallelism": args.array_parallelism}
        return launchers.run_submitit(groups, args.results, args.cluster,
                                      {k: v for k, v in parameters.items() if v is not None})
    if args.jobs == 1:
        return launchers.run_sequential(groups, args.results)
    return launchers.run_parallel(groups, args.results, args.jobs, torch.cuda.device_count())


def main(argv: list[str] | None = None) -> int:
    from algorithms.cuda_graphs import prefer_expandable_segments

    prefer_expandable_segments()  # before any CUDA allocation; launched workers inherit it
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    try:
        if is_suite_file(args.suite):  # the file's options first, so that the command line overrides them
            # after the positional, so that an option with an optional value (--wandb) never takes the file's path
            rest = list(argv)
            rest.remove(args.suite)
            args = parser().parse_args([args.suite, *option_arguments(Path(args.suite), argv), *rest])
        runs = expand(args)
        results = args.results
        check_records_match(runs, results)
        if not args.dry_run:
            require_writable(results, "--results")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    statuses = {s.run_id: run_status(results / "runs" / s.run_id) for s in runs}
    if args.dry_run:
        for group in seed_groups(runs, args.seed_batch or DEFAULT_SEED_BATCH):
            if len(group) > 1:
                print(f"group of {len(group)} seeds in one process: {launchers.group_label(group)}")
            for s in group:
                print(f"{'  ' if len(group) > 1 else ''}{statuses[s.run_id]:8s} {s.run_id}  ({s.steps} steps, "
                      f"preset {s.preset})")
        return 0
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
