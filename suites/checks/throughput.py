"""Print SMAC simulator and MAPPO training throughput (environment steps per second).

    python -m suites.checks.throughput [--device cpu|cuda] [--envs 512 ...] [--maps 3s5z_vs_3s6z 27m_vs_30m]
                                 [--modes eager compiled] [--repeats 5] [--no-mappo] [--smax PYTHON]

``--smax`` also times JaxMARL's SMAX (jaxmarl 0.2.0, in a side environment whose python is given; see
``scripts/fidelity_reference.py``) on the same maps and batch sizes in the same run, the same way, where
SMAX has the map (``suites.checks.fidelity.REFERENCE_MAPS``).

Each figure is the best of ``--repeats`` timed blocks of 30 steps (this machine's speed drifts by
+-20%), after warm-up steps that also compile the step and the restart graphs in compiled mode; peak
memory is printed on CUDA.
"""
from __future__ import annotations

import argparse
import pickle
import subprocess
import time
from pathlib import Path

import torch

import envs
from suites.checks.fidelity import REFERENCE_MAPS


def simulator_rate(name: str, num_envs: int, device: str, checked: bool, compile: bool, repeats: int,
                   steps: int = 30) -> tuple[float, float]:
    """(env steps per second, seconds spent compiling and warming up)."""
    env = envs.make(f"smac/{name}", num_envs, device, seed=0, backend="sim", compile=compile, checked=checked)
    g = torch.Generator(device=device).manual_seed(0)
    step = env.reset()

    def act(avail):
        return torch.rand(avail.shape, generator=g, device=device).masked_fill(~avail, -1).argmax(-1)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    start = time.perf_counter()
    for _ in range(40 if compile else 3):  # in compiled mode, battles must end for the restart graph
        step = env.step(act(step.avail_actions))
    sync()
    warmup = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step = env.step(act(step.avail_actions))
        sync()
        best = min(best, time.perf_counter() - start)
    return steps * num_envs / best, warmup


def mappo_rate(device: str, steps: int = 2048) -> float:
    import tempfile

    from suites.launching.experiment import execute
    from suites.planning.spec import RunSpec

    spec = RunSpec(suite="bench", task="smac/3m", algorithm="mappo", preset="tiny", seed=0, steps=steps,
                   eval_interval=steps, eval_episodes=2, device=device, backend="sim")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        execute(spec, Path(tmp))
        return steps / (time.perf_counter() - start)


def smax_rate(python: str, name: str, num_envs: int) -> float:
    worker = Path(__file__).resolve().parents[2] / "scripts" / "fidelity_reference.py"
    out = subprocess.run([python, str(worker), "--reference", "smax", "--map", name, "--throughput", str(num_envs)],
                         stdout=subprocess.PIPE, check=True).stdout
    return pickle.loads(out)[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--envs", type=int, nargs="+", default=[512])
    p.add_argument("--maps", nargs="+", default=["3s5z_vs_3s6z", "27m_vs_30m"])
    p.add_argument("--modes", nargs="+", choices=("eager", "compiled"), default=["eager", "compiled"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-mappo", action="store_true")
    p.add_argument("--smax", metavar="PYTHON", help="python of a side environment with jaxmarl 0.2.0 (times SMAX too)")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for name in args.maps:
        for num_envs in args.envs:
            for mode in args.modes:
                for checked in (True, False):
                    if args.device.startswith("cuda"):
                        torch.cuda.reset_peak_memory_stats()
                    rate, warmup = simulator_rate(name, num_envs, args.device, checked, mode == "compiled",
                                                  args.repeats)
                    memory = (f"  peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
                              if args.device.startswith("cuda") else "")
                    print(f"simulator {name:14s} envs={num_envs:6d} {mode:8s} checked={checked!s:5s} "
                          f"{rate:12,.0f} env steps/s  (warm-up {warmup:.0f} s){memory}", flush=True)
            if args.smax and name not in REFERENCE_MAPS["smax"]:
                print(f"SMAX      {name:14s} (SMAX has no such map)", flush=True)
            elif args.smax:
                print(f"SMAX      {name:14s} envs={num_envs:6d} jit                    "
                      f"{smax_rate(args.smax, name, num_envs):12,.0f} env steps/s", flush=True)
    if not args.no_mappo:
        print(f"MAPPO tiny on smac/3m, end to end incl. evaluation: {mappo_rate(args.device):,.0f} env steps/s")


if __name__ == "__main__":
    main()
