"""The learner and actor shared by MAMBA, MABL and MABL's single-level ablation.

After jbr-ai-labs/mamba@2c97258 ``agent/learners/DreamerLearner.py`` (schedule, optimisers, PPO loop),
``agent/optim/loss.py`` (actor_rollout, critic_rollout), ``networks/dreamer/rnns.py`` (rollout_policy),
``agent/controllers/DreamerController.py`` and ``agent/workers/DreamerWorker.py`` (acting, absorbing
states), and the MABL counterparts in aravindvenu7/MABL@9327343 ``mabl/``.

Schedule: after every finished episode (``learner_calls_per_episode`` = 1), once the replay holds
``min_buffer_size`` steps, one learner call = ``model_epochs`` world-model steps (a fresh batch each),
then ``epochs`` rounds of [imagination from a fresh batch's posteriors, ``ppo_epochs`` PPO epochs over
minibatches of ``ppo_minibatch`` samples]. With one environment this is the official schedule exactly;
with B environments episodes finish B times as often per collection step, so the learner calls per
environment step, 1 / episode length, stay the official ratio.
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from algorithms.base import Algorithm, Divergence, Transition
from algorithms.cuda_graphs import GraphedStep
from algorithms.world_model.config import WorldModelConfig
from algorithms.world_model.losses import (
    lambda_returns,
    masked_logits,
    model_loss,
    next_features,
    normalise_advantage,
    ppo_actor_loss,
)
from algorithms.world_model.networks import Actor, AttentionCritic, initialise, sample_index
from algorithms.world_model.replay import SequenceReplay
from algorithms.world_model.rssm import ModelState, WorldModel


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
        # The official code learns an available-action head for SMAC only (``ENV_TYPE == STARCRAFT``), and masks
        # unavailable actions when acting only there (see ``act``).
        self.availability_head = spec.action_masks
        self.model = WorldModel(cfg, spec.obs_dim, spec.state_dim, n, a, self.availability_head).to(self.device)
        critic_dim = 2 * cfg.feat if cfg.critic_features == "all" else cfg.feat
        self.actor = Actor(cfg.feat, a, cfg.head_hidden, cfg.head_layers).to(self.device)
        self.critic = AttentionCritic(critic_dim, cfg.hidden, n, cfg.attention_heads).to(self.device)
        initialise(self.model, "xavier")
        initialise(self.actor, cfg.actor_init)
        initialise(self.critic, "xavier")
        self.model.eval()  # dropout (MAMBA's transformer) only while training the world model
        self.target_critic = copy.deepcopy(self.critic) if cfg.target_critic else None
        # Fused Adam (one kernel per step; capturable in a CUDA graph) skips its update while ``found_inf`` is
        # set: the divergence guard below sets it without a host sync.
        adam = dict(fused=True, capturable=self.device.type == "cuda")
        self.model_opt = torch.optim.Adam(self.model.parameters(), lr=cfg.model_lr, **adam)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.actor_weight_decay,
                                          **adam)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.value_lr, **adam)
        # 1 once a loss or gradient was not finite; float32 whatever the default dtype, as fused Adam requires
        self._skip_updates = torch.zeros((), dtype=torch.float32, device=self.device)
        for optimiser in (self.model_opt, self.actor_opt, self.critic_opt):
            optimiser.found_inf = self._skip_updates
        self.replay = SequenceReplay(cfg.capacity, cfg.num_envs, n, spec.obs_dim, spec.state_dim, a, cfg.seq_length,
                                     self.device)
        self.entropy_weight = torch.tensor(cfg.entropy, device=self.device)  # annealed in place, inside the graphs
        self.episode_credit = 0.0
        self.learner_calls = 0
        self._watched: list[tuple[str, torch.Tensor]] = []
        graphs = cfg.cuda_graphs and self.device.type == "cuda"
        pool = torch.cuda.graph_pool_handle() if graphs else None  # the two steps take turns, never overlap
        self._model_graph = GraphedStep(self._model_step, graphs, pool=pool)
        self._policy_graph = GraphedStep(lambda: self._policy_round(self.replay.sample(cfg.batch_size)), graphs,
                                         pool=pool)

    # ------------------------------------------------------------------ acting (decentralised)
    def initial_memory(self, num_envs: int) -> torch.Tensor:
        cfg = self.config
        return torch.zeros(num_envs, self.spec.n_agents, cfg.deterministic + cfg.stochastic + self.spec.n_actions,
                           device=self.device)

    @torch.no_grad()
    def act(self, obs, avail_actions, memory, first, explore=True, neighbours=None):
        """Agent GRU on the agent's own previous action and latent, posterior on its own observation, actor on
        [z; h]. MAMBA's transformer mixes all agents' (previous action, latent) before the GRU: its agents
        exchange messages at execution, on Flatland only with the trains each one observes (``neighbours``,
        as jbr-ai-labs/mamba@2c97258 ``agent/workers/DreamerWorker.py`` masks them). MABL and the ablation
        read nothing but the agent's own inputs.

        Unavailable actions are masked only where the model has an available-action head (SMAC), as the
        official worker does (``_select_actions`` passes no mask on Flatland): there the policy chooses freely,
        the environment replaces a forced move by 0, and the replay keeps the chosen action, so the world model
        learns that such choices change nothing — which imagination, with no head to mask by, relies on."""
        with matmul_precision(self.config.tf32):
            return self._act(obs, avail_actions, memory, first, explore, neighbours)

    def _act(self, obs, avail_actions, memory, first, explore, neighbours):
        cfg = self.config
        memory = memory * (~first).float().view(-1, 1, 1)
        deter, stoch, prev_action = memory.split([cfg.deterministic, cfg.stochastic, self.spec.n_actions], -1)
        mask = None
        if neighbours is not None and self.model.communication is not None:
            mask = ~(neighbours | torch.eye(self.spec.n_agents, dtype=torch.bool, device=neighbours.device))
        deter = self.model.agent_deter(prev_action, stoch, deter, mask)
        post = self.model.agent_posterior_latent(deter, self.model.observation_encoder(obs))
        logits = masked_logits(self.actor(post.features()), avail_actions if self.availability_head else None)
        actions = sample_index(logits.softmax(-1)) if explore else logits.argmax(-1)
        next_memory = torch.cat([deter, post.stoch, F.one_hot(actions, self.spec.n_actions).float()], -1)
        return actions, next_memory, {}

    # ------------------------------------------------------------------ collection (centralised)
    def observe(self, tr: Transition) -> None:
        n = self.spec.n_agents
        if self.config.per_agent_done:  # Flatland: finished trains are absorbing ("fake") agents
            fake = ~tr.alive
            done = tr.done.unsqueeze(1) | ~tr.final_alive
        else:  # SMAC: team done for every agent, fake only in absorbing entries
            fake = torch.zeros_like(tr.alive)
            done = tr.done.unsqueeze(1).expand(-1, n)
        obs = tr.obs * (~fake).unsqueeze(-1).float()
        self.replay.add(obs, tr.state, tr.avail_actions, fake, tr.actions, tr.agent_reward, done, tr.done, tr.terminated)
        self.episode_credit += int(tr.done.sum()) * self.config.learner_calls_per_episode

    def update(self) -> dict[str, float]:
        calls = int(self.episode_credit)
        if calls == 0:
            return {}
        self.episode_credit -= calls
        if len(self.replay) < self.config.min_buffer_size or not self.replay.ready():
            return {}
        for _ in range(calls):
            self._learner_call()
        return self._collect_metrics()

    # ------------------------------------------------------------------ learning
    def _learner_call(self) -> None:
        """One learner call; replays CUDA graphs of its steps on a GPU (``cuda_graphs``), and syncs with the
        host once, to check for divergence."""
        with matmul_precision(self.config.tf32):
            self._train_model()
            self._train_policy()
        self.learner_calls += 1
        self._check_divergence()

    def _train_model(self) -> None:
        """``model_epochs`` world-model steps, each on a fresh batch of sequences."""
        self.model.train()
        for _ in range(self.config.model_epochs):
            self._watch(self._model_graph())
        self.model.eval()

    def _train_policy(self) -> None:
        """``epochs`` policy rounds, each imagining from a fresh batch's posteriors."""
        for _ in range(self.config.epochs):
            self._watch(self._policy_graph())

    def _model_step(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        loss, parts = model_loss(self.model, self.replay.sample(cfg.model_batch_size))
        norm = self._step(self.model_opt, self.model, loss, cfg.grad_clip)
        return {**{f"train/{k}": v.detach() for k, v in parts.items()}, "train/model_loss": loss.detach(),
                "train/model_grad_norm": norm}

    def critic_input(self, state: ModelState) -> torch.Tensor:
        features = self.config.critic_features
        if features == "agent":
            return state.agent.features()
        return state.features() if features == "all" else state.glob.features()

    @torch.no_grad()
    def imagine(self, start: ModelState) -> dict[str, torch.Tensor]:
        """``rollout_policy`` + ``critic_rollout``: ``horizon`` prior steps from ``start`` ``[S, N, ...]`` with
        the current actor, imagined team reward (agent mean), per-agent pcont discount, TD(lambda) returns.
        Nothing here carries gradients (the official FreezeParameters and detach)."""
        cfg, model = self.config, self.model
        state, states, actions, avails, logits_seq = start, [], [], [], []
        for t in range(cfg.horizon):
            logits = self.actor(state.agent.features())
            avail = None
            if model.av_action is not None:
                avail = torch.bernoulli(torch.sigmoid(model.av_action(model.head_features(state)))).bool()
                logits = masked_logits(logits, avail)
            action = sample_index(logits.softmax(-1))
            states.append(state.without_logits())
            actions.append(action)
            avails.append(avail)
            logits_seq.append(logits)
            if t < cfg.horizon - 1:  # the official code's final transition is never read
                state = model.transition(F.one_hot(action, self.spec.n_actions).float(), state)
        traj = ModelState.stack(states)
        states.clear()  # memory: the per-step tensors are copied into traj
        reward = model.reward_model(next_features(traj, cfg.reward_uses_global)).mean(-2, keepdim=True)
        discount = torch.sigmoid(model.pcont(next_features(traj, cfg.heads_use_global)))
        bootstrap_critic = self.target_critic if self.target_critic is not None else self.critic
        critic_feat = self.critic_input(traj)
        value = bootstrap_critic(critic_feat)
        returns = lambda_returns(reward, value[:-1], discount, value[-1], cfg.lam, cfg.gamma)
        out = {"agent_feat": traj.agent.features()[:-1], "critic_feat": critic_feat[:-1],
               "action": torch.stack(actions[:-1]).unsqueeze(-1), "old_logits": torch.stack(logits_seq[:-1]),
               "returns": returns, "reward": reward}
        if model.av_action is not None:
            out["avail"] = torch.stack(avails[:-1])
        return out

    def _policy_round(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Imagine from ``batch``'s posteriors, then ``ppo_epochs`` PPO epochs on the result."""
        flat, adv, watched = self._imagine_batch(batch)
        return {**watched, **self._ppo(flat, adv)}

    @torch.no_grad()
    def _imagine_batch(self, batch: dict[str, torch.Tensor]):
        """Imagined samples flattened to ``[S, N, ...]``, their advantages under the current critic, and the
        imagined return and reward."""
        n = self.spec.n_agents
        _, post = self.model.observe_sequence(batch["obs"], batch["state"], batch["action"], batch["last"])
        start = post.map(lambda x: x[:-1].reshape(-1, n, x.shape[-1]))
        imagined = self.imagine(start)
        watched = {"train/imagined_return": imagined["returns"].mean(), "train/imagined_reward": imagined["reward"].mean()}
        flat = {k: v.reshape(-1, n, v.shape[-1]) for k, v in imagined.items() if k != "reward"}
        adv = flat["returns"] - self.critic(flat["critic_feat"])
        return flat, normalise_advantage(adv) if self.config.normalise_advantage else adv, watched

    def _ppo(self, flat: dict[str, torch.Tensor], adv: torch.Tensor) -> dict[str, torch.Tensor]:
        """PPO epochs over shuffled minibatches; returns the means over the minibatches."""
        cfg = self.config
        samples, sums = adv.shape[0], {}
        for _ in range(cfg.ppo_epochs):
            order = torch.rand(samples, device=self.device).argsort()  # a random permutation (randperm syncs)
            for idx in order.split(cfg.ppo_minibatch):
                logits = masked_logits(self.actor(flat["agent_feat"][idx]), flat["avail"][idx] if "avail" in flat else None)
                loss, entropy = ppo_actor_loss(logits, flat["old_logits"][idx], flat["action"][idx], adv[idx],
                                               self.entropy_weight, cfg.ppo_clip)
                actor_norm = self._step(self.actor_opt, self.actor, loss, cfg.grad_clip_policy)
                self.entropy_weight.mul_(cfg.entropy_annealing)
                value_loss = ((flat["returns"][idx] - self.critic(flat["critic_feat"][idx])) ** 2 / 2).mean()
                value_norm = self._step(self.critic_opt, self.critic, value_loss, cfg.grad_clip_policy)
                if self.target_critic is not None:  # TARGET_UPDATE = 1: copied after every update
                    with torch.no_grad():
                        torch._foreach_copy_(list(self.target_critic.parameters()), list(self.critic.parameters()))
                for name, value in (("actor_loss", loss), ("value_loss", value_loss), ("entropy", entropy),
                                    ("actor_grad_norm", actor_norm), ("value_grad_norm", value_norm)):
                    sums[f"train/{name}"] = sums.get(f"train/{name}", 0.0) + value.detach()
        count = cfg.ppo_epochs * -(-samples // cfg.ppo_minibatch)
        return {name: total / count for name, total in sums.items()}

    def _step(self, optimiser, module, loss, clip) -> torch.Tensor:
        """Backward, clip, step; returns the gradient norm. No host sync: a non-finite loss or gradient sets
        ``_skip_updates``, which makes this and every later update a no-op (fused Adam's ``found_inf``), so a
        NaN never reaches the parameters; :meth:`_check_divergence` then stops the run."""
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        self._skip_updates.masked_fill_(~torch.isfinite(loss.detach() + norm), 1.0)
        optimiser.step()
        return norm

    def _watch(self, values: dict[str, torch.Tensor]) -> None:
        self._watched.extend((k, v.detach()) for k, v in values.items())

    def _check_divergence(self) -> None:
        """Raise :class:`Divergence` naming the first non-finite value watched since the last report."""
        if not bool(self._skip_updates):
            return
        name, value = next((n, v) for n, v in self._read_watched() if not math.isfinite(v))
        raise Divergence(f"{name!r} is not finite ({value}) in learner call {self.learner_calls}; "
                         "that update and all later ones were skipped")

    def _read_watched(self) -> list[tuple[str, float]]:
        """The values watched since the last report and the current entropy weight, in one host read."""
        names = [k for k, _ in self._watched] + ["train/entropy_weight"]
        return list(zip(names, torch.stack([v.float() for _, v in self._watched] + [self.entropy_weight]).tolist()))

    def _collect_metrics(self) -> dict[str, float]:
        """Means over the learner calls since the last report, with a single host sync."""
        *watched, (_, entropy_weight) = self._read_watched()
        self._watched.clear()
        sums: dict[str, list[float]] = {}
        for name, value in watched:
            sums.setdefault(name, []).append(value)
        metrics = {k: sum(v) / len(v) for k, v in sums.items()}
        metrics["train/entropy_weight"] = entropy_weight
        metrics["train/learner_calls"] = float(self.learner_calls)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self):
        return {
            "model": self.model.state_dict(), "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "target_critic": None if self.target_critic is None else self.target_critic.state_dict(),
            "model_opt": self.model_opt.state_dict(), "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(), "replay": self.replay.state_dict(),
            "entropy_weight": float(self.entropy_weight), "episode_credit": self.episode_credit,
            "learner_calls": self.learner_calls,
        }

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        if self.target_critic is not None:
            self.target_critic.load_state_dict(state["target_critic"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.replay.load_state_dict(state["replay"])
        self.entropy_weight.fill_(state["entropy_weight"])
        self.episode_credit, self.learner_calls = state["episode_credit"], state["learner_calls"]
        self._model_graph.reset()  # the optimisers' state tensors were replaced
        self._policy_graph.reset()
