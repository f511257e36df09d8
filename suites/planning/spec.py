"""A run's specification: which suite, task, algorithm, preset and seed, with what budget and where."""
from __future__ import annotations

import dataclasses

import envs
from algorithms import make_config
from envs.spec import EnvSpec
from suites.launching import records


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run. Frozen and JSON-serialisable, so a launcher can hand it to another process or node."""

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
    threads: int = 0  # torch CPU threads of the run's process (0: OMP_NUM_THREADS, else 1; suites/launching/threads.py)
    env_spec: EnvSpec | None = None  # resolved with the backend when the spec is made (or read back from JSON)
    improvement: tuple[str, ...] = ()  # the comparisons of its suite (``Suite.improvement``, ``Suite.ablation``)
    ablation: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("improvement", "ablation"):  # lists when read back from JSON
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.env_spec, dict):
            object.__setattr__(self, "env_spec", EnvSpec.from_dict(self.env_spec))
        elif self.env_spec is None:
            object.__setattr__(self, "env_spec", envs.env_spec(self.task, self.backend))
        object.__setattr__(self, "backend", self.env_spec.backend)

    @property
    def run_id(self) -> str:
        return records.run_id(self.suite, self.task, self.algorithm, self.seed, self.backend, self.variant)

    def algorithm_config(self):
        """The algorithm config this run uses: its preset for the task, with the overrides applied."""
        return make_config(self.algorithm, self.env_spec, self.preset, dict(self.overrides))
