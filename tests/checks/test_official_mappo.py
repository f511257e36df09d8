"""MAPPO against marlbenchmark/on-policy (``suites/checks/official_mappo_parity.py``). The comparisons need a checkout
named by ``OFFICIAL_ONPOLICY_DIR`` and skip without one; the layout conversions they rely on are tested here
always."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import envs
from algorithms import make_algorithm, make_config
from algorithms.mappo.agent import time_chunks
from suites.checks.official_mappo_parity import TOLERANCE, compare, our_name, our_rollout, ours_of_official_chunks

CHECKOUT = Path(os.environ.get("OFFICIAL_ONPOLICY_DIR", "/nonexistent"))
needs_checkout = pytest.mark.skipif(not (CHECKOUT / "onpolicy" / "algorithms" / "r_mappo").is_dir(),
                                    reason="OFFICIAL_ONPOLICY_DIR does not name a marlbenchmark/on-policy checkout")


@pytest.mark.parametrize("length", [1, 10])
def test_each_official_chunk_maps_to_the_same_data_in_ours(length):
    steps, threads, agents = 20, 3, 4
    ids = np.arange(steps * threads * agents).reshape(steps, threads, agents)  # every entry named by (t, e, a)
    if length == 1:  # feed_forward_generator: [T, E, N] flattened in order
        official_starts = ids.reshape(-1)
    else:  # recurrent_generator: _cast to [E, N, T] flattened, chunk k starts at k * L
        official_starts = ids.transpose(1, 2, 0).reshape(-1)[::length]
    ours_starts = time_chunks(torch.as_tensor(ids), length)[0]
    mapping = ours_of_official_chunks(threads, agents, steps, length)
    assert torch.equal(ours_starts[mapping], torch.as_tensor(official_starts))


def test_official_parameter_names_fill_every_parameter_of_ours_once():
    spec = envs.env_spec("smac/3m", "sim")
    algo = make_algorithm("mappo", spec, make_config("mappo", spec, "paper", {"agent_id": False}))
    base = ["base.feature_norm.weight", "base.feature_norm.bias"] + [
        f"base.mlp.{layer}.{part}.{p}" for layer in ("fc1", "fc2.0") for part in (0, 2) for p in ("weight", "bias")]
    rnn = [f"rnn.rnn.{w}_l0" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")] + ["rnn.norm.weight", "rnn.norm.bias"]
    actor = base + rnn + ["act.action_out.linear.weight", "act.action_out.linear.bias"]
    critic = base + rnn + ["v_out.weight", "v_out.bias"]
    assert sorted(map(our_name, actor)) == sorted(n for n, _ in algo.actor.named_parameters())
    assert sorted(map(our_name, critic)) == sorted(n for n, _ in algo.critic.named_parameters())


def test_the_official_buffer_layout_converts_to_ours():
    steps, threads, agents, actions = 3, 2, 2, 4
    masks = np.ones((steps + 1, threads, agents, 1))
    masks[2, 1] = 0.0  # environment 1's episode ended after step 1
    buffer = SimpleNamespace(
        episode_length=steps, masks=masks, obs=np.random.rand(steps + 1, threads, agents, 5),
        share_obs=np.random.rand(steps + 1, threads, agents, 7), available_actions=np.ones((steps + 1, threads, agents, actions)),
        active_masks=np.ones((steps + 1, threads, agents, 1)), rnn_states=np.zeros((steps + 1, threads, agents, 1, 8)),
        rnn_states_critic=np.zeros((steps + 1, threads, agents, 1, 8)), actions=np.full((steps, threads, agents, 1), 3.0),
        action_log_probs=np.zeros((steps, threads, agents, 1)), value_preds=np.zeros((steps + 1, threads, agents, 1)),
        rewards=np.ones((steps, threads, agents, 1)))
    rollout = our_rollout(buffer)
    assert [step["done"].tolist() for step in rollout] == [[False, False], [False, True], [False, False]]
    assert [step["first"].tolist() for step in rollout] == [[False, False], [False, False], [False, True]]
    assert rollout[0]["obs"].shape == (threads, agents, 5) and rollout[0]["critic_input"].shape == (threads, agents, 7)
    assert rollout[0]["actions"].dtype == torch.long and rollout[0]["reward"].shape == (threads,)


@needs_checkout
@pytest.mark.parametrize("task", ["smac/3s5z_vs_3s6z", "smac/6h_vs_8z", "smac/MMM2", "smac/27m_vs_30m", "smac/corridor"])
def test_mappo_computes_what_on_policy_computes(task):
    """Recurrent rMAPPO (3s5z_vs_3s6z, 27m_vs_30m), feed-forward MAPPO (6h_vs_8z, corridor), MMM2's two
    minibatches and gain 1: on a rollout the official policy plays on our simulator, the log-probabilities,
    values, returns and a whole train() agree to rounding."""
    results = compare(task, CHECKOUT)
    assert results.pop("battles ended in the rollout") > 0  # so episode ends fall inside the rollout and its chunks
    assert all(v <= TOLERANCE for v in results.values()), results


@needs_checkout
def test_the_huber_loss_linear_part_agrees_too():
    """Normalised value errors seldom reach the preset's delta of 10; with 0.125 on both sides they do (a delta
    that float32 holds exactly: on-policy multiplies it by a float32 mask, which rounds 0.1 in a float64 run)."""
    results = compare("smac/3s5z_vs_3s6z", CHECKOUT, settings={"huber_delta": 0.125})
    results.pop("battles ended in the rollout")
    assert all(v <= TOLERANCE for v in results.values()), results


@needs_checkout
@pytest.mark.parametrize("sabotage, caught", [
    ({"use_clipped_value_loss": False}, "train(): mean value_loss"),
    ({"huber_delta": 0.125}, "train(): mean value_loss"),
    ({"gae_lambda": 0.9}, "returns (GAE, denormalised values)"),
])
def test_a_deliberate_change_of_ours_fails_the_comparison(sabotage, caught):
    assert compare("smac/3m", CHECKOUT, sabotage=sabotage)[caught] > 1e-6
