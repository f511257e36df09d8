"""One run = one Sacred experiment, recorded by a FileStorageObserver in the run's own directory."""
from __future__ import annotations

import dataclasses
import platform
import subprocess
from pathlib import Path

from suites.records import algorithm_label, mark_interrupted
from suites.runner import MetricLog, RunSpec, resolve_config, train

REPO = Path(__file__).resolve().parent.parent


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "sacred", "flatland-rl", "smacv2"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _git() -> dict[str, str | bool]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": True}


def run_config(spec: RunSpec) -> tuple[dict, object]:
    """Everything that lands in the record's config.json, and the algorithm config it describes."""
    algo_config, env_spec = resolve_config(spec)
    return {
        "suite": spec.suite, "task": spec.task, "family": env_spec.family, "algorithm": spec.algorithm,
        "variant": spec.variant, "preset": spec.preset, "overrides": dict(spec.overrides),
        "algorithm_config": dataclasses.asdict(algo_config),
        "backend": spec.backend, "seed": spec.seed,
        "budget_steps": spec.steps, "eval_interval": spec.eval_interval, "eval_episodes": spec.eval_episodes,
        "eval_greedy": spec.eval_greedy, "device": spec.device, "compile_env": spec.compile_env,
        "env_spec": dataclasses.asdict(env_spec),
        "versions": _versions(), "git": _git(),
    }, algo_config


def tensorboard_writer(record_dir: Path):
    """The run's TensorBoard event file, in its record directory, so ``tensorboard --logdir results/runs``
    shows every run by suite/task/algorithm/seed while it trains. A resumed attempt replays the whole
    history into its log, so event files of earlier attempts are removed first: one complete file per run."""
    from torch.utils.tensorboard import SummaryWriter

    record_dir.mkdir(parents=True, exist_ok=True)
    for old in record_dir.glob("events.out.tfevents.*"):
        old.unlink()
    return SummaryWriter(log_dir=str(record_dir), flush_secs=10)


WANDB_HINT = "--wandb needs Weights & Biases: pip install -e '.[wandb]'"


def wandb_run(spec: RunSpec, record_dir: Path, config: dict):
    """A Weights & Biases run mirroring this attempt (one per attempt: a resumed attempt replays the whole
    history), or None without ``--wandb``. Online where credentials exist (``WANDB_API_KEY`` or ``wandb
    login``), otherwise offline into ``<run>/wandb`` for a later ``wandb sync``; ``WANDB_MODE`` overrides."""
    if not spec.wandb:
        return None
    import os

    import wandb

    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") or _netrc_has_wandb() else "offline")
    if mode == "offline":
        print(f"note: no Weights & Biases credentials; logging offline under {record_dir / 'wandb'} "
              f"(`wandb sync` uploads it)", flush=True)
    return wandb.init(project=spec.wandb, name=spec.run_id, group=spec.run_id.rsplit("/", 1)[0], dir=str(record_dir),
                      config=config, mode=mode, reinit="create_new")


def _netrc_has_wandb() -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def execute(spec: RunSpec, results_dir: Path, progress=None, interrupt_after: int | None = None) -> dict:
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
            summary = train(spec, algo_config, record_dir, MetricLog(record), progress, interrupt_after)
        finally:
            writer.close()
            if mirror is not None:
                mirror.finish()
        _run.info["absolute"] = summary["absolute"]
        return summary

    return ex.run(options={"--loglevel": "ERROR"}).result
