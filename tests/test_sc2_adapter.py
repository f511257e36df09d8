"""The StarCraft II adapter's translation logic, against a stand-in that follows smacv2's API."""
import numpy as np
import pytest
import torch

import envs
from envs.smac.family import SMAC
from envs.smac.sc2 import Sc2Env, sc2_available

FAKE_SPEC = SMAC.describe("3m", "sc2", n_agents=2, obs_dim=4, state_dim=5, n_actions=3, episode_limit=3)


class FakeStarCraft2Env:
    """Follows smacv2's StarCraft2Env API: 2 agents, 3 actions, episodes of 3 steps; the second ends in a win."""

    def __init__(self, map_name, seed):
        self.t, self.episode, self.closed = 0, 0, False

    def get_env_info(self):
        return {"n_agents": 2, "obs_shape": 4, "state_shape": 5, "n_actions": 3, "episode_limit": 3}

    def reset(self):
        self.t = 0
        self.episode += 1
        return self.get_obs(), self.get_state()

    def step(self, actions):
        assert len(actions) == 2
        self.t += 1
        won = self.episode % 2 == 0 and self.t == 2
        done = won or self.t >= 3
        info = {"battle_won": won, "dead_allies": 0, "dead_enemies": 3 if won else 0}
        if done and not won:
            info["episode_limit"] = True
        return 1.0, done, info

    def get_obs(self):
        return [np.full(4, self.t, dtype=np.float32) for _ in range(2)]

    def get_state(self):
        return np.full(5, self.t, dtype=np.float32)

    def get_avail_actions(self):
        return [[0, 1, 1], [1, 0, 0] if self.t == 2 else [0, 1, 1]]  # agent 1 "dead" at t=2

    def close(self):
        self.closed = True


def test_adapter_batches_and_resets():
    env = Sc2Env(FAKE_SPEC, num_envs=2, env_factory=FakeStarCraft2Env)
    assert env.spec.backend == "sc2" and env.spec.n_agents == 2
    step = env.reset()
    assert step.obs.shape == (2, 2, 4) and step.state.shape == (2, 5) and step.avail_actions.dtype == torch.bool
    acts = torch.ones(2, 2, dtype=torch.long)
    step = env.step(acts)
    step = env.step(acts)
    assert step.alive[:, 1].tolist() == [False, False] and step.alive[:, 0].all()
    step = env.step(acts)
    assert step.done.all() and step.info["episode_limit"].all() and not step.info["won"].any()
    assert step.final_obs[0, 0, 0].item() == 3 and step.obs[0, 0, 0].item() == 0  # auto-reset
    step = env.step(acts)
    step = env.step(acts)  # episode 2 is won at t=2
    assert step.done.all() and step.info["won"].all() and not step.info["episode_limit"].any()
    env.close()
    assert all(e.closed for e in env.envs)


def test_a_game_whose_sizes_differ_from_smacs_layout_is_refused_and_closed():
    closed = []

    class Other(FakeStarCraft2Env):
        def close(self):
            closed.append(self)

    with pytest.raises(RuntimeError, match=r"StarCraft II's 3m does not have SMAC's layout: n_agents 2 \(SMAC's layout: 3\)"):
        Sc2Env(envs.env_spec("smac/3m", "sim"), num_envs=2, env_factory=Other)
    assert len(closed) == 2


def test_missing_starcraft_is_one_clear_sentence():
    if sc2_available():
        pytest.skip("StarCraft II is installed here")
    with pytest.raises(envs.UsageError, match="install smacv2"):
        envs.make("smac/3m", backend="sc2")


@pytest.mark.sc2
def test_real_game_matches_simulator_layout():
    real = envs.make("smac/3m", backend="sc2")
    sim = envs.make("smac/3m", backend="sim")
    assert (real.spec.obs_dim, real.spec.state_dim, real.spec.n_actions) == \
        (sim.spec.obs_dim, sim.spec.state_dim, sim.spec.n_actions)
    real.close()
