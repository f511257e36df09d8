"""Time one full world-model learner update and print parameter counts.

One learner update at the ``paper`` preset is what the official code runs after every episode: 60
world-model steps, then 4 x (imagination of 720 starts x 15 steps + 5 PPO epochs). The replay is filled
with random data of the task's dimensions (speed does not depend on the values).

    python -m suites.checks.learner_benchmark --task smac/3s5z_vs_3s6z --algorithms mabl mamba --device cuda
    python -m suites.checks.learner_benchmark --counts     # parameter counts per Super Hard map (markdown)
    python -m suites.checks.learner_benchmark --model-epochs 6 --epochs 1   # a cheaper estimate on a slow CPU
    python -m suites.checks.learner_benchmark --task smac/3m --preset small --repeats 5   # what CPU runs train
    python -m suites.checks.learner_benchmark --task smac/3m --preset small --members 2 5 10 --repeats 3

``--members``: one learner call of K seed members computed together (``algorithms/world_model/members.py``)
against the same K agents' solo calls one after the other, on the same replays (markdown table).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time

import torch

import envs
from algorithms import make_algorithm, make_config
from algorithms.cuda_graphs import prefer_expandable_segments
from algorithms.world_model.agent import matmul_precision
from algorithms.world_model.members import WorldModelMembers
from algorithms.world_model.networks import count_parameters
from envs.smac.maps import SUPER_HARD
from suites.launching import threads

WORLD_MODELS = ("mabl", "mabl_single_level", "mamba")


def smac_spec(map_name: str) -> envs.EnvSpec:
    return envs.env_spec(f"smac/{map_name}", "sim")


def fill_replay(algo, steps: int) -> None:
    """Random episodes of 60 steps (ending in a terminal step, so absorbing entries are exercised)."""
    spec, dev, b = algo.spec, algo.device, algo.config.num_envs
    g = torch.Generator(device=dev).manual_seed(0)
    for t in range(steps // b):
        done = torch.full((b,), t % 60 == 59, device=dev)
        algo.replay.add(torch.rand(b, spec.n_agents, spec.obs_dim, generator=g, device=dev),
                        torch.rand(b, spec.state_dim, generator=g, device=dev),
                        torch.rand(b, spec.n_agents, spec.n_actions, generator=g, device=dev) > 0.3,
                        torch.zeros(b, spec.n_agents, dtype=torch.bool, device=dev),
                        torch.randint(0, spec.n_actions, (b, spec.n_agents), generator=g, device=dev),
                        torch.rand(b, 1, generator=g, device=dev).expand(b, spec.n_agents),  # team reward per agent
                        done.unsqueeze(1).expand(b, spec.n_agents), done, done)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_update(name: str, spec: envs.EnvSpec, device: str, repeats: int, overrides: dict,
                preset: str = "paper") -> dict[str, float]:
    """Seconds per learner update, split into the world-model steps and the policy rounds (imagination +
    PPO; a device sync between the two), averaged over ``repeats``, plus peak GPU memory. The warm-up update
    also captures the CUDA graphs when they are on."""
    if device.startswith("cuda"):  # peak memory of this algorithm alone, warm-up and graph capture included
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    config = make_config(name, spec, preset, {"capacity": 20_000, **overrides})
    algo = make_algorithm(name, spec, config, device)
    fill_replay(algo, 5_000)
    algo.learner_call()  # warm-up (allocator, kernels, graph capture)
    algo.collect_metrics()
    phases = dict.fromkeys(("model", "policy"), 0.0)
    for _ in range(repeats):
        for phase, run in (("model", algo.train_model), ("policy", algo.train_policy)):
            sync(device)
            start = time.perf_counter()
            with matmul_precision(config.tf32):
                run()
            sync(device)
            phases[phase] += time.perf_counter() - start
    algo.collect_metrics()
    out = {k: v / repeats for k, v in phases.items()}
    out["seconds_per_update"] = sum(out.values())
    if device.startswith("cuda"):
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30  # what the process holds on the GPU
    return out


def time_members(name: str, spec: envs.EnvSpec, device: str, k: int, repeats: int, overrides: dict,
                 preset: str) -> tuple[float, float]:
    """Seconds for one learner call of ``k`` members together and for their ``k`` solo calls one after the
    other (the fastest of ``repeats``, after a warm-up of each); every member has its own weights and replay."""
    def member(seed: int):
        torch.manual_seed(seed)
        algo = make_algorithm(name, spec, make_config(name, spec, preset, {"capacity": 20_000, **overrides}), device)
        fill_replay(algo, 5_000)
        return algo

    members = [member(seed) for seed in range(k)]
    group = WorldModelMembers(members, [contextlib.nullcontext] * k)  # timing only: one generator for all

    def together() -> None:
        group.owed = [1] * k
        group.update_waiting()

    def one_after_another() -> None:
        for algo in members:
            algo.learner_call()
            algo.collect_metrics()

    best = []
    for work in (together, one_after_another):
        work()  # warm-up
        times = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            work()
            sync(device)
            times.append(time.perf_counter() - start)
        best.append(min(times))
    return best[0], best[1]


def counts_table() -> str:
    lines = ["| map | agents | obs | state | actions | " + " | ".join(f"{a} (model / actor / critic)" for a in WORLD_MODELS)
             + " |", "|" + "---|" * (5 + len(WORLD_MODELS))]
    for map_name in SUPER_HARD:
        spec = smac_spec(map_name)
        cells = []
        for name in WORLD_MODELS:
            algo = make_algorithm(name, spec, make_config(name, spec, "paper", {"capacity": 1_000}))
            cells.append(" / ".join(f"{count_parameters(m):,}" for m in (algo.model, algo.actor, algo.critic)))
        lines.append(f"| {map_name} | {spec.n_agents} | {spec.obs_dim} | {spec.state_dim} | {spec.n_actions} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="smac/3s5z_vs_3s6z")
    p.add_argument("--preset", default="paper", help="config preset (paper, small, tiny)")
    p.add_argument("--algorithms", nargs="+", default=list(WORLD_MODELS), choices=WORLD_MODELS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--model-epochs", type=int, help="override the 60 world-model steps (estimates on slow machines)")
    p.add_argument("--epochs", type=int, help="override the 4 imagination rounds")
    p.add_argument("--counts", action="store_true", help="print parameter counts per Super Hard map and exit")
    p.add_argument("--fp32", action="store_true", help="full-precision float32 matrix products (tf32=False)")
    p.add_argument("--no-graphs", action="store_true", help="eager learner steps on CUDA (cuda_graphs=False)")
    p.add_argument("--members", type=int, nargs="+", metavar="K",
                   help="time one learner call of K seed members together against K solo calls")
    args = p.parse_args(argv)
    if args.members and min(args.members) < 1:
        p.error(f"--members: group sizes must be at least 1, got {min(args.members)}")
    prefer_expandable_segments()
    if args.members:
        threads.apply()  # the threads a run uses (OMP_NUM_THREADS, else one), as the group and the solo runs have
    if args.counts:
        print(counts_table())
        return 0
    overrides = {k: v for k, v in (("model_epochs", args.model_epochs), ("epochs", args.epochs)) if v is not None}
    if args.no_graphs:
        overrides["cuda_graphs"] = False
    if args.fp32:
        overrides["tf32"] = False
    spec = smac_spec(args.task.split("/", 1)[1])
    print(f"{args.task}: {spec.n_agents} agents, obs {spec.obs_dim}, state {spec.state_dim}, {spec.n_actions} actions; "
          f"preset {args.preset}; device {args.device}; torch threads {torch.get_num_threads()}; "
          f"overrides {overrides or 'none'}")
    if args.members:
        print("\n| algorithm | K | together (s) | one after another (s) | speed-up |\n|---|---|---|---|---|")
        for name in args.algorithms:
            for k in args.members:
                together, alone = time_members(name, spec, args.device, k, args.repeats, overrides, args.preset)
                print(f"| {name} | {k} | {together:.2f} | {alone:.2f} | {alone / together:.2f}x |", flush=True)
        return 0
    for name in args.algorithms:
        result = time_update(name, spec, args.device, args.repeats, overrides, args.preset)
        extra = (f", peak GPU memory {result['peak_gib']:.1f} GiB allocated, {result['reserved_gib']:.1f} GiB reserved"
                 if "peak_gib" in result else "")
        print(f"{name:18s} {result['seconds_per_update']:8.2f} s per learner update (world model "
              f"{result['model']:.2f}, imagination + PPO {result['policy']:.2f}){extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
