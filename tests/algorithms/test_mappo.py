"""MAPPO: CTDE, losses against hand computations, checkpoint round trip."""
import inspect

import pytest
import torch

from algorithms import make_algorithm, make_config
from algorithms.base import Algorithm
from algorithms.mappo.config import ON_POLICY_SCRIPTS
from algorithms.mappo.losses import huber, policy_loss
from envs.smac.maps import MAPS
from tests.helpers import simulator


def _mappo(preset="tiny", **overrides):
    env = simulator("3m", num_envs=4, seed=0)
    cfg = make_config("mappo", env.spec, preset, overrides)
    return env, make_algorithm("mappo", env.spec, cfg)


def test_act_never_receives_the_global_state():
    params = list(inspect.signature(Algorithm.act).parameters)
    assert params == ["self", "obs", "avail_actions", "memory", "first", "explore", "neighbours"]  # local inputs only


def test_each_agent_acts_on_its_own_observation_only():
    torch.manual_seed(0)
    env, algo = _mappo(recurrent=False)
    step = env.reset()
    first = torch.ones(4, dtype=torch.bool)
    ids = algo._with_ids(step.obs)
    logits, _ = algo.actor(ids.reshape(1, 12, -1), torch.zeros(12, 32), torch.ones(1, 12), step.avail_actions.reshape(1, 12, -1))
    perturbed = step.obs.clone()
    perturbed[:, 1:] += torch.randn_like(perturbed[:, 1:])  # change every other agent's observation
    logits2, _ = algo.actor(algo._with_ids(perturbed).reshape(1, 12, -1), torch.zeros(12, 32), torch.ones(1, 12),
                          step.avail_actions.reshape(1, 12, -1))
    agent0 = torch.arange(12) % 3 == 0
    torch.testing.assert_close(logits[0, agent0], logits2[0, agent0])
    actions, memory, extras = algo.act(step.obs, step.avail_actions, algo.initial_memory(4), first, explore=False)
    assert actions.shape == (4, 3) and step.avail_actions.gather(2, actions.unsqueeze(-1)).all()
    assert set(extras) == {"log_prob", "actor_h"}


def test_policy_loss_clips_the_ratio():
    adv = torch.tensor([1.0, -1.0])
    old = torch.zeros(2)
    new = torch.log(torch.tensor([1.5, 0.5]))  # ratios 1.5 and 0.5, clip 0.2
    loss = policy_loss(new, old, adv, 0.2, torch.ones(2))
    assert loss.item() == pytest.approx(-(1.2 * 1 + 0.8 * -1) / 2)


def test_huber_matches_the_definition():
    err = torch.tensor([1.0, 20.0])
    assert huber(err, 10.0).tolist() == [0.5, 10 * (20 - 5)]


def test_gae_on_a_hand_example():
    env, algo = _mappo(gamma=0.5, gae_lambda=0.5, use_valuenorm=False)
    T = algo.config.episode_length
    data = {"value": torch.ones(T, 1, 1), "reward": torch.ones(T, 1), "done": torch.zeros(T, 1, dtype=torch.bool)}
    data["done"][-1] = True
    returns, adv = algo.returns(data, torch.full((1, 1), 5.0))
    # last step is terminal: return = r = 1; one before: delta = 1 + 0.5*1 - 1 = 0.5, gae = 0.5 + 0.25*0 = 0.5
    assert returns[-1].item() == pytest.approx(1.0) and returns[-2].item() == pytest.approx(1.5)
    assert adv[-1].item() == pytest.approx(0.0)


def test_checkpoint_round_trip_restores_behaviour():
    torch.manual_seed(1)
    env, algo = _mappo()
    step = env.reset()
    first = torch.ones(4, dtype=torch.bool)
    state = algo.state_dict()
    _, other = _mappo()
    other.load_state_dict(state)
    a1, m1, _ = algo.act(step.obs, step.avail_actions, algo.initial_memory(4), first, explore=False)
    a2, m2, _ = other.act(step.obs, step.avail_actions, other.initial_memory(4), first, explore=False)
    assert torch.equal(a1, a2) and torch.equal(m1, m2)


def test_paper_preset_follows_the_per_map_scripts():
    """on-policy's train_smac_<map>.sh settings, map by map; 2s3z, which has no script, keeps config.py's."""
    for name, recurrent, epochs, mini, clip in [("MMM2", True, 5, 2, 0.2), ("corridor", False, 5, 1, 0.2),
                                                ("6h_vs_8z", False, 5, 1, 0.2), ("3m", True, 15, 1, 0.2),
                                                ("3s_vs_5z", False, 15, 1, 0.05), ("25m", True, 10, 1, 0.2),
                                                ("2c_vs_64zg", True, 5, 1, 0.2), ("8m_vs_9m", True, 15, 1, 0.05)]:
        spec = simulator(name).spec
        cfg = make_config("mappo", spec, "paper")
        assert (cfg.recurrent, cfg.num_mini_batch, cfg.episode_length, cfg.ppo_epoch, cfg.num_envs, cfg.clip_param) == \
            (recurrent, mini, 400, epochs, 8, clip), name
    assert make_config("mappo", simulator("MMM2").spec, "paper").gain == 1.0
    defaults = make_config("mappo", simulator("2s3z").spec, "paper")
    assert (defaults.num_envs, defaults.episode_length, defaults.ppo_epoch) == (32, 200, 15)
    assert set(ON_POLICY_SCRIPTS) == set(MAPS) - {"2s3z"}  # one script per map but 2s3z
