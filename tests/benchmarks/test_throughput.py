"""pytest-benchmark: simulator and Flatland stepping, a MAPPO update and a world-model learner update
(`tox -e bench`)."""
import pytest
import torch

from algorithms import make_algorithm, make_config
from tests.helpers import simulator


@pytest.mark.parametrize("name", ["3s5z_vs_3s6z", "27m_vs_30m"])
@pytest.mark.parametrize("checked,compile", [(True, False), (False, False), (True, True), (False, True)])
def test_simulator_step(benchmark, name, checked, compile):
    env = simulator(name, num_envs=512, seed=0, checked=checked, compile=compile)
    g = torch.Generator().manual_seed(0)
    state = {"step": env.reset()}
    for _ in range(40 if compile else 0):  # compile the step and, once battles end, the restart
        avail = state["step"].avail_actions
        state["step"] = env.step(torch.rand(avail.shape, generator=g).masked_fill(~avail, -1).argmax(-1))

    def step():
        avail = state["step"].avail_actions
        state["step"] = env.step(torch.rand(avail.shape, generator=g).masked_fill(~avail, -1).argmax(-1))

    benchmark(step)
    assert state["step"].obs.shape[0] == 512


@pytest.mark.parametrize("workers", [1, 2])
def test_flatland_step(benchmark, workers):
    import envs

    env = envs.make("flatland/5_agents", num_envs=4, seed=0, workers=workers, checked=False)
    g = torch.Generator().manual_seed(0)
    state = {"step": env.reset()}

    def step():
        avail = state["step"].avail_actions
        state["step"] = env.step(torch.rand(avail.shape, generator=g).masked_fill(~avail, -1).argmax(-1))

    try:
        benchmark.pedantic(step, rounds=50, iterations=1)
    finally:
        env.close()
    assert state["step"].obs.shape == (4, 5, 205)


def test_mappo_tiny_update(benchmark):
    from algorithms import Transition

    env = simulator("3m", num_envs=8, seed=0, checked=False)
    algo = make_algorithm("mappo", env.spec, make_config("mappo", env.spec, "tiny"))
    step = env.reset()
    memory, first = algo.initial_memory(8), torch.ones(8, dtype=torch.bool)

    def collect_and_update():
        nonlocal step, memory, first
        for _ in range(algo.config.episode_length):
            actions, memory, extras = algo.act(step.obs, step.avail_actions, memory, first)
            next_step = env.step(actions)
            algo.observe(Transition.between(step, first, actions, next_step, extras))
            step, first = next_step, next_step.done
        return algo.update()

    metrics = benchmark.pedantic(collect_and_update, rounds=3, iterations=1)
    assert "train/policy_loss" in metrics


@pytest.mark.parametrize("name", ["mamba", "mabl"])
def test_world_model_tiny_learner_update(benchmark, name):
    from suites.checks.learner_benchmark import fill_replay

    env = simulator("3s5z_vs_3s6z", num_envs=1, seed=0)
    algo = make_algorithm(name, env.spec, make_config(name, env.spec, "tiny"))
    fill_replay(algo, 2_000)

    def update():
        algo.learner_call()
        return algo.collect_metrics()

    metrics = benchmark.pedantic(update, rounds=3, iterations=1)
    assert "train/model_loss" in metrics
