"""The scripted SMAC baselines: each agent acts on its own observation, deterministically per seed, focus
fire and attack-nearest pick as named, a medivac heals, a baseline runs as a suite run, and Flatland is refused."""


import pytest
import torch

import envs
from algorithms import make_algorithm, make_config
from algorithms.scripted.policies import POLICIES
from envs import UsageError
from envs.flatland.tasks import TASKS
from envs.smac.tactical_view import ObservationDecoder
from tests.helpers import place, simulator


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_scripted_baselines_act_from_each_agents_own_observation(name):
    env = simulator("3s5z_vs_3s6z", num_envs=4, seed=1)
    algo = make_algorithm(name, env.spec, make_config(name, env.spec, "paper"))
    step = env.reset()
    for _ in range(10):  # into contact, so attacks are available
        step = env.step(algo.act(step.obs, step.avail_actions, algo.initial_memory(4), step.done)[0])
    actions = algo.act(step.obs, step.avail_actions, algo.initial_memory(4), step.done)[0]
    others_obs, others_avail = step.obs.clone(), step.avail_actions.clone()
    others_obs[:, 1:] = torch.rand_like(others_obs[:, 1:])
    others_avail[:, 1:] = torch.rand(others_avail[:, 1:].shape) < 0.5
    changed = algo.act(others_obs, others_avail, algo.initial_memory(4), step.done)[0]
    assert torch.equal(actions[:, 0], changed[:, 0])
    assert step.avail_actions.gather(2, actions.unsqueeze(-1)).all()


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_scripted_baselines_are_deterministic_per_seed(name):
    assert torch.equal(_episode_returns(name, 3), _episode_returns(name, 3))
    assert not torch.equal(_episode_returns(name, 3), _episode_returns(name, 4))


def test_focus_fire_attacks_the_weakest_and_attack_nearest_the_closest():
    env = simulator("3m", seed=0)
    env.reset()
    place(env, {0: (10.0, 16.0), 3: (13.0, 16.0), 4: (15.0, 16.0)}, alive={0, 3, 4})
    env.s.hp[0, 4] = 10.0  # the farther enemy is nearly dead
    step = env._observe(env.s)
    view = ObservationDecoder("3m")(step[0], step[2])
    assert int(POLICIES["attack_nearest"](view)[0, 0]) == 6 + 0
    assert int(POLICIES["focus_fire"](view)[0, 0]) == 6 + 1


def test_a_medivac_heals_the_most_damaged_ally_in_reach():
    env = simulator("MMM2", seed=0)
    env.reset()
    N = env.n_agents
    place(env, {9: (10.0, 16.0), 2: (11.0, 16.0), 3: (10.0, 17.0), N: (30.0, 23.0)}, alive={2, 3, 9, N})
    env.s.hp[0, 2], env.s.hp[0, 3] = 40.0, 20.0
    obs, _, avail, _ = env._observe(env.s)
    action = POLICIES["focus_fire"](ObservationDecoder("MMM2")(obs, avail))
    assert int(action[0, 9]) == 6 + 3


def test_a_scripted_baseline_runs_as_a_suite_run(tmp_path):
    import json

    from suites.launching.experiment import execute
    from suites.planning.spec import RunSpec

    spec = RunSpec(suite="test", task="smac/3m", algorithm="focus_fire", preset="tiny", seed=0, steps=256,
                   eval_interval=128, eval_episodes=4, backend="sim")
    execute(spec, tmp_path)
    metrics = json.loads((tmp_path / "runs" / spec.run_id / "1" / "metrics.json").read_text())
    assert metrics["eval/win_rate"]["steps"] == [0, 128, 256] and "absolute/win_rate" in metrics


def test_a_scripted_baseline_on_flatland_is_refused_with_the_tasks_it_supports():
    spec = envs.env_spec(f"flatland/{next(iter(TASKS))}")
    with pytest.raises(UsageError, match=r"attack_nearest is a scripted SMAC policy.*smac/3m"):
        make_config("attack_nearest", spec, "paper")


def _episode_returns(name, seed):
    env = simulator("2s3z", num_envs=8, seed=seed)
    algo = make_algorithm(name, env.spec, make_config(name, env.spec, "tiny"))
    step, total = env.reset(), torch.zeros(8)
    for _ in range(60):
        step = env.step(algo.act(step.obs, step.avail_actions, algo.initial_memory(8), step.done)[0])
        total += step.reward
    return total


NEW_MAPS = ("25m", "8m_vs_9m", "2m_vs_1z", "1c3s5z", "bane_vs_bane", "so_many_baneling", "2c_vs_64zg")


@pytest.mark.parametrize("map_name", NEW_MAPS)
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_scripted_baselines_play_the_splash_and_late_maps(name, map_name):
    """Whole episodes of each baseline on the seven maps added last (colossi, banelings, their own spawns):
    every action it takes is available (the simulator's checked mode raises otherwise), every episode ends,
    and the script's attacks destroy part of the enemy."""
    env = simulator(map_name, num_envs=4, seed=0)
    algo = make_algorithm(name, env.spec, make_config(name, env.spec, "paper"))
    step, ended, destroyed = env.reset(), torch.zeros(4, dtype=torch.bool), torch.zeros(4)
    n = env.n_agents
    for _ in range(env.map.limit):
        step = env.step(algo.act(step.obs, step.avail_actions, algo.initial_memory(4), step.done)[0])
        lost = 1 - (env.s.hp[:, n:] + env.s.shield[:, n:]).sum(1) / (env.hp_max[n:] + env.shield_max[n:]).sum()
        destroyed = torch.where(ended, destroyed, torch.maximum(destroyed, lost))
        destroyed = torch.where(step.done & ~ended & step.info["won"], torch.ones(4), destroyed)
        ended |= step.done
        if ended.all():
            break
    assert ended.all() and (destroyed > 0).all()
