"""Behaviour learning in imagination: the actor and critic trained with PPO on trajectories the world model
imagines from replayed posteriors.

After jbr-ai-labs/mamba@2c97258 ``agent/optim/loss.py`` (actor_rollout, critic_rollout),
``networks/dreamer/rnns.py`` (rollout_policy) and ``agent/learners/DreamerLearner.py`` (the PPO loop), and
the MABL counterparts in aravindvenu7/MABL@9327343 ``mabl/``. One round = imagine ``horizon`` steps from a
fresh batch's posteriors with the current actor, then ``ppo_epochs`` PPO epochs over minibatches of
``ppo_minibatch`` samples."""
from __future__ import annotations

import copy

import torch

from algorithms.layers import one_hot, softmax
from algorithms.sampling import bernoulli, permutation, sample_index
from algorithms.world_model.config import WorldModelConfig
from algorithms.world_model.divergence import DivergenceGuard
from algorithms.world_model.losses import (
    lambda_returns,
    masked_logits,
    member_mean,
    next_features,
    normalise_advantage,
    ppo_actor_loss,
    time_slice,
)
from algorithms.world_model.networks import Actor, AttentionCritic
from algorithms.world_model.rssm import ModelState, WorldModel
from envs.spec import EnvSpec


def add_ppo_metrics(sums: dict, actor_loss, value_loss, entropy, actor_grad_norm, value_grad_norm) -> None:
    """One PPO minibatch's metrics added to ``sums`` (``train/<name>``; tensors, no host read)."""
    for name, value in (("actor_loss", actor_loss), ("value_loss", value_loss), ("entropy", entropy),
                        ("actor_grad_norm", actor_grad_norm), ("value_grad_norm", value_grad_norm)):
        sums[f"train/{name}"] = sums.get(f"train/{name}", 0.0) + value.detach()


def ppo_means(sums: dict, cfg, samples: int) -> dict:
    """The means over a learner call's PPO minibatches (``ppo_epochs`` passes over ``samples`` imagined samples)."""
    count = cfg.ppo_epochs * -(-samples // cfg.ppo_minibatch)
    return {name: total / count for name, total in sums.items()}


class ImaginedActorCritic:
    def __init__(self, model: WorldModel, actor: Actor, critic: AttentionCritic, spec: EnvSpec,
                 config: WorldModelConfig, guard: DivergenceGuard):
        self.model, self.actor, self.critic, self.spec = model, actor, critic, spec
        self.config, self.guard = config, guard
        self.target_critic = copy.deepcopy(critic) if config.target_critic else None
        self.actor_opt = guard.adam(actor.parameters(), lr=config.actor_lr, weight_decay=config.actor_weight_decay)
        self.critic_opt = guard.adam(critic.parameters(), lr=config.value_lr)
        self.entropy_weight = torch.tensor(config.entropy, device=guard.device)  # annealed in place, inside the graphs

    def critic_input(self, state: ModelState) -> torch.Tensor:
        features = self.config.critic_features
        if features == "agent":
            return state.agent.features()
        return state.features() if features == "all" else state.glob.features()

    @torch.no_grad()
    def imagine(self, start: ModelState, members: bool = False) -> dict[str, torch.Tensor]:
        """``rollout_policy`` + ``critic_rollout``: ``horizon`` prior steps from ``start`` ``[S, N, ...]`` with
        the current actor, imagined team reward (agent mean), per-agent pcont discount, TD(lambda) returns.
        Nothing here carries gradients (the official FreezeParameters and detach). ``members``: K seed
        members' starts ``[K, S, N, ...]`` on their stacked parameters; the trajectories ``[K, T, ...]``."""
        cfg, model = self.config, self.model
        t = 1 if members else 0  # the time axis of the trajectories

        def steps(x: torch.Tensor) -> torch.Tensor:  # all steps but the last
            return time_slice(x, None, -1, t)

        state, states, actions, avails, logits_seq = start, [], [], [], []
        for step in range(cfg.horizon):
            logits = self.actor(state.agent.features())
            avail = None
            if model.av_action is not None:
                avail = bernoulli(torch.sigmoid(model.av_action(model.head_features(state)))).bool()
                logits = masked_logits(logits, avail)
            action = sample_index(softmax(logits))
            states.append(state.without_logits())
            actions.append(action)
            avails.append(avail)
            logits_seq.append(logits)
            if step < cfg.horizon - 1:  # the official code's final transition is never read
                state = model.transition(one_hot(action, self.spec.n_actions), state)
        traj = ModelState.stack(states, t)
        states.clear()  # memory: the per-step tensors are copied into traj
        reward = model.reward_model(next_features(traj, cfg.reward_uses_global, t)).mean(-2, keepdim=True)
        discount = torch.sigmoid(model.pcont(next_features(traj, cfg.heads_use_global, t)))
        bootstrap_critic = self.target_critic if self.target_critic is not None else self.critic
        critic_feat = self.critic_input(traj)
        value = bootstrap_critic(critic_feat)
        returns = lambda_returns(reward, steps(value), discount, value.select(t, -1), cfg.lam, cfg.gamma, t)
        out = {"agent_feat": steps(traj.agent.features()), "critic_feat": steps(critic_feat),
               "action": torch.stack(actions[:-1], t).unsqueeze(-1), "old_logits": torch.stack(logits_seq[:-1], t),
               "returns": returns, "reward": reward}
        if model.av_action is not None:
            out["avail"] = torch.stack(avails[:-1], t)
        return out

    def round(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Imagine from ``batch``'s posteriors, then ``ppo_epochs`` PPO epochs on the result."""
        flat, adv, watched = self.imagine_batch(batch)
        return {**watched, **self.ppo(flat, adv)}

    @torch.no_grad()
    def imagine_batch(self, batch: dict[str, torch.Tensor], members: bool = False):
        """Imagined samples flattened to ``[S, N, ...]``, their advantages under the current critic, and the
        imagined return and reward. ``members``: K seed members' batches ``[K, T, ...]`` on their stacked
        parameters (``algorithms/world_model/members.py``); samples ``[K, S, N, ...]``, means per member."""
        n, t = self.spec.n_agents, 1 if members else 0
        lead = batch["obs"].shape[:1] if members else ()
        _, post = self.model.observe_sequence(batch["obs"], batch["state"], batch["action"], batch["last"], t)
        start = post.map(lambda x: time_slice(x, None, -1, t).reshape(*lead, -1, n, x.shape[-1]))
        imagined = self.imagine(start, members)
        k = lead[0] if members else None
        watched = {"train/imagined_return": member_mean(imagined["returns"], k),
                   "train/imagined_reward": member_mean(imagined["reward"], k)}
        flat = {name: v.reshape(*lead, -1, n, v.shape[-1]) for name, v in imagined.items() if name != "reward"}
        adv = flat["returns"] - self.critic(flat["critic_feat"])
        return flat, normalise_advantage(adv, members) if self.config.normalise_advantage else adv, watched

    def ppo(self, flat: dict[str, torch.Tensor], adv: torch.Tensor) -> dict[str, torch.Tensor]:
        """PPO epochs over shuffled minibatches; returns the means over the minibatches."""
        cfg = self.config
        samples, sums = adv.shape[0], {}
        for _ in range(cfg.ppo_epochs):
            order = permutation(samples, adv.device)
            for idx in order.split(cfg.ppo_minibatch):
                minibatch = {k: v[idx] for k, v in flat.items()}
                loss, entropy = self.actor_loss(minibatch, adv[idx], self.entropy_weight)
                actor_norm = self.guard.step(self.actor_opt, self.actor, loss, cfg.grad_clip_policy)
                self.entropy_weight.mul_(cfg.entropy_annealing)
                value_loss = self.value_loss(minibatch)
                value_norm = self.guard.step(self.critic_opt, self.critic, value_loss, cfg.grad_clip_policy)
                if self.target_critic is not None:  # TARGET_UPDATE = 1: copied after every update
                    with torch.no_grad():
                        torch._foreach_copy_(list(self.target_critic.parameters()), list(self.critic.parameters()))
                add_ppo_metrics(sums, loss, value_loss, entropy, actor_norm, value_norm)
        return ppo_means(sums, cfg, samples)

    def actor_loss(self, minibatch: dict[str, torch.Tensor], adv: torch.Tensor,
                   entropy_weight: torch.Tensor, members: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The clipped PPO loss of one minibatch of imagined samples, and the policy's mean entropy
        (``members``: K seed members' minibatches ``[K, ...]`` on their stacked parameters, each one's own)."""
        logits = masked_logits(self.actor(minibatch["agent_feat"]), minibatch.get("avail"))
        return ppo_actor_loss(logits, minibatch["old_logits"], minibatch["action"], adv, entropy_weight,
                              self.config.ppo_clip, members)

    def value_loss(self, minibatch: dict[str, torch.Tensor], members: bool = False) -> torch.Tensor:
        error = (minibatch["returns"] - self.critic(minibatch["critic_feat"])) ** 2 / 2
        return member_mean(error, error.shape[0] if members else None)

    def state_dict(self) -> dict:
        return {"target_critic": None if self.target_critic is None else self.target_critic.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "entropy_weight": float(self.entropy_weight)}

    def load_state_dict(self, state: dict) -> None:
        if self.target_critic is not None:
            self.target_critic.load_state_dict(state["target_critic"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.entropy_weight.fill_(state["entropy_weight"])
