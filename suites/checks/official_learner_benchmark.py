"""Time the official MAMBA or MABL learner update at the settings our ``learner_benchmark.py`` uses.

The "N times faster than the official code" claim needs the official learner timed on the same machine,
at the same task dimensions and schedule. This script imports the official learner from a checkout you
provide (we ship none of its code), fills its own replay (``DreamerMemory``) with random 60-step episodes
of the task's dimensions, and times ``train_model`` x MODEL_EPOCHS then ``train_agent`` x EPOCHS — the
body of the official ``DreamerLearner.step`` once the replay holds enough data. Only torch and numpy are
needed (no StarCraft II, flatland or wandb: ``wandb`` is replaced by a silent stand-in, and the official
``configs`` package is entered without its ``__init__``, which imports the vendored flatland 2.2.2).

    git clone https://github.com/jbr-ai-labs/mamba /tmp/mamba
    python -m suites.checks.official_learner_benchmark --official /tmp/mamba --algorithm mamba --device cuda
    git clone https://github.com/aravindvenu7/MABL /tmp/MABL
    python -m suites.checks.official_learner_benchmark --official /tmp/MABL/mabl --algorithm mabl --device cuda

Configurations (SMAC): MAMBA's ``configs/dreamer/optimal/starcraft/LearnerConfig.py`` and MABL's
``configs/dreamer/DreamerLearnerConfig.py`` (what MABL's ``train.py`` uses), with the task's sizes set as
their ``train.py`` sets them (IN_DIM, STATE_DIM, ACTION_SIZE, N_AGENTS) and DEVICE set to ``--device``
(the official files hard-code ``cuda`` / ``cuda:1``).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from suites.checks.kit import CheckError
from suites.checks.learner_benchmark import smac_spec, sync

CONFIG_MODULE = {("mamba", "smac"): "configs.dreamer.optimal.starcraft.LearnerConfig",
                 ("mabl", "smac"): "configs.dreamer.DreamerLearnerConfig",
                 ("mamba", "flatland"): "configs.dreamer.DreamerLearnerConfig"}
# MAMBA's maintainer: to train Flatland, copy optimal/flatland into the default configs (jbr-ai-labs/mamba#6):
# the default learner configuration takes the values of these files (learner settings, then network sizes).
COPIED_CONFIGS = {("mamba", "flatland"): (("configs.dreamer.optimal.flatland.LearnerConfig", "DreamerLearnerConfig"),
                                          ("configs.dreamer.optimal.flatland.AgentConfig", "DreamerConfig"))}
OFFICIAL_ALGORITHMS = sorted({algorithm for algorithm, _ in CONFIG_MODULE})
EPISODE_LENGTH = 60


def silent_wandb() -> types.ModuleType:
    """The official learner logs to wandb at import and during PPO; timing needs none of it."""
    module = types.ModuleType("wandb")
    module.init = lambda *args, **kwargs: None
    module.log = lambda *args, **kwargs: None
    return module


def official_learner(checkout: Path, algorithm: str, spec, device: str, overrides: dict):
    key = (algorithm, spec.family)
    if key not in CONFIG_MODULE:
        raise CheckError(f"no official {algorithm} learner configuration for {spec.family}; "
                         f"there are: {', '.join(f'{a} on {f}' for a, f in CONFIG_MODULE)}")
    if not (checkout / "agent" / "learners" / "DreamerLearner.py").is_file():
        raise CheckError(f"{checkout} is not an official {algorithm} checkout: agent/learners/DreamerLearner.py is "
                         f"missing (for MABL pass the repository's mabl/ folder)")
    sys.path.insert(0, str(checkout))
    sys.modules.setdefault("wandb", silent_wandb())
    # configs/__init__.py imports the Flatland configs, which need the vendored flatland 2.2.2; the learner
    # configs do not, so the package is entered without running its __init__.
    package = types.ModuleType("configs")
    package.__path__ = [str(checkout / "configs")]
    sys.modules["configs"] = package
    config = importlib.import_module(CONFIG_MODULE[key]).DreamerLearnerConfig()
    for module, class_name in COPIED_CONFIGS.get(key, ()):
        vars(config).update(vars(getattr(importlib.import_module(module), class_name)()))
    environments = importlib.import_module("environments").Env
    env_type = environments.STARCRAFT if spec.family == "smac" else environments.FLATLAND
    config.IN_DIM, config.ACTION_SIZE, config.ENV_TYPE = spec.obs_dim, spec.n_actions, env_type
    config.STATE_DIM, config.N_AGENTS = spec.state_dim, spec.n_agents  # read by MABL only
    config.DEVICE, config.CAPACITY = device, 20_000
    config.LOG_FOLDER = str(Path("/tmp") / "official_learner_benchmark")
    for name, value in overrides.items():
        setattr(config, name, value)
    return config.create_learner()


def fill_replay(learner, algorithm: str, spec, steps: int) -> None:
    """Random episodes through the official memory's own ``append`` (one-hot actions, float flags)."""
    rng = np.random.default_rng(0)
    n, t = spec.n_agents, EPISODE_LENGTH
    for _ in range(steps // t):
        action = np.eye(spec.n_actions, dtype=np.float32)[rng.integers(0, spec.n_actions, (t, n))]
        done = np.zeros((t, n, 1), np.float32)
        done[-1] = 1.0
        columns = [rng.random((t, n, spec.obs_dim), np.float32)]
        if algorithm == "mabl":
            columns.append(rng.random((t, 1, spec.state_dim), np.float32))
        columns += [action, rng.random((t, n, 1), np.float32), done, np.zeros((t, n, 1), np.float32), done,
                    (rng.random((t, n, spec.n_actions)) > 0.3).astype(np.float32)]
        learner.replay_buffer.append(*columns)


def time_update(learner, device: str, repeats: int) -> dict[str, float]:
    config, buffer = learner.config, learner.replay_buffer
    phases = dict.fromkeys(("model", "policy"), 0.0)
    for repeat in range(repeats + 1):  # the first update warms up (allocator, kernels)
        for phase, epochs, batch, train in (("model", config.MODEL_EPOCHS, config.MODEL_BATCH_SIZE, learner.train_model),
                                            ("policy", config.EPOCHS, config.BATCH_SIZE, learner.train_agent)):
            sync(device)
            start = time.perf_counter()
            for _ in range(epochs):
                train(buffer.sample(batch))
            sync(device)
            if repeat:
                phases[phase] += time.perf_counter() - start
    out = {k: v / repeats for k, v in phases.items()}
    out["seconds_per_update"] = sum(out.values())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, required=True, help="checkout of jbr-ai-labs/mamba, or MABL's mabl/ folder")
    p.add_argument("--algorithm", choices=OFFICIAL_ALGORITHMS, required=True)
    p.add_argument("--task", default="smac/3s5z_vs_3s6z")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--model-epochs", type=int, help="override MODEL_EPOCHS (60) for slow machines")
    p.add_argument("--epochs", type=int, help="override EPOCHS (4 imagination rounds)")
    args = p.parse_args(argv)
    overrides = {k: v for k, v in (("MODEL_EPOCHS", args.model_epochs), ("EPOCHS", args.epochs)) if v is not None}
    spec = smac_spec(args.task.split("/", 1)[1])
    torch.manual_seed(0)
    np.random.seed(0)  # the official memory samples with the global numpy generator
    try:
        learner = official_learner(args.official.resolve(), args.algorithm, spec, args.device, overrides)
    except CheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fill_replay(learner, args.algorithm, spec, 5_000)
    result = time_update(learner, args.device, args.repeats)
    print(f"official {args.algorithm} on {args.task} ({args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, overrides {overrides or 'none'}): {result['seconds_per_update']:.2f} s "
          f"per learner update (world model {result['model']:.2f}, imagination + PPO {result['policy']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
