"""Flatland batching overhead: our batched env (1 and 2 workers) against raw flatland-rl on the same episodes.

    python -m suites.checks.flatland_throughput [--tasks 5_agents 10_agents] [--envs 8] [--steps 200] [--repeats 3]

"Raw" replays, in one process, the exact flatland actions our environment sent (recorded in a first
pass) on ``RailEnv``s with the same seeds and flatland's own ``TreeObsForRailEnv`` of the same depth
building every train's observation, stepping the environments in turn as a batch does: the same
trajectories. W workers are compared with raw replay split over W processes running at once (W busy
cores): overhead ``1 - ours / raw``; the target is at most 10%. Our environment builds the same trees
with ``envs.flatland.tree.TreeObservation``; "raw, our tree" replays with that builder instead, so its
difference to ours is the wrapper alone (decision points, encoding, rewards, deadlock checks, worker
IPC, tensors; episodes built ahead work the other way).
Every measurement runs in a fresh interpreter so that none inherits another's heap.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import numpy as np
import torch
from flatland.envs.observations import TreeObsForRailEnv

import envs
from envs.flatland.rail import RailTask
from envs.flatland.tasks import build_episode, get_task
from envs.flatland.tree import TreeObservation
from envs.seeding import child_seed

TREES = {"flatland": TreeObsForRailEnv, "ours": TreeObservation}


def random_policy(seed: int):
    g = torch.Generator().manual_seed(seed)
    return lambda avail: torch.rand(avail.shape, generator=g).masked_fill(~avail, -1).argmax(-1)


def ours(task: str, num_envs: int, workers: int, steps: int, depth: int, build_ahead: bool) -> float:
    env = envs.make(f"flatland/{task}", num_envs, seed=0, workers=workers, checked=False, tree_depth=depth,
                    build_ahead=build_ahead)
    gc.freeze()  # as the suite runner's training loop does
    act, step = random_policy(0), env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        step = env.step(act(step.avail_actions))
    rate = steps * num_envs / (time.perf_counter() - start)
    env.close()
    return rate


def record(task: str, num_envs: int, steps: int, depth: int) -> list[list]:
    """The flatland action dicts each environment sends; ``None`` marks a reset."""
    logs: list[list] = [[] for _ in range(num_envs)]
    original = RailTask._flatland_actions
    env = envs.make(f"flatland/{task}", num_envs, seed=0, workers=1, checked=False, tree_depth=depth)
    for b, rail in enumerate(env._local.envs):
        def logged(self, actions, log=logs[b]):
            out = original(self, actions)
            log.append(out)
            return out
        rail._flatland_actions = logged.__get__(rail)
    act, step = random_policy(0), env.reset()
    for _ in range(steps):
        step = env.step(act(step.avail_actions))
        for b in step.done.nonzero().flatten().tolist():
            logs[b].append(None)
    return logs


def raw(task: str, logs: list[list], depth: int, tree: str, first: int = 0) -> tuple[int, float]:
    """Replay the logs of environments ``first, first + 1, ...`` on plain RailEnvs whose observation
    builder is the ``tree`` one, interleaved step by step as a batch would be; (steps, seconds)."""
    gc.freeze()  # as our worker processes do: the inherited heap (torch) is never scanned
    spec = get_task(task)
    episodes = [0] * len(logs)

    def new_episode(b: int):  # the episode our environment plays, with a tree observation builder instead
        rail, _ = build_episode(spec, child_seed(0, first + b), episodes[b], TREES[tree](max_depth=depth))
        episodes[b] += 1
        return rail

    rails = [new_episode(b) for b in range(len(logs))]
    cursors, steps = [iter(log) for log in logs], 0
    start = time.perf_counter()
    for _ in range(max(len(log) for log in logs)):
        for b, cursor in enumerate(cursors):
            entry = next(cursor, False)
            if entry is None:
                rails[b] = new_episode(b)
                entry = next(cursor, False)
            if entry is not False:
                rails[b].step(entry)
                steps += 1
    return steps, time.perf_counter() - start


def raw_on_cores(task: str, logs: list[list], depth: int, tree: str, cores: int) -> float:
    """Raw replay split over ``cores`` processes running at once: what this many busy cores do, since a
    core slows down when its neighbours work too (shared caches and memory bandwidth)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    bounds = np.linspace(0, len(logs), cores + 1).round().astype(int)
    procs = [ctx.Process(target=lambda a, b: queue.put(raw(task, logs[a:b], depth, tree, a)), args=(a, b))
             for a, b in zip(bounds[:-1], bounds[1:])]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(s for s, _ in results) / max(t for _, t in results)


def measure(mode: str, task: str, num_envs: int, steps: int, depth: int, build_ahead: bool) -> float:
    if mode.startswith("raw"):  # raw-TREE-CORES
        _, tree, cores = mode.split("-")
        return raw_on_cores(task, record(task, num_envs, steps, depth), depth, tree, int(cores))
    return ours(task, num_envs, int(mode), steps, depth, build_ahead)


def main() -> None:
    import json
    import subprocess
    import warnings

    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", nargs="+", default=["5_agents", "10_agents"])
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=200, help="batched steps per measurement")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="best of this many interleaved runs per measurement")
    p.add_argument("--no-build-ahead", dest="build_ahead", action="store_false",
                   help="build every new episode in the stepping process (no helper processes)")
    p.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement in a fresh process
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.tasks[0], args.envs, args.steps, args.depth, args.build_ahead)))
        return
    print(f"{os.cpu_count()} cores; tree depth {args.depth}; {args.envs} environments; "
          f"{args.steps} batched steps per measurement; best of {args.repeats}, each in a fresh process; "
          f"episodes built {'ahead by idle-priority helpers' if args.build_ahead else 'in the stepping process'}")
    modes = ("raw-flatland-1", "raw-flatland-2", "raw-ours-1", "raw-ours-2", "1", "2")
    for task in args.tasks:
        best = dict.fromkeys(modes, 0.0)
        for _ in range(args.repeats):  # interleaved: this machine's speed drifts by +-20% over minutes
            for mode in modes:
                out = subprocess.run([sys.executable, "-m", "suites.checks.flatland_throughput", "--measure", mode,
                                      "--tasks", task, "--envs", str(args.envs), "--steps", str(args.steps),
                                      "--depth", str(args.depth)] + ([] if args.build_ahead else ["--no-build-ahead"]),
                                     capture_output=True, text=True, check=True)
                best[mode] = max(best[mode], json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"flatland/{task}: raw flatland-rl {best['raw-flatland-1']:.0f} steps/s on 1 core, "
              f"{best['raw-flatland-2']:.0f} on 2 busy cores; with our tree {best['raw-ours-1']:.0f} and "
              f"{best['raw-ours-2']:.0f}")
        for workers in (1, 2):
            label = "1 worker (this process)" if workers == 1 else f"{workers} workers"
            rate = best[str(workers)]
            print(f"  {label:24s} {rate:7.0f} steps/s  overhead vs raw on {workers} core(s) "
                  f"{1 - rate / best[f'raw-flatland-{workers}']:+.1%}, vs raw with our tree "
                  f"{1 - rate / best[f'raw-ours-{workers}']:+.1%}")


if __name__ == "__main__":
    main()
