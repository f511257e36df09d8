"""The environment loop, evaluation protocol and checkpoints: one run, identical for every algorithm.

Evaluation (Gorsane et al. 2022): every ``eval_interval`` environment steps, at step 0 and at the last step
whatever the interval, run ``eval_episodes`` episodes with the decentralised policy, greedy by default; log ``eval/win_rate``
(SMAC) and ``eval/return_mean``. At the end, the best evaluated policy (by the task's metric, ties broken by
return) is re-evaluated on 10 x ``eval_episodes`` episodes: the *absolute metric*. The exploring training episodes finished since
the previous evaluation are logged beside it as ``collect/...`` (the official MAMBA and MABL code logs
only these: the win of each stochastic training episode).

Checkpoints are written atomically after every evaluation: algorithm, environment and RNG states,
counters and the log history, so a resumed run replays exactly what an uninterrupted one does.
"""
from __future__ import annotations

import dataclasses
import errno
import gc
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import envs
from algorithms import Divergence, Transition, make_algorithm, make_config
from envs.spec import EnvSpec
from suites import records
from suites.progress import RunProgress

ABSOLUTE_FACTOR = 10


@dataclasses.dataclass(frozen=True)
class RunSpec:
    suite: str
    task: str
    algorithm: str
    preset: str
    seed: int
    steps: int
    eval_interval: int
    eval_episodes: int = 32
    eval_greedy: bool = True
    device: str = "cpu"
    backend: str = "auto"
    compile_env: bool = False  # torch.compile the SMAC simulator's step (training environments only)
    overrides: tuple = ()  # (field, value) pairs applied to the algorithm config
    variant: str = ""  # names a variant of the algorithm (its own records, its own label in the analysis)
    wandb: str = ""  # Weights & Biases project to log to as well ("": off)
    env_spec: EnvSpec | None = None  # resolved with the backend when the spec is made (or read back from JSON)

    def __post_init__(self):
        if isinstance(self.env_spec, dict):
            object.__setattr__(self, "env_spec", EnvSpec.from_dict(self.env_spec))
        elif self.env_spec is None:
            object.__setattr__(self, "env_spec", envs.env_spec(self.task, self.backend))
        object.__setattr__(self, "backend", self.env_spec.backend)

    @property
    def run_id(self) -> str:
        return records.run_id(self.suite, self.task, self.algorithm, self.seed, self.backend, self.variant)


class MetricLog:
    """Every scalar the run logs, kept so a resumed run can replay its history into its new record."""

    def __init__(self, sink: Callable[[str, float, int], None]):
        self.sink, self.history = sink, []

    def log(self, name: str, value: float, step: int) -> None:
        self.history.append((name, float(value), int(step)))
        self.sink(name, float(value), int(step))

    def replay(self, history) -> None:
        for name, value, step in history:
            self.log(name, value, step)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class DiskFull(RuntimeError):
    """The device holding a run's records is full; the run stops, resumable from its last checkpoint."""


def atomic_save(obj, path: Path) -> None:
    """Write ``obj`` through a temporary file, so a failed write never replaces the good ``path``. A full
    disk raises :class:`DiskFull` naming the directory (torch words it as "unexpected pos ...")."""
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(obj, tmp)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        if _out_of_space(err, path.parent):
            raise DiskFull(f"no space left on the device holding {path.parent}") from err
        raise
    os.replace(tmp, path)


def _out_of_space(err: Exception, directory: Path) -> bool:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(directory).free < 1 << 20
    except OSError:
        return False


class EpisodeStats:
    """Returns, lengths and outcomes of finished episodes (training or evaluation), summed on the device as
    they finish (no host read per step) and reported as means."""

    def __init__(self, num_envs: int, device, outcomes: tuple[tuple[str, str], ...]):
        self.outcomes = outcomes  # (info key, name) read on the step that ends an episode (EnvSpec.outcomes)
        self.running = torch.zeros(2, num_envs, device=device)  # return and length of the unfinished episodes
        self.totals: dict[str, torch.Tensor] = {}

    def add(self, nxt, counted: torch.Tensor | None = None) -> None:
        """One batched step; the episodes it ends are summed where ``counted`` (default: all of them)."""
        self.running += torch.stack([nxt.reward, torch.ones_like(nxt.reward)])
        ending = (nxt.done if counted is None else counted).float()
        finished = {"return_mean": self.running[0], "episode_length": self.running[1], "episodes": torch.ones_like(ending)}
        finished.update({name: nxt.info[k].float() for k, name in self.outcomes})
        for name, value in finished.items():
            self.totals[name] = self.totals.get(name, 0.0) + (value * ending).sum()
        self.running *= 1.0 - nxt.done.float()

    def report(self) -> dict[str, float]:
        """Means over the episodes finished since the last report (nothing if none finished); resets them."""
        totals, self.totals = self.totals, {}
        values = dict(zip(totals, torch.stack(list(totals.values())).tolist())) if totals else {}
        episodes = values.pop("episodes", 0.0)
        if not episodes:
            return {}
        return {"episodes": episodes, **{name: total / episodes for name, total in values.items()}}

    def state_dict(self) -> dict:
        return {"running": self.running.clone(), "totals": dict(self.totals)}

    def load_state_dict(self, state: dict) -> None:
        self.running.copy_(state["running"])
        self.totals = dict(state["totals"])


def evaluate(algo, spec: RunSpec, episodes: int, seed: int) -> dict[str, float]:
    """Run exactly one episode in each of ``episodes`` fresh environments with the decentralised policy."""
    env = envs.make(spec.task, num_envs=episodes, device=spec.device, seed=seed, backend=spec.backend, checked=False,
                    one_episode_each=True)
    try:
        step = env.reset()
        memory = algo.initial_memory(episodes)
        first = torch.ones(episodes, dtype=torch.bool, device=env.device)
        running = torch.ones(episodes, dtype=torch.bool, device=env.device)
        finished = EpisodeStats(episodes, env.device, spec.env_spec.outcomes)
        while bool(running.any()):
            actions, memory, _ = algo.act(step.obs, step.avail_actions, memory, first, explore=not spec.eval_greedy,
                                          neighbours=step.info.get("neighbours"))
            step = env.step(actions)
            finished.add(step, counted=running & step.done)  # an environment's later episodes are not counted
            running &= ~step.done
            first = step.done
    finally:
        env.close()
    out = finished.report()
    del out["episodes"]
    return out


def evaluation_rank(result: dict[str, float], metric: str) -> tuple[float, float]:
    """How evaluations compare when choosing the policy for the absolute metric: the task's metric, then the
    return, so that a run that never wins still keeps its best-scoring policy rather than its first."""
    return result.get(metric, result["return_mean"]), result["return_mean"]


def resolve_config(spec: RunSpec):
    """The algorithm config this run uses (preset for the task, plus overrides) and the env spec."""
    return make_config(spec.algorithm, spec.env_spec, spec.preset, dict(spec.overrides)), spec.env_spec


def train(spec: RunSpec, config, record_dir: Path, log: MetricLog, progress=None,
          interrupt_after: int | None = None) -> dict:
    """Train one run to ``spec.steps`` environment steps, resuming from ``record_dir/checkpoint.pt``.

    ``progress`` is an optional tqdm bar; the run's ``progress.json`` is kept up to date either way, and
    each evaluation prints one line (Sacred keeps it in the record's cout.txt). ``interrupt_after`` (tests
    only) raises KeyboardInterrupt once that many steps are done and a checkpoint exists, to exercise resume."""
    record_dir.mkdir(parents=True, exist_ok=True)
    report = RunProgress(record_dir, spec.steps, progress)
    ckpt_path, best_path = record_dir / "checkpoint.pt", record_dir / "best_policy.pt"
    seed_everything(spec.seed)
    env = envs.make(spec.task, num_envs=config.num_envs, device=spec.device, seed=spec.seed,
                    backend=spec.backend, checked=False, compile=spec.compile_env)
    algo = make_algorithm(spec.algorithm, env.spec, config, spec.device)
    metric = env.spec.metric

    steps, evals, best = 0, 0, (-float("inf"), -float("inf"))
    evaluated_at = saved_at = 0  # steps at the latest evaluation and the latest checkpoint (written together)
    step = env.reset()
    memory = algo.initial_memory(env.num_envs)
    first = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    collected = EpisodeStats(env.num_envs, env.device, spec.env_spec.outcomes)
    if ckpt_path.exists():
        try:
            ck = torch.load(ckpt_path, weights_only=False, map_location=spec.device)
        except Exception as err:
            raise RuntimeError(f"checkpoint {ckpt_path} is unreadable ({type(err).__name__}: {err}); "
                               "delete it to restart this run from scratch") from err
        algo.load_state_dict(ck["algorithm"])
        if ck["env"] is not None:
            env.set_state(ck["env"])
            step, memory, first = ck["step"], ck["memory"], ck["first"]
        steps, evals, best = ck["steps"], ck["evals"], ck["best"]
        evaluated_at = saved_at = steps
        if not isinstance(best, tuple):  # checkpoints written before ties were broken by return hold the metric alone
            best = (best, -float("inf"))
        if "collect" in ck:  # checkpoints written before training episodes were logged lack it
            collected.load_state_dict(ck["collect"])
        _set_rng_state(ck["rng"])
        log.replay(ck["log"])

    def checkpoint() -> None:
        nonlocal saved_at
        atomic_save({"algorithm": algo.state_dict(), "env": env.get_state(), "step": step, "memory": memory,
                     "first": first, "steps": steps, "evals": evals, "best": best, "rng": _rng_state(),
                     "collect": collected.state_dict(), "log": list(log.history)}, ckpt_path)
        saved_at = steps

    def run_evaluation() -> None:
        nonlocal evals, best, evaluated_at
        evaluated_at = steps
        for k, v in collected.report().items():
            log.log(f"collect/{k}", v, steps)
        result = evaluate(algo, spec, spec.eval_episodes, seed=spec.seed * 100_003 + evals)
        for k, v in result.items():
            log.log(f"eval/{k}", v, steps)
        report.say(f"{spec.run_id} step {steps}: " + ", ".join(f"eval/{k}={v:.3f}" for k, v in result.items()))
        rank = evaluation_rank(result, metric)
        if rank > best:
            best = rank
            atomic_save(algo.state_dict(), best_path)
        evals += 1
        report.note(f"eval {metric}={rank[0]:.2f}")
        checkpoint()

    report.start(steps)
    started, started_steps = time.perf_counter(), steps
    # Everything alive now (modules, models, optimisers, replay, environments) lives for the whole loop: the
    # cyclic GC need not re-scan it. With torch loaded, a full collection took about 75 ms every 50 or so
    # batched Flatland steps in the process that steps a shard (8% of its time; the workers freeze likewise).
    gc.freeze()
    try:
        while True:
            # on schedule, and always at the end, so the final policy is a candidate for the absolute metric
            if steps >= evals * spec.eval_interval or (steps >= spec.steps and evaluated_at < steps):
                try:
                    run_evaluation()
                except DiskFull as err:
                    raise DiskFull(f"{err}; free space and rerun to resume from step {saved_at}") from None
            if steps >= spec.steps:
                break
            if interrupt_after is not None and steps >= interrupt_after and evals > 1:
                raise KeyboardInterrupt(f"test interrupt at {steps} steps")
            actions, next_memory, extras = algo.act(step.obs, step.avail_actions, memory, first, explore=True,
                                                    neighbours=step.info.get("neighbours"))
            nxt = env.step(actions)
            collected.add(nxt)
            algo.observe(Transition.between(step, first, actions, nxt, extras))
            step, memory, first = nxt, next_memory, nxt.done
            steps += env.num_envs
            try:
                metrics = algo.update()
            except Divergence as err:
                raise Divergence(f"{err} at {steps} environment steps; last good checkpoint: {ckpt_path}") from err
            for name, value in metrics.items():
                log.log(name, value, steps)
            report.advance(env.num_envs)
    finally:
        gc.unfreeze()  # what the run leaves behind is collectable again
    elapsed = time.perf_counter() - started
    report.write()
    env.close()
    if elapsed > 0 and steps > started_steps:
        log.log("time/steps_per_second", (steps - started_steps) / elapsed, steps)

    best_algo = make_algorithm(spec.algorithm, algo.spec, config, spec.device)
    best_algo.load_state_dict(torch.load(best_path, weights_only=False, map_location=spec.device))
    absolute = evaluate(best_algo, spec, ABSOLUTE_FACTOR * spec.eval_episodes, seed=spec.seed * 100_003 - 1)
    for k, v in absolute.items():
        log.log(f"absolute/{k}", v, steps)
    return {"steps": steps, "absolute": absolute}
