"""How torch's CPU threads fare beside other work: each workload in a fresh process, per thread setting,
on an idle machine and beside processes that keep every core busy.

    python -m suites.checks.thread_contention [--seconds 8] [--threads 1 2] [--wait-policies default passive]

Workloads: the SMAC simulator alone (3s5z_vs_3s6z, 512 environments, eager), MAPPO `tiny` training on
smac/3m and MAMBA `tiny` training on smac/3m (acting, stepping and learning as a run does, without
evaluation or records). Each runs for ``--seconds`` after a warm-up and reports environment steps per
second. The competing load is one busy Python process per core (pure CPU, no threads of its own), which is
what another job on a shared node looks like to us. ``OMP_WAIT_POLICY`` is what the OpenMP runtime torch
links reads when it starts: ``passive`` makes idle worker threads sleep instead of spinning.
Prints a markdown table (docs/performance.md keeps the measured one).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

WORKLOADS = ("simulator", "mappo", "mamba")


def measure(workload: str, seconds: float) -> float:
    """Environment steps per second of ``workload`` in this process (torch's settings already made)."""
    import torch

    import envs
    from algorithms import Transition, make_algorithm, make_config

    if workload == "simulator":
        env = envs.make("smac/3s5z_vs_3s6z", num_envs=512, seed=0, backend="sim", checked=False)
        step, gen = env.reset(), torch.Generator().manual_seed(0)

        def advance():
            nonlocal step
            noise = torch.rand(step.avail_actions.shape, generator=gen).masked_fill(~step.avail_actions, -1.0)
            step = env.step(noise.argmax(-1))
            return env.num_envs
    else:
        torch.manual_seed(0)
        spec = envs.env_spec("smac/3m", "sim")
        config = make_config(workload, spec, "tiny", {})
        algo = make_algorithm(workload, spec, config, "cpu")
        env = envs.make("smac/3m", num_envs=config.num_envs, seed=0, backend="sim", checked=False)
        step = env.reset()
        memory = algo.initial_memory(env.num_envs)
        first = torch.ones(env.num_envs, dtype=torch.bool)

        def advance():
            nonlocal step, memory, first
            actions, next_memory, extras = algo.act(step.obs, step.avail_actions, memory, first)
            next_step = env.step(actions)
            algo.observe(Transition.between(step, first, actions, next_step, extras))
            algo.update()
            step, memory, first = next_step, next_memory, next_step.done
            return env.num_envs

    warm_until = time.perf_counter() + min(5.0, seconds / 2)
    while time.perf_counter() < warm_until:
        advance()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        steps += advance()
    return steps / (time.perf_counter() - started)


def burn() -> None:
    while True:
        pass


def child(workload: str, threads: int, seconds: float) -> None:
    import torch

    torch.set_num_threads(threads)
    print(json.dumps({"rate": measure(workload, seconds)}))


def run_child(workload: str, threads: int, policy: str, seconds: float) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy.upper()
    out = subprocess.run([sys.executable, __file__, "--child", workload, str(threads), str(seconds)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["rate"]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--wait-policies", nargs="+", default=["default", "passive"], choices=["default", "passive", "active"])
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores; env steps/s, idle / beside {cores} busy processes\n")
    print("| workload | threads | OMP_WAIT_POLICY | idle | contended | contended / idle |")
    print("|---|---|---|---|---|---|")
    for workload in args.workloads:
        for threads in args.threads:
            for policy in args.wait_policies:
                idle = run_child(workload, threads, policy, args.seconds)
                burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(cores)]
                for b in burners:
                    b.start()
                try:
                    busy = run_child(workload, threads, policy, args.seconds)
                finally:
                    for b in burners:
                        b.terminate()
                print(f"| {workload} | {threads} | {policy} | {idle:,.0f} | {busy:,.0f} | {busy / idle:.2f} |", flush=True)


if __name__ == "__main__":
    main()
