"""Print SMAC simulator and MAPPO training throughput (environment steps per second).

    python scripts/throughput.py [--device cpu|cuda] [--envs 512] [--maps 3s5z_vs_3s6z 27m_vs_30m]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from envs.smac.simulator import SmacSimulator  # noqa: E402


def simulator_rate(name: str, num_envs: int, device: str, checked: bool, steps: int = 30) -> float:
    env = SmacSimulator(name, num_envs=num_envs, device=device, seed=0, checked=checked)
    g = torch.Generator(device=device).manual_seed(0)
    step = env.reset()

    def act(avail):
        return torch.rand(avail.shape, generator=g, device=device).masked_fill(~avail, -1).argmax(-1)

    for _ in range(3):
        step = env.step(act(step.avail_actions))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step = env.step(act(step.avail_actions))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * num_envs / (time.perf_counter() - start)


def mappo_rate(device: str, steps: int = 2048) -> float:
    import tempfile

    from suites.experiment import execute
    from suites.runner import RunSpec

    spec = RunSpec(suite="bench", task="smac/3m", algorithm="mappo", preset="tiny", seed=0, steps=steps,
                   eval_interval=steps, eval_episodes=2, device=device, backend="sim")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        execute(spec, Path(tmp))
        return steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--envs", type=int, default=512)
    p.add_argument("--maps", nargs="+", default=["3s5z_vs_3s6z", "27m_vs_30m"])
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for name in args.maps:
        for checked in (True, False):
            rate = simulator_rate(name, args.envs, args.device, checked)
            print(f"simulator {name:14s} envs={args.envs:6d} checked={checked!s:5s} {rate:12,.0f} env steps/s")
    print(f"MAPPO tiny on smac/3m, end to end incl. evaluation: {mappo_rate(args.device):,.0f} env steps/s")


if __name__ == "__main__":
    main()
