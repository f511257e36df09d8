"""The simulator against SC2 behaviour that SMAClite and SMAX made us check: stuck melee targeting,
enemies that never re-target, unmirrored spawns and passive agent units."""
import math

import pytest
import torch

from envs.smac.maps import MAPS
from tests.helpers import place, simulator

STOP = 1


def test_a_stopped_army_on_3s_vs_5z_is_destroyed_well_before_the_time_limit():
    """Zealots that cannot reach the stalker they picked used to press against the others until the limit
    (91% of battles); SMAClite and SMAX kill every stalker in about 30 steps."""
    env = simulator("3s_vs_5z", num_envs=32, seed=0)
    step, running, lengths = env.reset(), torch.ones(32, dtype=torch.bool), torch.zeros(32)
    for t in range(1, env.map.limit + 1):
        step = env.step(step.avail_actions[..., STOP].long())  # stop while alive, no-op once dead
        ended = running & step.done
        assert not step.info["won"][ended].any() and not step.info["episode_limit"][ended].any()
        lengths[ended] = t
        running &= ~step.done
        if not running.any():
            break
    assert not running.any()
    assert lengths.max() < env.map.limit / 3


def _sealed_zealot(env):
    """corridor: zealot 0 in the lower-left corner of the room, walled in by zealots 1-3 on an arc of radius
    1.31 (gaps of 0 between them, 0.1 to the walls); zergling 0 (unit 6) starts with zealot 0 as target."""
    corner = (1.6, 1.6)
    ring = {1 + k: (corner[0] + 1.31 * math.cos(a), corner[1] + 1.31 * math.sin(a))
            for k, a in enumerate((0.0, math.pi / 4, math.pi / 2))}
    place(env, {0: corner, **ring, 6: (5.0, 5.0)}, alive={0, 1, 2, 3, 6})
    env.s.target[0, 6] = 0
    return ring


def test_an_enemy_gives_up_a_target_it_cannot_reach_for_one_it_can():
    env = simulator("corridor", seed=0)
    env.reset()
    ring = _sealed_zealot(env)
    hp = lambda u: float(env.s.hp[0, u] + env.s.shield[0, u])  # noqa: E731
    for _ in range(20):
        env.step(torch.tensor([[STOP, STOP, STOP, STOP, 0, 0]]))
    assert hp(0) == 150.0  # the sealed zealot was never reached
    assert int(env.s.target[0, 6]) in ring and sum(150.0 - hp(u) for u in ring) > 0


def test_enemies_prefer_a_unit_that_attacks_them():
    """Two marines within scan range of an enemy marine: it takes the one shooting at it, though farther."""
    env = simulator("3m", seed=0)
    env.reset()
    place(env, {0: (15.0, 16.0), 1: (14.0, 16.0), 3: (19.0, 16.0)}, alive={0, 1, 3})
    step = env.step(torch.tensor([[STOP, 6 + 0, 0]]))  # ally 1 (farther) attacks enemy 0 (unit 3)
    assert step.done.sum() == 0 and int(env.s.target[0, 3]) == 1


@pytest.mark.parametrize("name", [m for m, v in MAPS.items() if v.terrain in ("flat_band", "open")])
def test_the_armies_spawn_as_mirror_images(name):
    """Each army's offsets from its spawn point, in units of its spacing (the widest unit's diameter), are the
    other army's reflected across the line midway between the spawn points."""
    env = simulator(name)
    m, N, k = env.map, env.n_agents, min(env.n_agents, env.n_enemies)
    allies = (env.spawn[:N] - torch.tensor(m.ally_spawn)) / (2 * env.radius[:N].max())
    enemies = (env.spawn[N:] - torch.tensor(m.enemy_spawn)) / (2 * env.radius[N:].max())
    axis = torch.tensor(m.enemy_spawn) - torch.tensor(m.ally_spawn)
    axis = axis / axis.norm()
    reflected = allies - 2 * (allies * axis).sum(-1, keepdim=True) * axis
    torch.testing.assert_close(reflected[:k], enemies[:k], atol=1e-4, rtol=0)


def test_on_3m_each_marine_faces_its_mirror_image():
    env = simulator("3m")
    allies, enemies = env.spawn[:3], env.spawn[3:]
    assert torch.equal(allies[:, 1].sort().values, enemies[:, 1].sort().values)  # same rows across the field
    assert (allies[:, 0] < 16).all() and (enemies[:, 0] > 16).all()


def test_agent_units_stay_passive_when_idle():
    """SMAC's *_RL units are Passive with Response Nothing (each map's UnitData.xml): a stopped marine
    under fire never shoots back; the stock enemy marine does shoot."""
    env = simulator("3m", seed=0)
    env.reset()
    place(env, {0: (14.0, 16.0), 3: (16.0, 16.0)}, alive={0, 3})
    for _ in range(4):
        env.step(torch.tensor([[STOP, 0, 0]]))
    assert float(env.s.hp[0, 3]) == 45.0 and float(env.s.hp[0, 0]) < 45.0


