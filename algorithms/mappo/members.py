"""MAPPO's seed members as one computation (``algorithms/members.py``): one actor call per step for all
members, one critic call per collection step, and one PPO minibatch step for all, with each member's own
minibatch order, value normaliser, clipping and Adam moments. Members collect on the same schedule (a
rollout of ``episode_length`` steps), so their updates coincide.

Every call computes on the members' stacked parameters (the ``members`` forms of ``MAPPO.policy``, ``value``,
``training_data`` and ``losses``, through ``algorithms/layers.py``), and each member gets its solo run's
numbers, bit for bit on the CPU: a member's series is its solo run's."""
from __future__ import annotations

from functools import partial

import torch

from algorithms.base import Divergence
from algorithms.mappo.agent import LOSSES, MAPPO
from algorithms.mappo.networks import action_distribution
from algorithms.members import MemberBatch, Networks, StackedAdam, StackedNetworks, clip_members, diverged_members, take

# On a CPU, one update for all members pays while a member's minibatch is small: the vectorised call's own
# cost per operation is then the larger part. Past about this many values per hidden layer (minibatch rows x
# hidden size) each member's update runs on its own (measured crossover: docs/performance.md).
CPU_BATCHED_UPDATE_VALUES = 2**18


class MAPPOMembers(MemberBatch):
    def __init__(self, members: list[MAPPO], draws):
        super().__init__(draws)
        self.members, self.template = members, members[0]
        cfg, spec = self.template.config, self.template.spec
        rows = cfg.episode_length * cfg.num_envs * spec.n_agents // cfg.num_mini_batch
        self.batched_update = (self.template.device.type != "cpu"
                               or rows * cfg.hidden_size <= CPU_BATCHED_UPDATE_VALUES)
        self._stack()

    def _stack(self) -> None:
        """Stack the members' modules and optimiser states (again, after they learnt each on its own)."""
        members = self.members
        self.nets = StackedNetworks([Networks(actor=m.actor, critic=m.critic, value_norm=m.value_norm) for m in members])
        self.actor_opt = StackedAdam([m.actor_opt for m in members], self.nets.parameters("actor"))
        self.critic_opt = StackedAdam([m.critic_opt for m in members], self.nets.parameters("critic"))

    @staticmethod
    def fits(members: list[MAPPO]) -> bool:
        """Members can be computed as one when their rollouts are equally far along: always, unless they resumed
        from checkpoints of different runs' progress."""
        return len({len(m.rollout) for m in members}) == 1

    @torch.no_grad()
    def act(self, obs, avail_actions, memory, first, neighbours=None, held=frozenset()):
        """``MAPPO.act`` of every member; each member's actions are drawn from its own generators, as
        ``Categorical.sample`` draws them (one multinomial over its rows)."""
        logits, h_next, h = self.nets.call(partial(self.template.policy, members=True), obs, avail_actions, memory, first,
                                           modules=("actor",))
        dist = action_distribution(logits)
        rows = dist.probs.flatten(1, -2)
        actions = []
        for k, draw in enumerate(self.draws):
            with draw():
                actions.append(torch.multinomial(rows[k], 1, True))
        actions = torch.stack(actions).view(logits.shape[:-1])
        log_prob = dist.log_prob(actions)
        return [(actions[k], h_next[k].clone(), {"log_prob": log_prob[k], "actor_h": h[k].clone()})
                for k in range(len(self.draws))]

    def observe_and_update(self, transitions):
        def stacked(name: str) -> torch.Tensor:
            return torch.stack([getattr(transition, name) for transition in transitions])

        critic_h = torch.stack([m.critic_memory(transition.state.shape[0]) for m, transition in zip(self.members, transitions)])
        value_of = partial(self.template.value, members=True)
        critic_input, value, h, h_next = self.nets.call(value_of, stacked("state"), stacked("first"), critic_h,
                                                        modules=("critic",))
        full = [m.store(transition, critic_input[k], value[k], h[k], h_next[k].clone())
                for k, (m, transition) in enumerate(zip(self.members, transitions))]
        if not all(full):  # the rollouts fill together (``fits``)
            return [{} for _ in self.members]
        bootstrap = self.nets.call(value_of, stacked("next_state"), stacked("done"), h_next, modules=("critic",))[1]
        for m, b in zip(self.members, bootstrap):
            m.bootstrap = b
        return self.update() if self.batched_update else self._update_one_by_one()

    def _update_one_by_one(self) -> list[dict[str, float] | Exception]:
        outcomes = []
        for m, draw in zip(self.members, self.draws):
            with draw():
                try:
                    outcomes.append(m.update())
                except Divergence as err:
                    outcomes.append(err)
        self._stack()
        return outcomes

    def update(self) -> list[dict[str, float] | Exception]:
        """``MAPPO.update`` for every member: the same minibatch orders (drawn from each member's generators, in
        the solo order), losses and metrics; a member that diverges keeps its modules as they were."""
        cfg = self.template.config
        rollouts = [m.take_rollout() for m in self.members]
        data = {key: torch.stack([d[key] for d, _ in rollouts]) for key in rollouts[0][0]}
        with torch.no_grad():
            series, h0 = self.nets.call(partial(self.template.training_data, members=True), data,
                                        torch.stack([b for _, b in rollouts]), modules=("value_norm",))
        chunks = h0["actor_h"].shape[1]
        orders = []
        for draw in self.draws:
            with draw():
                orders.append([torch.randperm(chunks, device=self.template.device) for _ in range(cfg.ppo_epoch)])
        totals: dict[str, torch.Tensor] = {}
        diverged: dict[int, Exception] = {}
        for epoch in range(cfg.ppo_epoch):
            for idx in torch.stack([order[epoch] for order in orders]).chunk(cfg.num_mini_batch, dim=1):
                out = self._ppo_step({k: take(v, idx, 2) for k, v in series.items()},
                                     {k: take(v, idx, 1) for k, v in h0.items()}, diverged)
                for k, v in out.items():
                    totals[k] = totals.get(k, 0.0) + v
        healthy = [k for k in range(len(self.members)) if k not in diverged]
        self.nets.write_back(healthy)
        self.actor_opt.write_back(healthy)
        self.critic_opt.write_back(healthy)
        steps = cfg.ppo_epoch * cfg.num_mini_batch
        per_member = {name: (total / steps).tolist() for name, total in totals.items()}
        return [diverged.get(k) or {name: values[k] for name, values in per_member.items()}
                for k in range(len(self.members))]

    def _ppo_step(self, mb, h0, diverged: dict[int, Exception]) -> dict[str, torch.Tensor]:
        """``MAPPO._ppo_step`` for all members; members whose numbers stop being finite join ``diverged``."""
        cfg = self.template.config
        out = self.nets.call(partial(self.template.losses, members=True), mb, h0)
        self.actor_opt.zero_grad()
        self.critic_opt.zero_grad()
        out["train/actor_loss"].sum().backward()  # member k's loss reaches member k's slice only
        (out["train/value_loss"] * cfg.value_loss_coef).sum().backward()
        out = {k: v.detach() for k, v in out.items()}
        grad_actor = clip_members(self.nets.parameters("actor"), cfg.max_grad_norm)
        grad_critic = clip_members(self.nets.parameters("critic"), cfg.max_grad_norm)
        for k, err in diverged_members({k: out[k] for k in LOSSES}, {"actor": grad_actor, "critic": grad_critic}).items():
            diverged.setdefault(k, err)
        self.actor_opt.step()
        self.critic_opt.step()
        return {**out, "train/actor_grad_norm": grad_actor, "train/critic_grad_norm": grad_critic}
