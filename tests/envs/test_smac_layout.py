"""Observation, state and action layouts follow SMAC's definitions (oxwhirl/smac starcraft2.py:946-1340)."""
import pytest
import torch

import envs
from envs.smac.layout import smac_layout
from envs.smac.maps import MAPS
from tests.helpers import place, simulator

# (obs_dim, state_dim, n_actions, max_reward): SMAC's size formulas (starcraft2.py:1309-1340) and max_reward
# (10 per enemy + 200 + the enemies' hit points and shields, starcraft2.py:256-258) on each map's registry values
EXPECTED = {
    "3m": (30, 48, 9, 365), "8m": (80, 168, 14, 640), "2s3z": (80, 120, 11, 1020), "3s5z": (128, 216, 14, 1510),
    "MMM": (160, 290, 16, 1015), "2s_vs_1sc": (17, 27, 7, 510), "3s_vs_3z": (36, 54, 9, 680),
    "3s_vs_4z": (42, 61, 10, 840), "3s_vs_5z": (48, 68, 11, 1000), "5m_vs_6m": (55, 98, 12, 530),
    "10m_vs_11m": (105, 243, 17, 805), "3s5z_vs_3s6z": (136, 230, 15, 1670), "6h_vs_8z": (78, 140, 14, 1480),
    "MMM2": (176, 322, 18, 1205), "27m_vs_30m": (285, 1170, 36, 1850), "corridor": (156, 282, 30, 1280),
    "2c_vs_64zg": (332, 342, 70, 3080), "so_many_baneling": (202, 397, 38, 1480),
    "25m": (250, 950, 31, 1575), "8m_vs_9m": (85, 179, 15, 695), "2m_vs_1z": (16, 26, 7, 360),
    "1c3s5z": (162, 270, 15, 1870), "bane_vs_bane": (336, 984, 30, 1260),
}


@pytest.mark.parametrize("name", sorted(MAPS))
def test_dimensions_match_smac(name):
    env = simulator(name, num_envs=3)
    step = env.reset()
    obs_dim, state_dim, n_actions, max_reward = EXPECTED[name]
    n = MAPS[name].n_agents
    assert (env.spec.obs_dim, env.spec.state_dim, env.spec.n_actions) == (obs_dim, state_dim, n_actions)
    assert env.max_reward == max_reward
    assert step.obs.shape == (3, n, obs_dim) and step.obs.dtype == torch.float32
    assert step.state.shape == (3, state_dim)
    assert step.avail_actions.shape == (3, n, n_actions) and step.avail_actions.dtype == torch.bool
    assert step.alive.shape == (3, n) and step.alive.all()
    assert not step.avail_actions[..., 0].any() and step.avail_actions[..., 1].all()  # alive: no no-op, stop ok


def test_feature_positions_3m():
    env = simulator("3m")
    env.reset()
    # agent 0 at (10, 16), enemy 0 (unit 3) 3 east, ally 1 4 north; everything else far away
    place(env, {0: (10, 16), 1: (10, 20), 2: (2, 9), 3: (13, 16), 4: (30, 22), 5: (30, 10)})
    env.s.hp[0, 3] = 22.5
    obs, state, avail, _ = env._observe(env.s)
    o = obs[0, 0]
    assert o[:4].tolist() == [1, 1, 1, 1]  # move N, S, E, W available
    enemy0 = o[4:9]  # attack avail, dist/9, dx/9, dy/9, health
    assert enemy0.tolist() == pytest.approx([1, 3 / 9, 3 / 9, 0, 0.5])
    assert o[9:19].abs().sum() == 0  # enemies 1 and 2 are beyond sight range 9
    ally1 = o[19:24]  # visible, dist/9, dx/9, dy/9, health
    assert ally1.tolist() == pytest.approx([1, 4 / 9, 0, 4 / 9, 1])
    assert o[29].item() == 1.0  # own health
    # state: ally rows (health, cooldown, x, y relative to the centre / 32), then enemy rows (health, x, y)
    assert state[0, :4].tolist() == pytest.approx([1, 0, (10 - 16) / 32, 0])
    assert state[0, 12:15].tolist() == pytest.approx([0.5, (13 - 16) / 32, 0])
    assert state[0, 21:].abs().sum() == 0  # no last actions yet
    assert avail[0, 0, 6] and not avail[0, 0, 7]  # enemy 0 within shoot range 6, enemy 1 not


def test_unit_type_bits_follow_smac_orders():
    env = simulator("3s5z_vs_3s6z")
    n = env.n_agents
    assert env.type_onehot[0].tolist() == [1, 0]  # ally stalker bit 0
    assert env.type_onehot[3].tolist() == [0, 1]  # ally zealot bit 1
    assert env.type_onehot[n].tolist() == [0, 1]  # enemy stalker bit 1 (stock id order: zealot 73, stalker 74)
    assert env.type_onehot[n + 3].tolist() == [1, 0]
    mmm2 = simulator("MMM2")
    assert mmm2.type_onehot[0].tolist() == [1, 0, 0] and mmm2.type_onehot[9].tolist() == [0, 0, 1]
    assert mmm2.type_onehot[10].tolist() == [0, 1, 0]  # the script creates marines first
    c = simulator("1c3s5z")  # allies and enemies alike: colossus 0, stalker 1, zealot 2
    assert [c.type_onehot[i].argmax().item() for i in (0, 1, 4, 9, 10, 13)] == [0, 1, 2, 0, 1, 2]
    bane = simulator("bane_vs_bane")  # allies: banelings first (type order); enemies: the script's zerglings first
    assert bane.type_onehot[0].tolist() == [1, 0] and bane.type_onehot[4].tolist() == [0, 1]
    assert bane.type_onehot[24].tolist() == [0, 1] and bane.type_onehot[44].tolist() == [1, 0]


def test_all_23_smac_maps_are_there():
    assert len(MAPS) == 23


def test_last_actions_enter_the_state():
    env = simulator("3m")
    env.reset()
    step = env.step(torch.tensor([[1, 2, 4]]))
    last = step.state[0, -3 * 9:].view(3, 9)
    assert last.argmax(-1).tolist() == [1, 2, 4] and last.sum() == 3


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KeyError, match="valid maps: .*3m"):
        smac_layout("4m")
    with pytest.raises(envs.UsageError, match="valid tasks: .*smac/corridor"):
        envs.make("smac/4m")
    with pytest.raises(envs.UsageError, match="valid backends"):
        envs.make("smac/3m", backend="starcraft")
