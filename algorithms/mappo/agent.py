"""MAPPO / rMAPPO (Yu et al. 2022), following marlbenchmark/on-policy:
``onpolicy/algorithms/r_mappo/r_mappo.py`` (training), ``onpolicy/utils/shared_buffer.py`` (GAE,
recurrent chunk generator), ``onpolicy/runner/shared/smac_runner.py`` (collection, active masks).

Shared actor over agents; centralised critic over the global state; both optionally recurrent.
Values are computed in ``observe`` (the centralised side), so ``act`` never touches the global state.

``members`` (in ``policy``, ``value``, ``training_data`` and ``losses``): K seed members' inputs ``[K, ...]`` on
their stacked parameters (``algorithms/mappo/members.py``), each member's numbers its solo run's.
"""
from __future__ import annotations

import torch
from torch import nn

from algorithms.base import Algorithm, Transition, check_finite
from algorithms.layers import per_member
from algorithms.mappo.config import MAPPOConfig
from algorithms.mappo.losses import masked_mean, policy_loss, value_loss
from algorithms.mappo.networks import Actor, Critic, ValueNorm, action_distribution

LOSSES = ("train/policy_loss", "train/value_loss", "train/entropy", "train/actor_loss")  # checked for divergence
_STORED = ("obs", "critic_input", "avail", "active", "actor_h", "critic_h", "first", "actions", "log_prob", "value",
           "reward", "done")


def sample_actions(logits, h_next, h, explore: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Actions drawn from (or, greedily, the mode of: on-policy's ``dist.mode()``) the masked logits, with what
    training needs of the step: each action's log-probability and the memory the actor started from."""
    dist = action_distribution(logits)
    actions = dist.sample() if explore else dist.probs.argmax(-1)
    return actions, h_next, {"log_prob": dist.log_prob(actions), "actor_h": h}


def time_chunks(x: torch.Tensor, length: int, time_axis: int = 0) -> torch.Tensor:
    """``[T, B, N, ...]`` -> ``[length, C, ...]``: C = T / length * B * N chunks of consecutive steps, ordered by
    time chunk, then environment, then agent (on-policy's generator orders them by environment, agent, time).
    ``time_axis`` 1: seed members' ``[K, T, B, N, ...]`` -> ``[K, length, C, ...]``."""
    lead, (steps, b, n), rest = x.shape[:time_axis], x.shape[time_axis:time_axis + 3], x.shape[time_axis + 3:]
    x = x.reshape(*lead, steps // length, length, b * n, *rest).transpose(time_axis, time_axis + 1)
    return x.reshape(*lead, length, steps // length * b * n, *rest)


class MAPPO(Algorithm):
    def __init__(self, spec, config: MAPPOConfig, device="cpu"):
        super().__init__(spec, config, device)
        n, cfg = spec.n_agents, config
        if cfg.recurrent and cfg.episode_length % cfg.data_chunk_length:
            raise ValueError("episode_length must be a multiple of data_chunk_length for rMAPPO")
        self.ids = torch.eye(n, device=self.device) if cfg.agent_id else torch.zeros(n, 0, device=self.device)
        self.actor = Actor(spec.obs_dim + self.ids.shape[1], spec.n_actions, cfg).to(self.device)
        self.critic = Critic(spec.state_dim + self.ids.shape[1], cfg).to(self.device)
        self.value_norm = ValueNorm().to(self.device)
        adam = dict(eps=cfg.opti_eps, weight_decay=cfg.weight_decay)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, **adam)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr, **adam)
        self.rollout: list[dict[str, torch.Tensor]] = []
        self.critic_h: torch.Tensor | None = None
        self.bootstrap: torch.Tensor | None = None

    # ------------------------------------------------------------------ acting (decentralised)
    def _with_ids(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., N, D]`` with each agent's one-hot id appended (when ``agent_id``)."""
        return torch.cat([x, self.ids.expand(*x.shape[:-1], -1)], -1)

    def initial_memory(self, num_envs: int) -> torch.Tensor:
        return torch.zeros(num_envs, self.spec.n_agents, self.config.hidden_size, device=self.device)

    def policy(self, obs, avail_actions, memory, first,
               members: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The actor on local inputs: masked logits ``[B,N,A]``, the next memory and the memory it started from
        (reset where an episode starts). No random draws, so seed members can compute it together."""
        lead = obs.shape[:1] if members else ()
        b, n = obs.shape[len(lead):len(lead) + 2]
        h = memory * (~first).float().view(*lead, b, 1, 1)
        x = self._with_ids(obs).reshape(*lead, 1, b * n, -1)
        ones = torch.ones(*lead, 1, b * n, device=self.device)
        logits, h_next = self.actor(x, h.reshape(*lead, b * n, -1), ones, avail_actions.reshape(*lead, 1, b * n, -1),
                                    len(lead))
        return logits.view(*lead, b, n, -1), h_next.view(*lead, b, n, -1), h

    @torch.no_grad()
    def act(self, obs, avail_actions, memory, first, explore=True, neighbours=None):
        return sample_actions(*self.policy(obs, avail_actions, memory, first), explore)

    # ------------------------------------------------------------------ collection (centralised)
    def critic_memory(self, num_envs: int) -> torch.Tensor:
        """The critic's recurrent state carried across collection steps (zeros before the first)."""
        if self.critic_h is None:
            self.critic_h = torch.zeros(num_envs * self.spec.n_agents, self.config.hidden_size, device=self.device)
        return self.critic_h

    @torch.no_grad()
    def value(self, state, first, critic_h,
              members: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Critic inputs, values ``[B,N]``, the memory they started from (reset where ``first``) and the next."""
        lead = state.shape[:1] if members else ()
        b, n = state.shape[len(lead)], self.spec.n_agents
        critic_input = self._with_ids(state.unsqueeze(-2).expand(*lead, b, n, -1))
        h = critic_h * (~first).float().repeat_interleave(n, -1).unsqueeze(-1)
        v, h_next = self.critic(critic_input.reshape(*lead, 1, b * n, -1), h,
                                torch.ones(*lead, 1, b * n, device=self.device), len(lead))
        return critic_input, v.view(*lead, b, n), h.view(*lead, b, n, -1), h_next

    def observe(self, transition: Transition) -> None:
        if self.store(transition, *self.value(transition.state, transition.first, self.critic_memory(transition.state.shape[0]))):
            self.bootstrap = self.value(transition.next_state, transition.done, self.critic_h)[1]

    def store(self, transition: Transition, critic_input, value, h, h_next) -> bool:
        """Append one step (its critic outputs computed by ``value``); True when the rollout is full and needs
        its bootstrap value."""
        self.critic_h = h_next
        t = transition
        self.rollout.append(dict(
            obs=t.obs, critic_input=critic_input, avail=t.avail_actions, active=t.alive.float(), actor_h=t.extras["actor_h"],
            critic_h=h, first=t.first, actions=t.actions, log_prob=t.extras["log_prob"], value=value, reward=t.reward,
            done=t.done,
        ))
        return len(self.rollout) == self.config.episode_length

    # ------------------------------------------------------------------ training
    def returns(self, data, bootstrap, time_axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """GAE(lambda) on denormalised values; episode ends (time limit included) are terminal."""
        cfg = self.config
        denorm = self.value_norm.denormalize if cfg.use_valuenorm else (lambda v: v)
        values = denorm(torch.cat([data["value"], bootstrap.unsqueeze(time_axis)], time_axis))
        reward = data["reward"].unsqueeze(-1)
        nonterminal = (~data["done"]).to(values.dtype).unsqueeze(-1)
        returns = []
        gae = torch.zeros_like(values.select(time_axis, 0))
        for t in reversed(range(cfg.episode_length)):
            value, next_value = values.select(time_axis, t), values.select(time_axis, t + 1)
            delta = reward.select(time_axis, t) + cfg.gamma * next_value * nonterminal.select(time_axis, t) - value
            gae = delta + cfg.gamma * cfg.gae_lambda * nonterminal.select(time_axis, t) * gae
            returns.append(gae + value)
        returns = torch.stack(returns[::-1], time_axis)
        return returns, returns - values.narrow(time_axis, 0, cfg.episode_length)

    def rollout_full(self) -> bool:
        return len(self.rollout) >= self.config.episode_length

    def take_rollout(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The full rollout ``[T, B, N, ...]`` and its bootstrap value; the rollout starts afresh."""
        data = {k: torch.stack([step[k] for step in self.rollout]) for k in _STORED}
        self.rollout.clear()
        return data, self.bootstrap

    def update(self) -> dict[str, float]:
        cfg = self.config
        if not self.rollout_full():
            return {}
        series, h0 = self.training_data(*self.take_rollout())
        chunks = h0["actor_h"].shape[0]
        totals: dict[str, torch.Tensor] = {}
        for _ in range(cfg.ppo_epoch):
            for idx in torch.randperm(chunks, device=self.device).chunk(cfg.num_mini_batch):
                for k, v in self._ppo_step({k: v[:, idx] for k, v in series.items()},
                                           {k: v[idx] for k, v in h0.items()}).items():
                    totals[k] = totals.get(k, 0.0) + v
        steps = cfg.ppo_epoch * cfg.num_mini_batch
        return {k: float(v) / steps for k, v in totals.items()}

    def training_data(self, data, bootstrap,
                      members: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Returns and normalised advantages, cut into chunks ``[L, C, ...]`` of consecutive steps (feed-forward
        MAPPO: chunks of length 1), with each chunk's starting actor and critic memory ``[C, H]``."""
        cfg = self.config
        t = 1 if members else 0  # the time axis
        returns, adv = self.returns(data, bootstrap, t)
        active = data["active"]
        broadcast = (lambda values: per_member(values, adv)) if members else (lambda value: value)  # noqa: E731
        mean = broadcast(masked_mean(adv, active, members))
        std = broadcast(masked_mean((adv - mean) ** 2, active, members)).sqrt()
        adv = (adv - mean) / (std + 1e-5)

        L = cfg.data_chunk_length if cfg.recurrent else 1
        chunked = lambda x: time_chunks(x, L, t)  # noqa: E731
        first = data["first"].unsqueeze(-1).expand(data["value"].shape)
        series = {k: chunked(v) for k, v in dict(
            obs=self._with_ids(data["obs"]), critic_input=data["critic_input"], avail=data["avail"], active=active,
            actions=data["actions"], log_prob=data["log_prob"], value=data["value"], returns=returns, adv=adv).items()}
        masks = chunked((~first).float())
        # chunk-start states are already reset
        series["masks"] = torch.cat([torch.ones_like(masks.narrow(t, 0, 1)), masks.narrow(t, 1, L - 1)], t)
        return series, {k: chunked(data[k]).select(t, 0) for k in ("actor_h", "critic_h")}

    def losses(self, mb: dict[str, torch.Tensor], h0: dict[str, torch.Tensor],
               members: bool = False) -> dict[str, torch.Tensor]:
        """The clipped surrogate with entropy bonus (``actor_loss``) and the value loss of one minibatch, with the
        statistics reported; updates the value normaliser with the minibatch's returns as on-policy does."""
        cfg = self.config
        t = 1 if members else 0  # the time axis
        dist = action_distribution(self.actor(mb["obs"], h0["actor_h"], mb["masks"], mb["avail"], t)[0])
        log_prob = dist.log_prob(mb["actions"])
        ones = torch.ones_like(mb["active"])
        pol = policy_loss(log_prob, mb["log_prob"], mb["adv"], cfg.clip_param,
                          mb["active"] if cfg.policy_active_masks else ones, members)
        entropy = masked_mean(dist.entropy(), mb["active"], members)
        values, _ = self.critic(mb["critic_input"], h0["critic_h"], mb["masks"], t)
        target = mb["returns"]
        if cfg.use_valuenorm:
            self.value_norm.update(target, members)
            target = self.value_norm.normalize(target)
        val = value_loss(values, mb["value"], target, cfg.clip_param, cfg.huber_delta, cfg.use_clipped_value_loss,
                         mb["active"] if cfg.value_active_masks else ones, members)
        ratio = torch.exp(log_prob.detach() - mb["log_prob"])
        return {"train/policy_loss": pol, "train/value_loss": val, "train/entropy": entropy,
                "train/actor_loss": pol - cfg.entropy_coef * entropy,
                "train/ratio": masked_mean(ratio, mb["active"], members)}

    def _ppo_step(self, mb: dict[str, torch.Tensor], h0: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        out = self.losses(mb, h0)
        self.actor_opt.zero_grad()
        out["train/actor_loss"].backward()
        self.critic_opt.zero_grad()
        (out["train/value_loss"] * cfg.value_loss_coef).backward()
        out = {k: v.detach() for k, v in out.items()}
        grad_actor = nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.max_grad_norm)
        grad_critic = nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
        check_finite({k: out[k] for k in LOSSES}, {"actor": grad_actor, "critic": grad_critic})
        self.actor_opt.step()
        self.critic_opt.step()
        return {**out, "train/actor_grad_norm": grad_actor, "train/critic_grad_norm": grad_critic}

    @classmethod
    def member_batch(cls, members, draws):
        from algorithms.mappo.members import MAPPOMembers  # it builds on this module

        return MAPPOMembers(members, draws) if MAPPOMembers.fits(members) else None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self):
        """Copies of the rollout's tensors: in a group they are slices of the members' batch, which a checkpoint
        would otherwise store whole."""
        def own(x):
            return None if x is None else x.clone()

        return {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "value_norm": self.value_norm.state_dict(), "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(), "rollout": [{k: own(v) for k, v in step.items()}
                                                                     for step in self.rollout],
            "critic_h": own(self.critic_h), "bootstrap": own(self.bootstrap),
        }

    def load_state_dict(self, state):
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.value_norm.load_state_dict(state["value_norm"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.rollout = list(state["rollout"])
        self.critic_h, self.bootstrap = state["critic_h"], state["bootstrap"]
