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

import torch
import torch.nn.functional as F

from algorithms.base import Algorithm, Transition, check_finite
from algorithms.world_model.config import WorldModelConfig
from algorithms.world_model.losses import (
    lambda_returns,
    masked_logits,
    model_loss,
    next_features,
    normalise_advantage,
    ppo_actor_loss,
)
from algorithms.world_model.networks import Actor, AttentionCritic, initialise
from algorithms.world_model.replay import SequenceReplay
from algorithms.world_model.rssm import ModelState, WorldModel


class WorldModelAgent(Algorithm):
    def __init__(self, spec, config: WorldModelConfig, device="cpu"):
        super().__init__(spec, config, device)
        cfg, n, a = config, spec.n_agents, spec.n_actions
        # The official code learns an available-action head for SMAC only (``ENV_TYPE == STARCRAFT``).
        self.model = WorldModel(cfg, spec.obs_dim, spec.state_dim, n, a, spec.family == "smac").to(self.device)
        critic_dim = 2 * cfg.feat if cfg.critic_features == "all" else cfg.feat
        self.actor = Actor(cfg.feat, a, cfg.head_hidden, cfg.head_layers).to(self.device)
        self.critic = AttentionCritic(critic_dim, cfg.hidden, n, cfg.attention_heads).to(self.device)
        initialise(self.model, "xavier")
        initialise(self.actor, cfg.actor_init)
        initialise(self.critic, "xavier")
        self.model.eval()  # dropout (MAMBA's transformer) only while training the world model
        self.target_critic = copy.deepcopy(self.critic) if cfg.target_critic else None
        self.model_opt = torch.optim.Adam(self.model.parameters(), lr=cfg.model_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.actor_weight_decay)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.value_lr)
        self.replay = SequenceReplay(cfg.capacity, cfg.num_envs, n, spec.obs_dim, spec.state_dim, a, cfg.seq_length,
                                     self.device)
        self.entropy_weight = cfg.entropy
        self.episode_credit = 0.0
        self.learner_calls = 0
        self._watched: list[tuple[str, torch.Tensor]] = []

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
        read nothing but the agent's own inputs."""
        cfg = self.config
        memory = memory * (~first).float().view(-1, 1, 1)
        deter, stoch, prev_action = memory.split([cfg.deterministic, cfg.stochastic, self.spec.n_actions], -1)
        mask = None
        if neighbours is not None and self.model.communication is not None:
            mask = ~(neighbours | torch.eye(self.spec.n_agents, dtype=torch.bool, device=neighbours.device))
        deter = self.model.agent_deter(prev_action, stoch, deter, mask)
        post = self.model.agent_posterior_latent(deter, self.model.observation_encoder(obs))
        logits = masked_logits(self.actor(post.features()), avail_actions)
        actions = torch.distributions.Categorical(logits=logits).sample() if explore else logits.argmax(-1)
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
        if len(self.replay) < self.config.min_buffer_size:
            return {}
        for _ in range(calls):
            self._learner_call()
        return self._collect_metrics()

    # ------------------------------------------------------------------ learning
    def _learner_call(self) -> None:
        cfg = self.config
        self.model.train()
        for _ in range(cfg.model_epochs):
            loss, parts = model_loss(self.model, self.replay.sample(cfg.model_batch_size))
            parts = {f"train/{k}": v for k, v in parts.items()}
            self._step(self.model_opt, self.model, loss, cfg.grad_clip, "train/model_loss", parts)
            self._watch(parts)
        self.model.eval()
        for _ in range(cfg.epochs):
            self._train_policy(self.replay.sample(cfg.batch_size))
        self.learner_calls += 1

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
                avail = model.avail_dist(model.head_features(state)).sample().bool()
                logits = masked_logits(logits, avail)
            action = torch.distributions.Categorical(logits=logits).sample()
            states.append(state)
            actions.append(action)
            avails.append(avail)
            logits_seq.append(logits)
            if t < cfg.horizon - 1:  # the official code's final transition is never read
                state = model.transition(F.one_hot(action, self.spec.n_actions).float(), state)
        traj = ModelState.stack(states)
        reward = model.reward_model(next_features(traj, False)).mean(-2, keepdim=True)
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

    def _train_policy(self, batch: dict[str, torch.Tensor]) -> None:
        cfg, n = self.config, self.spec.n_agents
        with torch.no_grad():
            _, post = self.model.observe_sequence(batch["obs"], batch["state"], batch["action"], batch["last"])
            start = post.map(lambda x: x[:-1].reshape(-1, n, x.shape[-1]))
            imagined = self.imagine(start)
            self._watch({"train/imagined_return": imagined["returns"].mean(),
                         "train/imagined_reward": imagined["reward"].mean()})
            flat = {k: v.reshape(-1, n, v.shape[-1]) for k, v in imagined.items() if k != "reward"}
            adv = flat["returns"] - self.critic(flat["critic_feat"])
            if cfg.normalise_advantage:
                adv = normalise_advantage(adv)
        samples = adv.shape[0]
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(samples, device=self.device)
            for idx in order.split(cfg.ppo_minibatch):
                logits = masked_logits(self.actor(flat["agent_feat"][idx]), flat["avail"][idx] if "avail" in flat else None)
                loss, entropy = ppo_actor_loss(logits, flat["old_logits"][idx], flat["action"][idx], adv[idx],
                                               self.entropy_weight, cfg.ppo_clip)
                self._step(self.actor_opt, self.actor, loss, cfg.grad_clip_policy, "train/actor_loss")
                self.entropy_weight *= cfg.entropy_annealing
                value_loss = ((flat["returns"][idx] - self.critic(flat["critic_feat"][idx])) ** 2 / 2).mean()
                self._step(self.critic_opt, self.critic, value_loss, cfg.grad_clip_policy, "train/value_loss")
                self._watch({"train/entropy": entropy})
                if self.target_critic is not None:  # TARGET_UPDATE = 1: copied after every update
                    self.target_critic.load_state_dict(self.critic.state_dict())

    def _step(self, optimiser, module, loss, clip, name, parts: dict[str, torch.Tensor] | None = None) -> None:
        """Backward, clip, step; a non-finite loss (named by its term in ``parts``) or gradient stops here,
        before a NaN can reach the parameters or the samplers."""
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        check_finite({**(parts or {}), name: loss}, {name: norm})
        optimiser.step()
        self._watch({name: loss.detach()})

    def _watch(self, values: dict[str, torch.Tensor]) -> None:
        self._watched.extend((k, v.detach()) for k, v in values.items())

    def _collect_metrics(self) -> dict[str, float]:
        """Means over the learner calls since the last report, with a single host sync."""
        names = [k for k, _ in self._watched]
        values = torch.stack([v.float() for _, v in self._watched]).tolist()
        self._watched.clear()
        sums: dict[str, list[float]] = {}
        for name, value in zip(names, values):
            sums.setdefault(name, []).append(value)
        metrics = {k: sum(v) / len(v) for k, v in sums.items()}
        metrics["train/entropy_weight"] = self.entropy_weight
        metrics["train/learner_calls"] = float(self.learner_calls)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self):
        return {
            "model": self.model.state_dict(), "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "target_critic": None if self.target_critic is None else self.target_critic.state_dict(),
            "model_opt": self.model_opt.state_dict(), "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(), "replay": self.replay.state_dict(),
            "entropy_weight": self.entropy_weight, "episode_credit": self.episode_credit,
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
        self.entropy_weight, self.episode_credit = state["entropy_weight"], state["episode_credit"]
        self.learner_calls = state["learner_calls"]
