"""The agent of MAMBA, MABL and MABL's single-level ablation: a world model and an imagined actor-critic.

The three differ only in their config (``presets/mamba.py``, ``presets/mabl.py``): MAMBA
communicates through a transformer, MABL adds a global latent level above each agent's, the ablation drops
it. Each job has its file: acting and collection (``acting.py``), the world-model step
(``model_learning.py``), behaviour learning in imagination (``behaviour.py``), the divergence guard
(``divergence.py``); this class wires them and keeps the official schedule (jbr-ai-labs/mamba@2c97258
``agent/learners/DreamerLearner.py``, aravindvenu7/MABL@9327343).

Schedule: after every finished episode (``learner_calls_per_episode`` = 1), once the replay holds
``min_buffer_size`` steps, one learner call = ``model_epochs`` world-model steps (a fresh batch each),
then ``epochs`` policy rounds (``ImaginedActorCritic.round``, each on a fresh batch). With one environment
this is the official schedule exactly; with B environments episodes finish B times as often per collection
step, so the learner calls per environment step, 1 / episode length, stay the official ratio.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from algorithms.base import Algorithm, Transition
from algorithms.cuda_graphs import GraphedStep
from algorithms.world_model.acting import DecentralisedPolicy, store
from algorithms.world_model.behaviour import ImaginedActorCritic
from algorithms.world_model.config import WorldModelConfig
from algorithms.world_model.divergence import DivergenceGuard
from algorithms.world_model.model_learning import WorldModelLearner
from algorithms.world_model.networks import Actor, AttentionCritic, initialise
from algorithms.world_model.replay import SequenceReplay
from algorithms.world_model.rssm import WorldModel


@contextmanager
def matmul_precision(tf32: bool):
    """Float32 matrix products (and convolutions) on CUDA in TF32 or in full precision within the block;
    the process-wide setting is restored afterwards, so other algorithms in the process keep theirs."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class WorldModelAgent(Algorithm):
    def __init__(self, spec, config: WorldModelConfig, device="cpu"):
        super().__init__(spec, config, device)
        cfg, n, a = config, spec.n_agents, spec.n_actions
        # The official code learns an available-action head for SMAC only (``ENV_TYPE == STARCRAFT``): tasks
        # whose actions become unavailable. Acting masks actions only where the head exists.
        self.model = WorldModel(cfg, spec.obs_dim, spec.state_dim, n, a, spec.action_masks).to(self.device)
        critic_dim = 2 * cfg.feat if cfg.critic_features == "all" else cfg.feat
        self.actor = Actor(cfg.feat, a, cfg.head_hidden, cfg.head_layers).to(self.device)
        self.critic = AttentionCritic(critic_dim, cfg.hidden, n, cfg.attention_heads).to(self.device)
        initialise(self.model, "xavier")
        initialise(self.actor, cfg.actor_init)
        initialise(self.critic, "xavier")
        self.model.eval()  # dropout (MAMBA's transformer) only while training the world model

        self.guard = DivergenceGuard(self.device)
        self.world_model = WorldModelLearner(self.model, cfg, self.guard)
        self.behaviour = ImaginedActorCritic(self.model, self.actor, self.critic, spec, cfg, self.guard)
        self.policy = DecentralisedPolicy(self.model, self.actor, spec, cfg)
        self.replay = SequenceReplay(cfg.capacity, cfg.num_envs, n, spec.obs_dim, spec.state_dim, a, cfg.seq_length,
                                     self.device)
        self.episode_credit = 0.0
        self.learner_calls = 0
        graphs = cfg.cuda_graphs and self.device.type == "cuda"
        pool = torch.cuda.graph_pool_handle() if graphs else None  # the two steps take turns, never overlap
        self._model_graph = GraphedStep(lambda: self.world_model.step(self.replay.sample(cfg.model_batch_size)),
                                        graphs, pool=pool)
        self._policy_graph = GraphedStep(lambda: self.behaviour.round(self.replay.sample(cfg.batch_size)), graphs,
                                         pool=pool)

    # ------------------------------------------------------------------ acting and collection
    def initial_memory(self, num_envs: int) -> torch.Tensor:
        return self.policy.initial_memory(num_envs, self.device)

    def act(self, obs, avail_actions, memory, first, explore=True, neighbours=None):
        with matmul_precision(self.config.tf32):
            actions, memory = self.policy.act(obs, avail_actions, memory, first, explore, neighbours)
        return actions, memory, {}

    def observe(self, transition: Transition) -> None:
        store(self.replay, transition, self.config.per_agent_done)
        self.episode_credit += int(transition.done.sum()) * self.config.learner_calls_per_episode

    # ------------------------------------------------------------------ learning, on the official schedule
    def update(self) -> dict[str, float]:
        calls = self.due_calls()
        if calls == 0:
            return {}
        for _ in range(calls):
            self.learner_call()
        return self.collect_metrics()

    def due_calls(self) -> int:
        """The learner calls owed now, one per episode finished since the last (the credit is spent), or 0 while
        the replay holds fewer than ``min_buffer_size`` steps or no whole sequence."""
        calls = int(self.episode_credit)
        if calls == 0:
            return 0
        self.episode_credit -= calls
        if len(self.replay) < self.config.min_buffer_size or not self.replay.ready():
            return 0
        return calls

    def learner_call(self) -> None:
        """``model_epochs`` world-model steps, then ``epochs`` policy rounds; replays CUDA graphs of both on a
        GPU (``cuda_graphs``), and syncs with the host once, to check for divergence."""
        with matmul_precision(self.config.tf32):
            self.train_model()
            self.train_policy()
        self.learner_calls += 1
        self.guard.check(self._current(), self.learner_calls)

    def train_model(self) -> None:
        self.model.train()
        for _ in range(self.config.model_epochs):
            self.guard.watch(self._model_graph())
        self.model.eval()

    def train_policy(self) -> None:
        for _ in range(self.config.epochs):
            self.guard.watch(self._policy_graph())

    def _current(self) -> dict[str, torch.Tensor]:
        return {"train/entropy_weight": self.behaviour.entropy_weight}

    def collect_metrics(self) -> dict[str, float]:
        """Means over the learner calls since the last report, with a single host sync."""
        return {**self.guard.report(self._current()), "train/learner_calls": float(self.learner_calls)}

    @classmethod
    def member_batch(cls, members, draws):
        from algorithms.world_model.members import WorldModelMembers  # it builds on this module

        return WorldModelMembers(members, draws)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self):
        return {
            "model": self.model.state_dict(), "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "model_opt": self.world_model.optimiser.state_dict(), **self.behaviour.state_dict(),
            "replay": self.replay.state_dict(), "episode_credit": self.episode_credit,
            "learner_calls": self.learner_calls,
        }

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.world_model.optimiser.load_state_dict(state["model_opt"])
        self.behaviour.load_state_dict(state)
        self.replay.load_state_dict(state["replay"])
        self.episode_credit, self.learner_calls = state["episode_credit"], state["learner_calls"]
        self.reset_graphs()

    def reset_graphs(self) -> None:
        """Recapture the learner's CUDA graphs at the next call: the optimisers' state tensors were replaced."""
        self._model_graph.reset()
        self._policy_graph.reset()
