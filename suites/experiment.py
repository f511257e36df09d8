"""One run = one Sacred experiment, recorded by a FileStorageObserver in the run's own directory."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from suites.metrics import MetricLog, tensorboard_writer, wandb_run
from suites.provenance import git, versions
from suites.records import algorithm_label, mark_interrupted
from suites.spec import RunSpec
from suites.training import train


def run_config(spec: RunSpec) -> tuple[dict, object]:
    """Everything that lands in the record's config.json, and the algorithm config it describes."""
    algo_config, env_spec = spec.algorithm_config(), spec.env_spec
    return {
        "suite": spec.suite, "task": spec.task, "family": env_spec.family, "algorithm": spec.algorithm,
        "variant": spec.variant, "preset": spec.preset, "overrides": dict(spec.overrides),
        "algorithm_config": dataclasses.asdict(algo_config),
        "backend": spec.backend, "seed": spec.seed,
        "budget_steps": spec.steps, "eval_interval": spec.eval_interval, "eval_episodes": spec.eval_episodes,
        "eval_greedy": spec.eval_greedy, "device": spec.device, "compile_env": spec.compile_env,
        "env_spec": dataclasses.asdict(env_spec),
        "versions": versions(), "git": git(),
    }, algo_config


def execute(spec: RunSpec, results_dir: Path, progress=None) -> dict:
    """Run (or resume) one experiment; exceptions propagate after Sacred has recorded them."""
    import warnings

    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # sacred/dependencies.py:11
    from sacred import SETTINGS, Experiment
    from sacred.observers import FileStorageObserver

    SETTINGS.CAPTURE_MODE = "sys"  # fd capture deadlocks with subprocesses (sacred #705)
    record_dir = results_dir / "runs" / spec.run_id
    mark_interrupted(record_dir)
    config, algo_config = run_config(spec)
    ex = Experiment(f"{algorithm_label(spec.algorithm, spec.variant)}:{spec.task}", interactive=True,
                    save_git_info=False)
    ex.observers.append(FileStorageObserver(str(record_dir), copy_sources=False))
    ex.add_config(config)

    @ex.main
    def main(_run):
        writer, mirror = tensorboard_writer(record_dir), wandb_run(spec, record_dir, config)

        def record(name: str, value: float, step: int) -> None:  # every metric to Sacred, TensorBoard and W&B alike
            _run.log_scalar(name, value, step)
            writer.add_scalar(name, value, step)
            if mirror is not None:
                mirror.log({name: value}, step=step)

        try:
            summary = train(spec, algo_config, record_dir, MetricLog(record), progress)
        finally:
            writer.close()
            if mirror is not None:
                mirror.finish()
        _run.info["absolute"] = summary["absolute"]
        return summary

    return ex.run(options={"--loglevel": "ERROR"}).result
