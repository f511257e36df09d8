"""The world models' seed members as one computation (``algorithms/members.py``): MAMBA, MABL and the ablation.

Acting: one call of the decentralised policy per step for all members. Learning keeps the official schedule
(``agent.py``): a member owes a learner call after each of its finished episodes, which never fall on the
same step for two members. So a member whose call is due waits (its environments held still) until every
running member's is due; then the calls run together, each world-model step and each policy round one
vectorised computation over the members' stacked networks, with each member's own replayed batch, random
draws (from its own generator, in its solo order), gradient clipping, Adam moments and step count, entropy
weight and divergence check. A member's series is therefore its solo series (bit for bit on the CPU, to
float rounding on a GPU), whatever the others do; only when its computing happens changes.

The whole call, and acting, compute on the members' stacked parameters directly, without ``vmap``: each
time step's layers one batched product for all members (``algorithms/layers.py``), each loss, imagined return
and advantage normalisation a per-member reduction (the ``members`` forms of ``model_loss``, ``imagine_batch``,
``actor_loss`` and ``value_loss``), one Adam kernel over every member's slices (``StackedAdam``). On the CPU
each of these gives a member its solo run's numbers bit for bit, so a member's series is its solo run's, and
a member left alone simply makes its solo call. That costs less per operation than ``vmap``
(docs/performance.md has the measurements).
"""
from __future__ import annotations

from functools import partial

import torch

from algorithms import sampling
from algorithms.base import Divergence
from algorithms.members import WAITING, MemberBatch, Networks, StackedAdam, StackedNetworks, clip_members, own_generators, take
from algorithms.world_model.agent import WorldModelAgent, matmul_precision
from algorithms.world_model.behaviour import add_ppo_metrics, ppo_means
from algorithms.world_model.losses import model_loss


def _learner_networks(m: WorldModelAgent) -> Networks:
    target = m.behaviour.target_critic
    return Networks(model=m.model, actor=m.actor, critic=m.critic, **({} if target is None else {"target": target}))


def step_members(optimiser: StackedAdam, params: list[torch.Tensor], loss: torch.Tensor, clip: float,
                 finite: torch.Tensor) -> torch.Tensor:
    """``DivergenceGuard.step`` for all members: backward (member k's loss reaches its slice only), each
    member's own clipping, one Adam step; returns the gradient norms ``[K]`` and marks the non-finite."""
    optimiser.zero_grad()
    loss.sum().backward()
    norm = clip_members(params, clip)
    finite &= torch.isfinite(loss.detach() + norm)
    optimiser.step()
    return norm


class WorldModelMembers(MemberBatch):
    def __init__(self, members: list[WorldModelAgent], draws):
        super().__init__(draws)
        self.members, self.template = members, members[0]
        self.config, self.device = self.template.config, self.template.device
        self.owed = [0] * len(members)  # learner calls each waiting member owes
        self._stack_acting()

    def _stack_acting(self) -> None:
        """The modules the policy acts with, stacked (again, after the members learnt)."""
        def acting(m: WorldModelAgent) -> Networks:
            model = m.model
            parts = dict(encoder=model.observation_encoder, agent=model.agent, posterior=model.agent_posterior,
                         actor=m.actor)
            return Networks(**parts, **({} if model.communication is None else {"communication": model.communication}))

        self.acting = StackedNetworks([acting(m) for m in self.members])

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, obs, avail_actions, memory, first, neighbours=None, held=frozenset()):
        """``WorldModelAgent.act`` of every member; members in ``held`` compute along (their slices cost little)
        but draw from a scratch generator, and get None."""
        acting = [k for k in range(len(self.members)) if k not in held]

        def policy(obs, avail_actions, memory, first, neighbours):
            return self.template.policy.act(obs, avail_actions, memory, first, True, neighbours)

        with own_generators([self.draws[k] for k in acting], self.device) as own, matmul_precision(self.config.tf32):
            generators = [own[acting.index(k)] if k in acting else torch.Generator(self.device)
                          for k in range(len(self.members))]
            actions, next_memory = self.acting.call(policy, obs, avail_actions, memory, first, neighbours,
                                                    generators=generators)
        return [None if k in held else (actions[k], next_memory[k], {}) for k in range(len(self.members))]

    # ------------------------------------------------------------------ learning
    def observe_and_update(self, transitions):
        outcomes = []
        for k, (m, transition, draw) in enumerate(zip(self.members, transitions, self.draws)):
            if transition is None:
                outcomes.append(None)
                continue
            with draw():  # absorbing entries draw a random action
                m.observe(transition)
            self.owed[k] = m.due_calls()
            outcomes.append(WAITING if self.owed[k] else {})
        return outcomes

    def update_waiting(self):
        """The owed learner calls of the waiting members, together: round r computes every member that owes
        more than r calls (with one environment per member, the official set-up, one round)."""
        diverged: dict[int, Divergence] = {}
        for r in range(max(self.owed)):
            self._learner_call([k for k, owed in enumerate(self.owed) if owed > r and k not in diverged], diverged)
        outcomes = [None if not owed else diverged.get(k) or self.members[k].collect_metrics()
                    for k, owed in enumerate(self.owed)]
        self.owed = [0] * len(self.members)
        self._stack_acting()
        return outcomes

    def _learner_call(self, which: list[int], diverged: dict[int, Divergence]) -> None:
        """One ``WorldModelAgent.learner_call`` for each of ``which``; a member whose numbers stop being finite
        joins ``diverged`` with the error its solo run raises, and keeps its modules as they were. A member
        alone on the CPU makes its solo call, which computes the same numbers as its slice of a stacked call,
        with none of the stacking."""
        if len(which) == 1 and self.device.type == "cpu":
            k = which[0]
            with self.draws[k]():
                try:
                    self.members[k].learner_call()
                except Divergence as err:
                    diverged[k] = err
            return
        members, cfg = [self.members[k] for k in which], self.config
        template = members[0]  # the vectorised calls run its methods
        nets = StackedNetworks([_learner_networks(m) for m in members])
        model_opt = StackedAdam([m.world_model.optimiser for m in members], nets.parameters("model"))
        watched: list[dict[str, torch.Tensor]] = []
        finite = torch.ones(len(members), dtype=torch.bool, device=self.device)
        entropy = torch.stack([m.behaviour.entropy_weight for m in members])
        with own_generators([self.draws[k] for k in which], self.device) as generators, \
                matmul_precision(cfg.tf32):
            template.model.train()
            for _ in range(cfg.model_epochs):
                batch = self._replayed(members, generators, cfg.model_batch_size)
                loss, parts = nets.call(partial(model_loss, template.model, members=True), batch, modules=("model",),
                                        generators=generators)
                norm = step_members(model_opt, nets.parameters("model"), loss, cfg.grad_clip, finite)
                watched.append({**{f"train/{k}": v.detach() for k, v in parts.items()},
                                "train/model_loss": loss.detach(), "train/model_grad_norm": norm})
            template.model.eval()
            policy = PolicyRounds(template, nets, members, entropy, finite)
            for _ in range(cfg.epochs):
                batch = self._replayed(members, generators, cfg.batch_size)
                flat, adv, imagined = nets.call(partial(template.behaviour.imagine_batch, members=True), batch,
                                                generators=generators)
                watched.append({**imagined, **policy.ppo(flat, adv, generators)})
        self._conclude(which, members, nets, [model_opt, policy.actor_opt, policy.critic_opt], entropy, watched,
                       finite, diverged)

    @staticmethod
    def _replayed(members: list[WorldModelAgent], generators, size: int) -> dict[str, torch.Tensor]:
        """Each member's fresh batch from its own replay, drawn from its own generator; stacked."""
        batches = []
        for m, generator in zip(members, generators):
            with sampling.drawing_from(generator):
                batches.append(m.replay.sample(size))
        return {k: torch.stack([b[k] for b in batches]) for k in batches[0]}

    def _conclude(self, which, members, nets, optimisers, entropy, watched, finite, diverged) -> None:
        """Each member's guard reads its slice of what was watched (one host read per member, as solo), its
        learner-call count goes up, and the healthy members take what they learnt."""
        finite = finite.tolist()
        healthy = []
        for i, (k, m) in enumerate(zip(which, members)):
            for values in watched:
                m.guard.watch({name: v[i] for name, v in values.items()})
            if not finite[i]:
                m.guard.skip_updates.fill_(1.0)
            m.learner_calls += 1
            try:
                m.guard.check({"train/entropy_weight": entropy[i]}, m.learner_calls)
            except Divergence as err:
                diverged[k] = err
                continue
            healthy.append(i)
        nets.write_back(healthy)
        for optimiser in optimisers:
            optimiser.write_back(healthy)
        for i in healthy:
            members[i].behaviour.entropy_weight.copy_(entropy[i])
            members[i].reset_graphs()


class PolicyRounds:
    """``ImaginedActorCritic.ppo`` for several members: each PPO minibatch step one vectorised computation, with
    each member's own minibatch order, entropy weight (annealed per step), clipping and Adam moments."""

    def __init__(self, template: WorldModelAgent, nets: StackedNetworks, members: list[WorldModelAgent],
                 entropy: torch.Tensor, finite: torch.Tensor):
        self.behaviour, self.config, self.nets = template.behaviour, template.config, nets
        self.entropy, self.finite = entropy, finite
        self.actor_opt = StackedAdam([m.behaviour.actor_opt for m in members], nets.parameters("actor"))
        self.critic_opt = StackedAdam([m.behaviour.critic_opt for m in members], nets.parameters("critic"))
        self.target = nets.parameters("target")

    def ppo(self, flat: dict[str, torch.Tensor], adv: torch.Tensor, generators) -> dict[str, torch.Tensor]:
        cfg, nets = self.config, self.nets
        samples, sums = adv.shape[1], {}
        for _ in range(cfg.ppo_epochs):
            with sampling.members(generators):
                order = sampling.permutation(samples, adv.device)
            for idx in order.split(cfg.ppo_minibatch, dim=1):
                minibatch = {k: take(v, idx, 1) for k, v in flat.items()}
                loss, entropy = nets.call(partial(self.behaviour.actor_loss, members=True), minibatch,
                                          take(adv, idx, 1), self.entropy, modules=("actor",))
                actor_norm = step_members(self.actor_opt, nets.parameters("actor"), loss, cfg.grad_clip_policy,
                                          self.finite)
                self.entropy.mul_(cfg.entropy_annealing)
                value_loss = nets.call(partial(self.behaviour.value_loss, members=True), minibatch, modules=("critic",))
                value_norm = step_members(self.critic_opt, nets.parameters("critic"), value_loss,
                                          cfg.grad_clip_policy, self.finite)
                if self.target:  # TARGET_UPDATE = 1: copied after every update
                    with torch.no_grad():
                        torch._foreach_copy_(self.target, nets.parameters("critic"))
                add_ppo_metrics(sums, loss, value_loss, entropy, actor_norm, value_norm)
        return ppo_means(sums, cfg, samples)
