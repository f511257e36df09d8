"""K seed members in one process against the same K runs one after the other, on one device, same steps.

    python -m suites.checks.seed_batch_benchmark --task smac/3s5z_vs_3s6z --algorithm mamba --preset small --members 1 2 5

Prints a markdown table (docs/performance.md keeps the measured ones): wall time of the K solo runs and of
the group, and their phases summed over the runs from the records' ``time/*_seconds`` (acting plus the
environment step, and observing plus learning). Evaluation is kept to the first and last step with few
episodes, so the figures are about training.

The world models learn after each finished episode, so a run's learner calls depend on its episodes' lengths.
On a CPU a world-model member computes its solo run's numbers, so both sides make the same calls; where a
member matches its solo run only to float rounding (on a GPU), a last-bit difference that flips an action
sends it down other episodes, with more or fewer calls in the same steps. The table therefore also gives the
learner calls both sides made, and the learning speed-up per call.

A whole run's wall time on a shared or virtual machine varies by up to a third between repeats of the same
computation. ``--repeats N`` times each side N times, alternating (solo runs, group, solo runs, group, ...),
so that both meet the same spells of a busy machine, and reports each side's fastest repeat (and its
phases) beside the slowest; a CPU member and its solo run compute the same numbers every repeat, so the
repeats differ in time only.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from suites.launching import threads
from suites.launching.experiment import execute, execute_group
from suites.planning.spec import RunSpec


def phases(results: Path, specs: list[RunSpec]) -> dict[str, float]:
    """Seconds spent acting + stepping, and learning, and the learner calls made (world models; 0 for
    algorithms that do not count them), summed over ``specs``' records."""
    total = {"act+env": 0.0, "learn": 0.0, "calls": 0.0}
    for spec in specs:
        run_dir = results / "runs" / spec.run_id
        last = max(int(p.name) for p in run_dir.iterdir() if p.name.isdigit())
        metrics = json.loads((run_dir / str(last) / "metrics.json").read_text())
        final = {name: series["values"][-1] for name, series in metrics.items()}
        total["act+env"] += final["time/act_seconds"] + final["time/env_seconds"]
        total["learn"] += final["time/learn_seconds"]
        total["calls"] += final.get("train/learner_calls", 0.0)
    return total


def per_call(solo: dict[str, float], group: dict[str, float]) -> str:
    """The learner calls of both sides and the speed-up of learning per call, or "-" where none are counted."""
    if not solo["calls"] or not group["calls"]:
        return "- | -"
    speed_up = (solo["learn"] / solo["calls"]) / (group["learn"] / group["calls"])
    return f"{solo['calls']:.0f} / {group['calls']:.0f} | {speed_up:.2f}x"


def solo_runs(specs: list[RunSpec], results: Path) -> None:
    for spec in specs:
        execute(spec, results)


def timed_side(work, specs: list[RunSpec]) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``work(specs, results)`` and the phases its records give, in a results folder of its own."""
    with tempfile.TemporaryDirectory() as results:
        started = time.perf_counter()
        work(specs, Path(results))
        seconds = time.perf_counter() - started
        return seconds, phases(Path(results), specs)


def fastest_of(repeats: list[tuple[float, dict[str, float]]]) -> tuple[float, dict[str, float], float]:
    """The fastest repeat's seconds and phases, and the slowest repeat's seconds."""
    seconds, measured = min(repeats, key=lambda repeat: repeat[0])
    return seconds, measured, max(repeat[0] for repeat in repeats)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="smac/3m")
    p.add_argument("--algorithm", default="mappo")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=2048, help="environment steps per run")
    p.add_argument("--members", type=int, nargs="+", default=[1, 2, 5], help="group sizes K to measure")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile-env", action="store_true")
    p.add_argument("--repeats", type=int, default=1,
                   help="times each side, alternating; the table gives each side's fastest (and slowest)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")

    print(f"{args.algorithm} `{args.preset}` on {args.task}, {args.steps} steps per run, device {args.device}, "
          f"torch {torch.__version__}, {threads.choose()} thread(s) per run (suites/launching/threads.py), "
          f"fastest of {args.repeats} repeat(s) of each side\n")
    print("| K | K solo runs (s) | group (s) | speed-up | slowest repeat solo / group (s) | act+env solo / group (s) "
          "| learn solo / group (s) | learner calls solo / group | learning speed-up per call |")
    print("|---|---|---|---|---|---|---|---|---|")
    def runs(k: int, steps: int) -> list[RunSpec]:
        return [RunSpec(suite="bench", task=args.task, algorithm=args.algorithm, preset=args.preset, seed=seed,
                        steps=steps, eval_interval=steps, eval_episodes=2, device=args.device, backend="auto",
                        compile_env=args.compile_env) for seed in range(k)]

    with tempfile.TemporaryDirectory() as warm_up:  # imports, first allocations and compilations are not timed
        execute_group(runs(2, 256), Path(warm_up))
    for k in args.members:
        specs = runs(k, args.steps)
        solo_repeats, group_repeats = [], []
        for _ in range(args.repeats):
            solo_repeats.append(timed_side(solo_runs, specs))
            group_repeats.append(timed_side(execute_group, specs))
        (solo, a, solo_slowest), (group, b, group_slowest) = fastest_of(solo_repeats), fastest_of(group_repeats)
        print(f"| {k} | {solo:.1f} | {group:.1f} | {solo / group:.2f}x | {solo_slowest:.1f} / {group_slowest:.1f} "
              f"| {a['act+env']:.1f} / {b['act+env']:.1f} | {a['learn']:.1f} / {b['learn']:.1f} | {per_call(a, b)} |",
              flush=True)


if __name__ == "__main__":
    main()
