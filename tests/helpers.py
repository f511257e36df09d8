"""Small shared helpers for tests: the repository root, tiny run settings and what runs record, scripted SMAC
policies and state surgery on the simulator."""
from __future__ import annotations

import json
from pathlib import Path

import torch

import envs
from envs.smac.layout import N_NO_ATTACK
from envs.smac.simulator import SmacSimulator
from suites.planning.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(suite="test", task="smac/3m", algorithm="mappo", preset="tiny", steps=768, eval_interval=256,
            eval_episodes=4, backend="sim")

SMALL = ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "1", "--steps", "256", "--eval-episodes", "2",
         "--backend", "sim"]  # a suite command of one short run
MEMBER = dict(suite="test", task="smac/3m", algorithm="mappo", preset="tiny", steps=512, eval_interval=256,
              eval_episodes=4, backend="sim")  # a seed member's settings in the seed-group tests


def member_specs(*seeds: int, **changes) -> list[RunSpec]:
    """Runs of ``MEMBER`` (with ``changes``) for ``seeds``: seed members of one group."""
    return [RunSpec(seed=s, **{**MEMBER, **changes}) for s in seeds]


class InterruptedAt:
    """A progress bar whose run the user interrupts (Ctrl-C) once ``steps`` environment steps are done."""

    def __init__(self, steps: int):
        self.n, self.steps = 0, steps

    def update(self, steps: int) -> None:
        self.n += steps
        if self.n >= self.steps:
            raise KeyboardInterrupt

    def set_postfix_str(self, text: str) -> None:
        pass


def expand(*argv: str) -> list[RunSpec]:
    """The runs a suite command plans, as ``python -m suites.run ARGV`` would."""
    from suites import run as cli
    from suites.planning.plan import plan

    return plan(*cli.read_command(list(argv)))


def run_metrics(results: Path, spec: RunSpec, attempt: int | None = None) -> dict:
    """A run's metrics.json, of its latest attempt unless ``attempt`` is given."""
    run_dir = results / "runs" / spec.run_id
    attempt = attempt or max(int(p.name) for p in run_dir.iterdir() if p.name.isdigit())
    return json.loads((run_dir / str(attempt) / "metrics.json").read_text())


def learning(metrics: dict) -> dict:
    """Every metric's steps and values but the wall times: what two runs of the same settings share exactly."""
    return {k: (v["steps"], v["values"]) for k, v in metrics.items() if not k.startswith("time/")}


def simulator(map_name: str, **options) -> SmacSimulator:
    """A SMAC simulator of ``map_name``, built as the family builds it (with its spec)."""
    return envs.make(f"smac/{map_name}", backend="sim", **options)


def random_actions(avail: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    noise = torch.rand(avail.shape, generator=generator, device=avail.device)
    return noise.masked_fill(~avail, -1.0).argmax(-1)


def focus_fire(env: SmacSimulator, avail: torch.Tensor) -> torch.Tensor:
    """Attack the weakest enemy in range; otherwise walk toward the nearest enemy."""
    n, s = env.n_agents, env.s
    attack = avail[:, :, N_NO_ATTACK:]
    health = (s.hp[:, n:] + s.shield[:, n:]).unsqueeze(1).expand_as(attack)
    weakest = torch.where(attack, health, torch.full_like(health, float("inf"))).argmin(-1) + N_NO_ATTACK
    rel = s.pos[:, n:].unsqueeze(1) - s.pos[:, :n].unsqueeze(2)
    dist = rel.norm(dim=-1).masked_fill(~s.alive[:, n:].unsqueeze(1), float("inf"))
    toward = rel.gather(2, dist.argmin(-1)[..., None, None].expand(-1, -1, 1, 2)).squeeze(2)
    move = torch.where(toward[..., 0].abs() > toward[..., 1].abs(),
                       torch.where(toward[..., 0] > 0, 4, 5), torch.where(toward[..., 1] > 0, 2, 3))
    move = torch.where(avail.gather(2, move.unsqueeze(-1)).squeeze(-1), move, torch.ones_like(move))
    act = torch.where(attack.any(-1), weakest, move)
    return torch.where(avail[:, :, 0], torch.zeros_like(act), act)


def place(env: SmacSimulator, positions: dict[int, tuple[float, float]], alive: set[int] | None = None) -> None:
    """Put units (unit index -> position) in environment 0; units not in ``alive`` are removed."""
    s = env.s
    for u, (x, y) in positions.items():
        s.pos[0, u] = torch.tensor([x, y])
    if alive is not None:
        for u in range(env.n_units):
            if u not in alive:
                s.alive[0, u] = False
                s.hp[0, u] = 0.0
                s.shield[0, u] = 0.0
    env._avail = env._observe(s)[2]


def run_episodes(env: SmacSimulator, policy, episodes: int, seed: int = 0) -> tuple[float, float]:
    """Mean return and win rate over the first ``episodes`` finished episodes."""
    g = torch.Generator().manual_seed(seed)
    step = env.reset()
    ret = torch.zeros(env.num_envs)
    returns, wins = [], 0
    while len(returns) < episodes:
        step = env.step(policy(step.avail_actions, g))
        ret += step.reward
        if step.done.any():
            returns += ret[step.done].tolist()
            wins += int(step.info["won"][step.done].sum())
            ret[step.done] = 0
    return sum(returns) / len(returns), wins / len(returns)


def shortest_path_actions(env, step) -> torch.Tensor:
    """Flatland: at every choice take the way whose next cell is closest to the train's target (no
    conflict avoidance, like flatland's ShortestPathPolicy). Needs an in-process env (``workers=1``)."""
    from envs.flatland.tree import MOVES

    actions = torch.zeros(env.num_envs, env.spec.n_agents, dtype=torch.long)
    for b, rail in enumerate(env._local.envs):
        distance = rail.env.distance_map.get()
        for i, agent in enumerate(rail.env.agents):
            if not step.avail_actions[b, i, 1]:
                continue  # forced, or a single way: 0 is the only sensible choice
            row, col, heading = rail._configuration(agent)
            cost = []
            for way in rail._ways(row, col, heading):
                turned = (heading + way - 2) % 4
                cost.append(distance[i, row + MOVES[turned][0], col + MOVES[turned][1], turned])
            actions[b, i] = int(min(range(len(cost)), key=cost.__getitem__))
    return actions


def write_record(results, suite: str, task: str, algorithm: str, seed: int, family: str = "smac", backend: str = "sim",
                 evals: dict[int, float] | None = None, absolute: float | None = None, status: str = "COMPLETED",
                 checkpoint: bool = False, variant: str = "") -> None:
    """A Sacred record as ``suites.launching.experiment`` leaves it (attempt 1), with the headline metric only."""
    import dataclasses
    import json

    from envs import FAMILIES
    from suites.launching.records import run_id

    backend = backend if backend in FAMILIES[family].backends else family
    env_spec = FAMILIES[family].describe(task.split("/", 1)[1], backend, n_agents=2, obs_dim=4, state_dim=8, n_actions=3,
                                         episode_limit=10)
    metric = env_spec.metric

    run_dir = results / "runs" / run_id(suite, task, algorithm, seed, backend, variant)
    attempt = run_dir / "1"
    attempt.mkdir(parents=True)
    from algorithms import display_name
    from suites.launching.records import RECORD_FORMAT
    from suites.planning.definitions import Suite

    config = dict(record_format=RECORD_FORMAT, suite=suite, family=family, task=task, backend=backend,
                  algorithm=algorithm, display_name=display_name(algorithm), variant=variant, preset="tiny", seed=seed,
                  comparisons={"improvement": list(Suite.improvement), "ablation": list(Suite.ablation)},
                  env_spec=dataclasses.asdict(env_spec))
    evals = evals or {}
    metrics = {f"eval/{metric}": {"steps": list(evals), "values": list(evals.values())},
               "eval/return_mean": {"steps": list(evals), "values": [20 * v for v in evals.values()]}}
    if absolute is not None:
        metrics[f"absolute/{metric}"] = {"steps": [max(evals, default=0)], "values": [absolute]}
        metrics["absolute/return_mean"] = {"steps": [max(evals, default=0)], "values": [20 * absolute]}
    (attempt / "config.json").write_text(json.dumps(config))
    (attempt / "metrics.json").write_text(json.dumps(metrics))
    (attempt / "run.json").write_text(json.dumps({"status": status}))
    if checkpoint:
        (run_dir / "checkpoint.pt").write_bytes(b"")
