"""The harnesses that run the official code: timing (``suites/checks/official_learner_benchmark.py``) and the
number-for-number comparison (``suites/checks/official_parity.py``).

The official code is not shipped; the tests that run it need a checkout named by OFFICIAL_MAMBA_DIR (a clone
of jbr-ai-labs/mamba) or OFFICIAL_MABL_DIR (the ``mabl/`` folder of aravindvenu7/MABL)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import envs
from algorithms import make_algorithm, make_config, sampling
from algorithms.world_model.replay import SequenceReplay
from envs.flatland.family import FLATLAND
from suites.checks.kit import CheckError
from suites.checks.official_learner_benchmark import main, official_learner
from suites.checks.official_parity import (
    OfficialStarCraftView,
    copy_weights,
    deterministic_sampling,
    in_our_layout,
    our_name,
    random_batch,
)
from tests.helpers import ROOT


def test_a_folder_that_is_not_an_official_checkout_is_named(tmp_path, capsys):
    assert main(["--official", str(tmp_path), "--algorithm", "mamba", "--task", "smac/3m"]) == 2
    assert "not an official mamba checkout: agent/learners/DreamerLearner.py is missing" in capsys.readouterr().err


def test_a_family_the_official_code_has_no_learner_for_is_named(tmp_path):
    spec = FLATLAND.describe("2_agents", "flatland", n_agents=2, obs_dim=205, state_dim=410, n_actions=3, episode_limit=320)
    with pytest.raises(CheckError, match=r"no official mabl learner configuration for flatland; there are: mamba on "
                                         r"smac, mabl on smac, mamba on flatland"):
        official_learner(tmp_path, "mabl", spec, "cpu", {})


def official_checkout(algorithm: str) -> str:
    checkout = os.environ.get(f"OFFICIAL_{algorithm.upper()}_DIR")
    if not checkout:
        pytest.skip(f"OFFICIAL_{algorithm.upper()}_DIR does not name an official {algorithm} checkout")
    return checkout


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["mamba", "mabl"])
def test_the_official_learner_runs_one_short_update(algorithm):
    checkout = official_checkout(algorithm)
    # a fresh process: the harness puts the official packages (agent, configs, networks) on sys.path
    out = subprocess.run([sys.executable, "-m", "suites.checks.official_learner_benchmark", "--official", checkout,
                          "--algorithm", algorithm, "--task", "smac/3m", "--model-epochs", "1", "--epochs", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"official {algorithm} on smac/3m" in out.stdout and "s per learner update" in out.stdout


@pytest.mark.parametrize("algorithm,task", [("mamba", "smac/2s3z"), ("mabl", "smac/2s3z"), ("mamba", "flatland/2_agents")])
def test_ours_computes_what_the_official_code_computes(algorithm, task):
    """Same weights, same batch, deterministic sampling, float64: world-model loss and gradients,
    imagination, returns, advantages, PPO and value losses and gradients, and acting step by step (actions and
    recurrent state) agree to 1e-9, every parameter after a full update to 1e-6 of its change; on SMAC the
    official worker and memory store and return exactly what our runner and replay do, battles that end
    (absorbing entries) included."""
    checkout = official_checkout(algorithm)
    out = subprocess.run([sys.executable, "-m", "suites.checks.official_parity", "--official", checkout, "--algorithm", algorithm,
                          "--task", task], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "PASS" in out.stdout, out.stdout + out.stderr[-2000:]
    if task.startswith("smac/"):
        assert "collection: every sampled sequence" in out.stdout and " 0 ended by the battle" not in out.stdout


def test_official_names_map_onto_ours():
    assert our_name("transition._attention_stack.encoder.layers.2.linear1.weight") == \
        "communication.encoder.layers.2.linear1.weight"
    assert our_name("representation.global_stochastic_posterior_model.dists.0.bias") == "global_posterior.dists.0.bias"
    assert our_name("reward_model.model.4.weight") == "reward_model.4.weight"
    assert our_name("observation_encoder.fc1.weight") == "observation_encoder.fc1.weight"


def test_weights_without_a_counterpart_are_named():
    ours = nn.Sequential(nn.Linear(3, 2))
    official = nn.Module()
    official.mystery = nn.Linear(3, 2)
    with pytest.raises(CheckError, match=r"official parameter mystery.weight \(2, 3\) has no counterpart"):
        copy_weights(official, ours)
    with pytest.raises(CheckError, match=r"parameters of ours without an official counterpart: \['0.bias', '0.weight'\]"):
        copy_weights(nn.Module(), ours)
    official = nn.Sequential(nn.Linear(3, 2))
    pairs = copy_weights(official, ours)
    assert len(pairs) == 2 and torch.equal(ours[0].weight, official[0].weight)


def test_deterministic_sampling_takes_the_likeliest_draw_and_is_undone():
    """Ours through the one switch every draw reads, the official code's through the functions it calls."""
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    with deterministic_sampling():
        assert sampling.sample_index(probs).tolist() == [1, 0]
        assert sampling.bernoulli(torch.tensor([0.4, 0.7])).tolist() == [0.0, 1.0]
        assert sampling.permutation(4, "cpu").tolist() == [0, 1, 2, 3]
        assert np.random.permutation(3).tolist() == [0, 1, 2]
        assert torch.multinomial(probs, 1, True).tolist() == [[1], [0]]
        assert torch.bernoulli(torch.tensor([0.4, 0.7])).tolist() == [0.0, 1.0]
    assert torch.multinomial(probs, 1, True).shape == (2, 1)
    assert sorted(sampling.permutation(50, "cpu").tolist()) == list(range(50))
    assert sampling.permutation(50, "cpu").tolist() != list(range(50))
    assert torch.bernoulli(torch.full((1000,), 0.4)).mean() < 0.6  # random again


def test_the_official_wrapper_view_of_our_simulator_plays_episodes_as_our_runner_sees_them():
    env, twin = envs.make("smac/3m", num_envs=1, seed=3), envs.make("smac/3m", num_envs=1, seed=3)
    view = OfficialStarCraftView(env, with_state=True)
    obs, reference = view.reset(), twin.reset()
    assert sorted(obs) == [0, 1, 2] and (obs[1] == reference.obs[0, 1].numpy()).all()
    steps, done = 0, {0: 0.0}
    while not done[0]:  # move north while possible: this battle runs into the time limit
        avail = [view.get_avail_agent_actions(i) for i in range(3)]
        assert avail == reference.avail_actions[0].int().tolist()
        actions = torch.tensor([2 if a[2] else a.index(1) for a in avail])
        obs, state, reward, done, info = view.step(list(actions))
        reference = twin.step(actions.view(1, 3))
        assert reward == {i: float(reference.reward[0]) for i in range(3)}
        assert done == {i: float(reference.done[0]) for i in range(3)}
        assert (state == reference.final_state[0].numpy()).all() and (obs[0] == reference.final_obs[0, 0].numpy()).all()
        steps += 1
    assert steps == 60 and info == {"battle_won": False, "episode_limit": True}
    assert (view.reset()[0] == reference.obs[0, 0].numpy()).all()  # the restarted battle, as our runner continues


def test_the_replay_sequence_at_a_start_is_in_the_official_shift():
    replay = SequenceReplay(50, 1, 2, 3, 4, 5, seq_length=4, device="cpu")
    for k in range(12):
        full = torch.full((1, 2), k)
        replay.add(full[..., None].float().expand(1, 2, 3), torch.full((1, 4), float(k)), torch.ones(1, 2, 5, dtype=torch.bool),
                   torch.zeros(1, 2, dtype=torch.bool), full % 5, full.float(), torch.zeros(1, 2, dtype=torch.bool),
                   torch.zeros(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool))
    starts = int(replay._valid_starts()[0])
    for start in (0, starts - 1):
        seq = replay.sequences(torch.tensor([start]))
        assert seq["obs"][:, 0, 0, 0].tolist() == [start + 1, start + 2, start + 3]  # entries 1..L-1
        assert seq["reward"][:, 0, 0].tolist() == [start, start + 1, start + 2]  # entries 0..L-2


def test_official_sequences_are_put_in_our_layout():
    t, b, n = 3, 2, 4
    ours = in_our_layout({"last": torch.ones(t, b, n, 1), "global_state": torch.ones(t, b, 1, 7),
                          "reward": torch.ones(t, b, n, 1), "observation": torch.ones(t, b, n, 5), "av_action": None})
    assert ours["last"].shape == (t, b) and ours["last"].dtype == torch.bool
    assert ours["state"].shape == (t, b, 7)
    assert ours["reward"].shape == (t, b, n) and ours["reward"].dtype == torch.float32
    assert ours["obs"].shape == (t, b, n, 5)
    assert "avail" not in ours  # Flatland: no availability


def test_a_learner_call_runs_in_float64_as_the_parity_check_needs():
    """Fused Adam needs its skip flag in float32 whatever the default dtype."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        spec = envs.make("smac/3m", num_envs=1).spec
        algo = make_algorithm("mamba", spec, make_config("mamba", spec, "tiny", {}))
        _, batch = random_batch(spec, steps=6, batch=2)
        algo.replay.sample = lambda size: batch
        before = [p.detach().clone() for p in algo.actor.parameters()]
        algo.learner_call()
        assert all(p.dtype == torch.float64 for p in algo.model.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, algo.actor.parameters()))
    finally:
        torch.set_default_dtype(saved)
