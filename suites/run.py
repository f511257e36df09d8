"""``python -m suites.run SUITE [options]``: run a suite, resuming where it stopped.

Exit codes: 0 every run completed (runs another process is training are waited for, not trained twice),
1 some run failed or was left unfinished (the others still ran), 2 bad usage.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import torch

import envs
from envs.errors import UsageError, require_writable
from suites.launching import launchers, progress
from suites.launching.records import DONE, run_status
from suites.planning import suite_file
from suites.planning.definitions import SUITES, Suite, get_suite
from suites.planning.options import RunOptions
from suites.planning.plan import check_records_match, plan, seed_groups
from suites.planning.spec import RunSpec


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """The error and where to read more, not the whole usage block above it."""
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists every option)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m suites.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", help=f"one of: {', '.join(sorted(SUITES))}; or a suite file, path/to/suite.toml "
                                 "(suites/examples/ has one)")
    RunOptions.add_arguments(p)
    return p


def read_command(argv: list[str]) -> tuple[Suite, RunOptions]:
    """The suite a command names and its options: defaults <- the suite file's <- the command line's.
    UsageError for an unknown suite or a bad file; argparse exits (2) on a bad option."""
    given = vars(parser().parse_args(argv))
    name = given.pop("suite")
    suite, from_file = suite_file.load(Path(name)) if suite_file.is_suite_file(name) else (get_suite(name), {})
    return suite, RunOptions.merged(from_file, given)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def launch(runs: list[RunSpec], options: RunOptions) -> list:
    """Run ``runs`` in groups of ``--seed-batch`` seeds with the chosen launcher; outcomes in group order."""
    groups = seed_groups(runs, options.seed_batch)
    gpus = options.gpus_per_run if options.gpus_per_run is not None else float(options.device.startswith("cuda"))
    cpus = options.cpus_per_run if options.cpus_per_run is not None else 1.0
    requeues = 3 if options.requeues is None else options.requeues
    if options.launcher == "ray":
        return launchers.run_ray(groups, options.results, options.address, gpus, cpus, requeues)
    if options.launcher == "submitit":
        parameters = {"timeout_min": options.time or 1440, "gpus_per_node": int(gpus), "cpus_per_task": max(1, int(cpus)),
                      "slurm_partition": options.partition, "slurm_array_parallelism": options.array_parallelism}
        return launchers.run_submitit(groups, options.results, options.cluster,
                                      {k: v for k, v in parameters.items() if v is not None}, requeues)
    if options.jobs == 1:
        return launchers.run_sequential(groups, options.results)
    return launchers.run_parallel(groups, options.results, options.jobs, torch.cuda.device_count())


def main(argv: list[str] | None = None) -> int:
    from algorithms.cuda_graphs import prefer_expandable_segments

    prefer_expandable_segments()  # before any CUDA allocation; launched workers inherit it
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops a driver as Ctrl-C does: its
        signal.signal(signal.SIGTERM, _interrupt)                # launcher passes the stop on to its workers
    argv = sys.argv[1:] if argv is None else argv
    try:
        suite, options = read_command(argv)
        runs = plan(suite, options)
        results = options.results
        check_records_match(runs, results)
        if not (options.dry_run or options.status):
            require_writable(results, "--results")
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if options.status:
        print(progress.status_table([(s.run_id, results / "runs" / s.run_id, s.steps) for s in runs]))
        return 0
    statuses = {s.run_id: run_status(results / "runs" / s.run_id) for s in runs}
    if options.dry_run:
        for group in seed_groups(runs, options.seed_batch):
            if len(group) > 1:
                print(f"group of {len(group)} seeds in one process: {launchers.group_label(group)}")
            for s in group:
                print(f"{'  ' if len(group) > 1 else ''}{statuses[s.run_id]:8s} {s.run_id}  ({s.steps} steps, "
                      f"preset {s.preset})")
        return 0
    for task in {envs.family_of(s.task).name: s.task for s in runs}.values():
        envs.resolve_backend(task, options.backend)  # a family's notice about its backend choice, once

    todo = [s for s in runs if statuses[s.run_id] != DONE]
    try:
        outcomes = {o.run_id: (o.status, o.detail) for o in launch(todo, options)} if todo else {}
        held = [s for s in todo if outcomes[s.run_id][0] == launchers.HELD]
        if held:  # attach: report them when the process training them has finished them
            print(f"\nwaiting for {len(held)} run(s) another process is training (Ctrl-C stops waiting; they go "
                  "on there)", flush=True)
            outcomes.update({o.run_id: (o.status, o.detail) for o in launchers.attach(held, results)})
    except KeyboardInterrupt as err:
        where = f" ({err})" if str(err) else ""
        print(f"\ninterrupted{where}: rerun the same command to resume from the last checkpoint", file=sys.stderr)
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
    unfinished = [r for r, st, _ in summary if st == "UNFINISHED"]
    if unfinished:
        print(f"\n{len(unfinished)} run(s) stopped unfinished (interrupted, or in another process): rerun to resume "
              "them", file=sys.stderr)
    if failed or unfinished:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
