"""One run's training loop, identical for every algorithm: act, step, observe, learn; evaluate on schedule
(``suites/evaluation.py``) and checkpoint after every evaluation, so a resumed run replays exactly what an
uninterrupted one does."""
from __future__ import annotations

import gc
import time
from pathlib import Path

import torch

import envs
from algorithms import Divergence, Transition, make_algorithm
from suites.checkpoint import atomic_save, rng_state, seed_everything, set_rng_state
from suites.errors import DiskFull
from suites.evaluation import ABSOLUTE_FACTOR, EpisodeStats, evaluate, evaluation_rank
from suites.metrics import MetricLog
from suites.progress import RunProgress
from suites.spec import RunSpec


def train(spec: RunSpec, config, record_dir: Path, log: MetricLog, progress=None) -> dict:
    """Train one run to ``spec.steps`` environment steps, resuming from ``record_dir/checkpoint.pt``.

    ``progress`` is an optional tqdm bar; the run's ``progress.json`` is kept up to date either way, and
    each evaluation prints one line (Sacred keeps it in the record's cout.txt)."""
    record_dir.mkdir(parents=True, exist_ok=True)
    report = RunProgress(record_dir, spec.steps, progress)
    ckpt_path, best_path = record_dir / "checkpoint.pt", record_dir / "best_policy.pt"
    seed_everything(spec.seed)
    env = envs.make(spec.task, num_envs=config.num_envs, device=spec.device, seed=spec.seed,
                    backend=spec.backend, checked=False, compile=spec.compile_env)
    algo = make_algorithm(spec.algorithm, spec.env_spec, config, spec.device)
    metric = spec.env_spec.metric

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
        set_rng_state(ck["rng"])
        log.replay(ck["log"])

    def checkpoint() -> None:
        nonlocal saved_at
        atomic_save({"algorithm": algo.state_dict(), "env": env.get_state(), "step": step, "memory": memory,
                     "first": first, "steps": steps, "evals": evals, "best": best, "rng": rng_state(),
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
    # cyclic GC need not re-scan it (with torch loaded, full collections cost the process that steps a
    # Flatland shard several percent of its time; the workers freeze likewise).
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
