"""Seed members computed as one (algorithms/members.py and each agent's member batch): one update of
members together equals their solo updates, for MAPPO and the world models, in float64 and float32."""
import copy
import dataclasses
from contextlib import contextmanager

import pytest
import torch

import envs


def _assert_adam_states_equal(pairs: dict) -> None:
    """Each (members' optimiser, solo optimiser) pair: the same steps, the same moments, bit for bit."""
    for label, (mine, theirs) in pairs.items():
        mine, theirs = mine.state_dict()["state"], theirs.state_dict()["state"]
        assert mine.keys() == theirs.keys()
        for i in mine:
            assert mine[i]["step"] == theirs[i]["step"]
            for moment in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(mine[i][moment], theirs[i][moment]), (label, moment)


def _cast(step, dtype):
    def cast(value):
        return value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    tensors = {f.name: cast(getattr(step, f.name)) for f in dataclasses.fields(step)
               if isinstance(getattr(step, f.name), torch.Tensor)}
    return dataclasses.replace(step, **tensors, info={k: cast(v) for k, v in step.info.items()})  # Flatland's agent_reward


@pytest.mark.parametrize("task, recurrent", [("smac/3m", True), ("smac/3m", False), ("flatland/2_agents", True)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batched_update", [True, False])
def test_one_mappo_update_of_members_together_equals_their_solo_updates(task, recurrent, dtype, batched_update):
    """Same weights, same transitions, same minibatch orders: after one update every member's networks, value
    normaliser, Adam moments and metrics are its solo copy's, bit for bit, with the update computed as one or
    member by member (the members' layers, losses and Adam steps compute each member's solo numbers:
    ``algorithms/layers.py``, ``StackedAdam``)."""
    from algorithms import make_algorithm, make_config
    from algorithms.base import Transition
    from algorithms.mappo.members import MAPPOMembers

    env = envs.make(task, 8, seed=0, backend="sim", checked=False)
    config = dataclasses.replace(make_config("mappo", env.spec, "tiny"), recurrent=recurrent)
    step, first = _cast(env.reset(), dtype), torch.ones(8, dtype=torch.bool)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        members = []
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            members.append(make_algorithm("mappo", env.spec, config))
        solo = copy.deepcopy(members)
        draws_from = {}

        @contextmanager
        def same_draws():  # every member draws its minibatch orders from one state, as each solo update will
            if draws_from:
                torch.set_rng_state(draws_from["state"])
            yield

        batch = MAPPOMembers(members, [same_draws] * 3)
        batch.batched_update = batched_update
        memory = torch.stack([m.initial_memory(8) for m in members])
        for _ in range(config.episode_length):
            moves = batch.act(*(torch.stack([x] * 3) for x in (step.obs, step.avail_actions)), memory,
                              torch.stack([first] * 3))
            torch.set_default_dtype(torch.float32)  # the simulator's own
            next_step = _cast(env.step(moves[0][0]), dtype)
            torch.set_default_dtype(dtype)
            transitions = [Transition.between(step, first, a, next_step, extras) for a, _, extras in moves]
            draws_from["state"] = torch.get_rng_state()
            metrics = batch.observe_and_update(transitions)
            for own, transition in zip(solo, transitions):
                own.observe(transition)
            step, first, memory = next_step, next_step.done, torch.stack([m for _, m, _ in moves])
        solo_metrics = []
        for own in solo:
            torch.set_rng_state(draws_from["state"])
            solo_metrics.append(own.update())
    finally:
        torch.set_default_dtype(default)
    for together, own, m_together, m_own in zip(members, solo, metrics, solo_metrics):
        assert m_together == m_own
        for module in ("actor", "critic", "value_norm"):
            theirs = getattr(own, module).state_dict()
            for name, value in getattr(together, module).state_dict().items():
                assert value.dtype == theirs[name].dtype
                assert torch.equal(value, theirs[name]), (module, name)
        # the optimisers' moments were handed back too: a checkpoint continues from them
        _assert_adam_states_equal({opt: (getattr(together, opt), getattr(own, opt)) for opt in ("actor_opt", "critic_opt")})


@pytest.mark.parametrize("task, algorithm", [("smac/3m", "mamba"), ("smac/3m", "mabl"), ("smac/3m", "mabl_single_level"),
                                             ("flatland/2_agents", "mamba")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_one_world_model_learner_call_of_members_together_equals_their_solo_calls(task, algorithm, dtype):
    """Same weights, same transitions, same generator states: members acting together pick their solo copies'
    actions with their recurrent states, and after one learner call (world-model steps with MAMBA's dropout or
    MABL's global level, then a policy round in imagination) every member's networks, Adam moments and step
    counts, entropy weight and metrics are its solo copy's, bit for bit (the members' layers, losses, advantage
    normalisation and Adam steps compute each member's solo numbers: ``algorithms/layers.py``,
    ``StackedAdam``)."""
    from algorithms import make_algorithm, make_config
    from algorithms.base import Transition
    from algorithms.members import WAITING
    from algorithms.world_model.members import WorldModelMembers

    env = envs.make(task, 2, seed=0, backend="sim", checked=False)
    config = dataclasses.replace(make_config(algorithm, env.spec, "tiny"), num_envs=2, min_buffer_size=40)
    step, first = _cast(env.reset(), dtype), torch.ones(2, dtype=torch.bool)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        def made(seed):  # the agent's learner steps close over it: copies are made, not deep-copied
            torch.manual_seed(seed)
            return make_algorithm(algorithm, env.spec, config)

        members, solo = [made(seed) for seed in (0, 1, 2)], [made(seed) for seed in (0, 1, 2)]
        drawn, states = {}, {}

        def draws(k):  # every member starts from one state at each call below, as its solo copy will
            @contextmanager
            def draw():
                torch.set_rng_state(states.get(k, drawn["state"]))
                yield
                states[k] = torch.get_rng_state()
            return draw

        batch = WorldModelMembers(members, [draws(k) for k in range(3)])
        memory = torch.stack([m.initial_memory(2) for m in members])
        solo_memory = [m.initial_memory(2) for m in solo]
        outcomes = []
        while WAITING not in outcomes:
            drawn["state"] = torch.get_rng_state()
            states.clear()
            moves = batch.act(*(torch.stack([x] * 3) for x in (step.obs, step.avail_actions)), memory,
                              torch.stack([first] * 3))
            for k, own in enumerate(solo):
                torch.set_rng_state(drawn["state"])
                actions, solo_memory[k], _ = own.act(step.obs, step.avail_actions, solo_memory[k], first)
                assert torch.equal(actions, moves[k][0])
                assert torch.equal(solo_memory[k], moves[k][1])
            torch.set_default_dtype(torch.float32)  # the simulator's own
            next_step = _cast(env.step(moves[0][0]), dtype)
            torch.set_default_dtype(dtype)
            transitions = [Transition.between(step, first, a, next_step, extras) for a, _, extras in moves]
            drawn["state"] = torch.get_rng_state()
            states.clear()
            outcomes = batch.observe_and_update(transitions)
            for own, transition in zip(solo, transitions):
                torch.set_rng_state(drawn["state"])
                own.observe(transition)
            step, first, memory = next_step, next_step.done, torch.stack([m for _, m, _ in moves])
        assert outcomes == [WAITING] * 3
        drawn["state"] = torch.get_rng_state()
        states.clear()
        metrics = batch.update_waiting()
        solo_metrics = []
        for own in solo:
            torch.set_rng_state(drawn["state"])
            solo_metrics.append(own.update())
    finally:
        torch.set_default_dtype(default)
    for together, own, m_together, m_own in zip(members, solo, metrics, solo_metrics):
        assert m_together == m_own
        for module in ("model", "actor", "critic"):
            theirs = getattr(own, module).state_dict()
            for name, value in getattr(together, module).state_dict().items():
                assert value.dtype == theirs[name].dtype and torch.equal(value, theirs[name]), (module, name)
        _assert_adam_states_equal({"model": (together.world_model.optimiser, own.world_model.optimiser),
                                   "actor": (together.behaviour.actor_opt, own.behaviour.actor_opt),
                                   "critic": (together.behaviour.critic_opt, own.behaviour.critic_opt)})
        assert float(together.behaviour.entropy_weight) == float(own.behaviour.entropy_weight)


@pytest.mark.parametrize("algorithm", ["mamba", "mabl"])
def test_a_lone_world_model_member_learns_bit_for_bit_as_beside_another(algorithm):
    """A member left alone in a group (the others finished their budgets or diverged) computes as a group of
    one: its learner call gives bit for bit what it gives beside another member, so a member's numbers never
    depend on when the others stopped."""
    from algorithms import make_algorithm, make_config
    from algorithms.world_model.members import WorldModelMembers
    from suites.checks.learner_benchmark import fill_replay

    spec = envs.env_spec("smac/3m", "sim")

    def draws(seed):  # the member's own generator state, carried from draw to draw
        state = {"rng": torch.Generator().manual_seed(100 + seed).get_state()}

        @contextmanager
        def draw():
            saved = torch.get_rng_state()
            torch.set_rng_state(state["rng"])
            yield
            state["rng"] = torch.get_rng_state()
            torch.set_rng_state(saved)
        return draw

    def learnt(seeds):
        members = []
        for seed in seeds:
            torch.manual_seed(seed)
            members.append(make_algorithm(algorithm, spec, make_config(algorithm, spec, "tiny", {"capacity": 2_000})))
            fill_replay(members[-1], 600)
        group = WorldModelMembers(members, [draws(seed) for seed in seeds])
        group.owed = [1] * len(seeds)
        group.update_waiting()
        return members[0]

    alone, beside = learnt([0]), learnt([0, 1])
    for module in ("model", "actor", "critic"):
        theirs = getattr(beside, module).state_dict()
        for name, value in getattr(alone, module).state_dict().items():
            assert torch.equal(value, theirs[name]), (module, name)
    for optimiser in (lambda m: m.world_model.optimiser, lambda m: m.behaviour.actor_opt, lambda m: m.behaviour.critic_opt):
        mine, theirs = optimiser(alone).state_dict()["state"], optimiser(beside).state_dict()["state"]
        assert all(torch.equal(mine[i]["exp_avg_sq"], theirs[i]["exp_avg_sq"]) for i in mine)
