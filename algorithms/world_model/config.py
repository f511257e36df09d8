"""One frozen config for MAMBA, MABL and MABL's single-level ablation, with per-family presets.

Official values (cited per preset in ``presets/mamba.py`` and ``presets/mabl.py``):
jbr-ai-labs/mamba@2c97258 ``configs/dreamer/optimal/{starcraft,flatland}/{AgentConfig,LearnerConfig}.py`` and
aravindvenu7/MABL@9327343 ``mabl/configs/dreamer/Dreamer{Agent,Learner}Config.py`` (plus its compiled
Flatland build). Hard-coded official constants (PPO clip and minibatch, KL balance, actor weight decay,
transformer sizes) are fields here so that every value lands in the run's Sacred config.

Behaviour the official code switches on ``ENV_TYPE`` is expressed by fields set per family
(:data:`FAMILY_DEFAULTS`): SMAC normalises advantages and bootstraps from the current critic; Flatland
bootstraps from a target critic copied after every update and treats finished trains as dead ("fake").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from algorithms.base import AlgorithmConfig
from envs.errors import UsageError
from envs.spec import EnvSpec

FAMILY_DEFAULTS = {
    "smac": dict(normalise_advantage=True, target_critic=False, per_agent_done=False),
    "flatland": dict(normalise_advantage=False, target_critic=True, per_agent_done=True),
}
CRITIC_FEATURES = ("agent", "all", "global")
ACTOR_INITS = ("orthogonal", "xavier")


@dataclass(frozen=True)
class WorldModelConfig(AlgorithmConfig):
    # collection and schedule
    num_envs: int = 1  # the official code trains from one episode stream (MABL: one worker)
    learner_calls_per_episode: float = 1.0  # N_SAMPLES=1: one learner call after every finished episode
    # sizes (SMAC optimal / MABL shipped)
    hidden: int = 256  # HIDDEN: encoder, decoder, posterior and critic widths
    model_hidden: int = 256  # MODEL_HIDDEN: GRU input, prior hidden, transformer width
    embed: int = 256  # EMBED
    state_embed: int = 256  # STATE_EMBED (MABL global-state encoder)
    n_categoricals: int = 32
    n_classes: int = 32
    deterministic: int = 256  # DETERMINISTIC (both GRUs)
    head_layers: int = 2  # REWARD/PCONT/ACTION/VALUE_LAYERS (equal in every official config)
    head_hidden: int = 256  # REWARD/PCONT/ACTION/VALUE_HIDDEN (equal in every official config)
    communication_layers: int = 3  # MAMBA transition transformer (hard-coded)
    attention_heads: int = 8  # hard-coded, transition and critic
    communication_dropout: float = 0.1  # hard-coded; active only while training the world model
    # learning
    model_lr: float = 2e-4
    actor_lr: float = 5e-4
    value_lr: float = 5e-4
    actor_weight_decay: float = 1e-5  # hard-coded in init_optimizers
    capacity: int = 250_000  # time steps (each with all agents)
    min_buffer_size: int = 500
    model_epochs: int = 60  # world-model steps per learner call
    epochs: int = 4  # imagination rounds per learner call
    ppo_epochs: int = 5
    model_batch_size: int = 40  # sequences
    batch_size: int = 40  # sequences whose posteriors start imagination
    seq_length: int = 20
    horizon: int = 15
    ppo_minibatch: int = 2000  # hard-coded in train_agent
    ppo_clip: float = 0.2  # hard-coded in ppo_loss
    gamma: float = 0.99
    lam: float = 0.95  # DISCOUNT_LAMBDA
    entropy: float = 0.001
    entropy_annealing: float = 0.99998  # per PPO minibatch
    grad_clip: float = 100.0
    grad_clip_policy: float = 100.0
    kl_balance: float = 0.2  # hard-coded in state_divergence_loss
    # architecture switches (what distinguishes the three algorithms)
    communication: bool = False  # MAMBA: transformer over agents before each GRU step, also when acting
    global_level: bool = False  # MABL: the global recurrent model and latent
    critic_features: str = "agent"  # agent | all (agent+global) | global
    heads_use_global: bool = False  # pcont and available-action heads read the global features too
    # An experiment, in no official build and no preset: the reward head reads [agent; global] features, so
    # that MABL's reward model sees the joint action through h^g (docs/reports/cpu_learning.md).
    reward_uses_global: bool = False
    actor_init: str = "orthogonal"
    # speed only: replay the learner's steps as CUDA graphs on a GPU (same computation as eager)
    cuda_graphs: bool = True
    # float32 matrix products in TF32 on Ampere and later GPUs, as the official code ran them: its pin
    # torch~=1.7.0 allowed TF32 by default (torch 1.7-1.11 did; 1.12 turned it off). No effect on CPU.
    tf32: bool = True
    # per family (FAMILY_DEFAULTS)
    normalise_advantage: bool = True
    target_critic: bool = False
    per_agent_done: bool = False

    PRESETS: ClassVar[dict[str, dict]] = {}
    POSITIVE: ClassVar[tuple[str, ...]] = (
        "num_envs", "hidden", "model_hidden", "embed", "state_embed", "n_categoricals", "n_classes", "deterministic",
        "head_layers", "head_hidden", "capacity", "model_batch_size", "batch_size", "horizon", "ppo_minibatch",
        "ppo_epochs", "attention_heads", "communication_layers", "model_epochs", "epochs", "model_lr", "actor_lr",
        "value_lr", "ppo_clip", "grad_clip", "grad_clip_policy", "learner_calls_per_episode")
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ("min_buffer_size", "actor_weight_decay", "entropy")
    UNIT_INTERVAL: ClassVar[tuple[str, ...]] = ("communication_dropout", "gamma", "lam", "entropy_annealing",
                                                "kl_balance")

    def __post_init__(self):
        super().__post_init__()
        if self.seq_length < 3:
            raise UsageError(f"{self.ALGORITHM} config: seq_length must be at least 3 (the losses drop two steps), "
                             f"got {self.seq_length}")
        if self.horizon < 2:
            raise UsageError(f"{self.ALGORITHM} config: horizon must be at least 2, got {self.horizon}")
        if self.capacity < self.num_envs * (self.seq_length + 2):
            raise UsageError(f"{self.ALGORITHM} config: capacity {self.capacity} cannot hold one sequence of "
                             f"{self.seq_length} steps per environment ({self.num_envs} environments)")
        if self.critic_features not in CRITIC_FEATURES:
            raise UsageError(f"{self.ALGORITHM} config: critic_features must be one of {', '.join(CRITIC_FEATURES)}")
        if not self.global_level and (self.critic_features != "agent" or self.heads_use_global
                                      or self.reward_uses_global):
            raise UsageError(f"{self.ALGORITHM} config: critic_features={self.critic_features!r}, "
                             f"heads_use_global={self.heads_use_global} and reward_uses_global="
                             f"{self.reward_uses_global} need global_level=True")
        if self.actor_init not in ACTOR_INITS:
            raise UsageError(f"{self.ALGORITHM} config: actor_init must be one of {', '.join(ACTOR_INITS)}")
        for width in ("model_hidden", "hidden"):
            if getattr(self, width) % self.attention_heads:
                raise UsageError(f"{self.ALGORITHM} config: {width}={getattr(self, width)} must be divisible by "
                                 f"attention_heads={self.attention_heads}")

    @property
    def stochastic(self) -> int:
        return self.n_categoricals * self.n_classes

    @property
    def feat(self) -> int:
        """Features of one level: [z (stochastic); h (deterministic)]."""
        return self.stochastic + self.deterministic

    @classmethod
    def preset_names(cls) -> list[str]:
        return ["paper", *sorted(cls.PRESETS)]

    @classmethod
    def preset(cls, name: str, spec: EnvSpec) -> WorldModelConfig:
        """``paper`` picks ``paper_<family>``; a family-specific preset on another family is refused."""
        if spec.family not in FAMILY_DEFAULTS:
            raise UsageError(f"{cls.ALGORITHM} has no settings for the {spec.family} family; "
                             f"supported: {', '.join(FAMILY_DEFAULTS)}")
        key = f"paper_{spec.family}" if name == "paper" else name
        if key not in cls.PRESETS:
            raise cls.unknown_preset(name)
        family = key.removeprefix("paper_") if key.startswith("paper_") else None
        if family is not None and family != spec.family:
            raise UsageError(f"{cls.ALGORITHM} preset {name!r} is for {family} tasks, but {spec.task} is a "
                             f"{spec.family} task; use 'paper' (or 'paper_{spec.family}')")
        return cls(**{**FAMILY_DEFAULTS[spec.family], **cls.PRESETS[key]})


# CI-sized networks and schedule, shared by all three algorithms. Too few world-model steps per policy round to
# learn SMAC: the policy stops attacking before the model has learned that attacks earn reward (docs/reports/cpu_learning.md).
TINY = dict(num_envs=4, hidden=32, model_hidden=32, embed=32, state_embed=32, n_categoricals=8, n_classes=8,
            deterministic=32, head_hidden=32, capacity=20_000, min_buffer_size=200, model_epochs=2, epochs=1,
            ppo_epochs=2, model_batch_size=8, batch_size=8, seq_length=10, horizon=5, ppo_minibatch=256,
            model_lr=1e-3, actor_lr=5e-4, value_lr=1e-3)
# Learning on a CPU: tiny's networks with the official proportion of 15 world-model steps (60 / 4) per policy
# round, on 16 sequences of the official 20 steps; MAMBA learns to attack on smac/3m within 5k steps
# (docs/reports/cpu_learning.md).
SMALL = dict(TINY, model_epochs=15, model_batch_size=16, seq_length=20)
