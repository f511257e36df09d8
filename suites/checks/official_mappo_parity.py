"""Check our MAPPO number for number against marlbenchmark/on-policy, from a checkout you provide.

    git clone https://github.com/marlbenchmark/on-policy /tmp/on-policy
    python -m suites.checks.official_mappo_parity --official /tmp/on-policy --task smac/3s5z_vs_3s6z

Builds the official ``R_MAPPOPolicy`` (R_Actor, R_Critic) and ``R_MAPPO`` trainer with the ``paper`` settings
of the task (``train_smac_<map>.sh``), copies every official parameter into ours by name, and collects one
rollout with the official policy on our SMAC simulator into the official ``SharedReplayBuffer``, as
on-policy's SMAC runner stores it. Both sides then see the same data, in float64:

- action log-probabilities, entropies and values on the rollout;
- returns (GAE on denormalised values) and normalised advantages;
- a whole ``train()``: every epoch and minibatch (the recurrent chunk generator, or the feed-forward one),
  clipping, the value normaliser and the Adam steps; the per-update means it reports, every parameter and
  the value normaliser afterwards.

The minibatch permutation is drawn once and given to both sides in their own chunk order (the official
generator orders chunks by environment, agent and time; ours by time, environment and agent). Our one-hot
agent id (a documented deviation) is switched off, and both critics read the same global state. Nothing of
the official code is shipped: the checkout is imported from the given path.
"""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

import envs
from algorithms import make_algorithm, make_config
from algorithms.mappo.losses import masked_mean
from algorithms.mappo.networks import action_distribution
from suites.checks.kit import copy_official_weights, gradient_difference
from suites.checks.kit import relative as relative_tensors

# official parameter name prefix -> ours
NAMES = (("base.mlp.fc1.", "base.mlp.0."), ("rnn.rnn.weight_ih_l0", "rnn.cell.weight_ih"),
         ("rnn.rnn.weight_hh_l0", "rnn.cell.weight_hh"), ("rnn.rnn.bias_ih_l0", "rnn.cell.bias_ih"),
         ("rnn.rnn.bias_hh_l0", "rnn.cell.bias_hh"), ("act.action_out.linear.", "head."))
TOLERANCE = 1e-9
ROLLOUT = 60  # steps per environment: long enough for battles to end inside the rollout (and inside chunks)


def import_official(checkout: Path):
    """The official modules, imported without running ``onpolicy/__init__.py`` (it imports every environment)."""
    package = types.ModuleType("onpolicy")
    package.__path__ = [str(checkout / "onpolicy")]
    sys.modules["onpolicy"] = package
    from onpolicy.algorithms.r_mappo.algorithm.rMAPPOPolicy import R_MAPPOPolicy
    from onpolicy.algorithms.r_mappo.r_mappo import R_MAPPO
    from onpolicy.config import get_config
    from onpolicy.utils.shared_buffer import SharedReplayBuffer

    return get_config, R_MAPPOPolicy, R_MAPPO, SharedReplayBuffer


class Box:  # what the official code reads of gym's spaces: the class name and the shape
    def __init__(self, dim: int):
        self.shape = (dim,)


class Discrete:
    def __init__(self, n: int):
        self.n = n


def our_name(official: str) -> str:
    for theirs, ours in NAMES:
        if official.startswith(theirs):
            return ours + official[len(theirs):]
    if official.startswith("base.mlp.fc2."):  # fc2.<i>.<j> -> <i + 1>.<j>
        index, rest = official[len("base.mlp.fc2."):].split(".", 1)
        return f"base.mlp.{int(index) + 1}.{rest}"
    return official


def official_args(get_config, config, recurrent: bool, threads: int):
    args = get_config().parse_args([])
    args.algorithm_name = "rmappo" if recurrent else "mappo"
    args.use_recurrent_policy, args.use_naive_recurrent_policy = recurrent, False
    for name, value in (("n_rollout_threads", threads), ("episode_length", config.episode_length),
                        ("ppo_epoch", config.ppo_epoch), ("num_mini_batch", config.num_mini_batch),
                        ("data_chunk_length", config.data_chunk_length), ("hidden_size", config.hidden_size),
                        ("layer_N", config.layer_n), ("gain", config.gain), ("lr", config.lr),
                        ("critic_lr", config.critic_lr), ("clip_param", config.clip_param),
                        ("entropy_coef", config.entropy_coef), ("max_grad_norm", config.max_grad_norm),
                        ("huber_delta", config.huber_delta), ("gamma", config.gamma), ("gae_lambda", config.gae_lambda)):
        setattr(args, name, value)
    args.use_value_active_masks = args.use_policy_active_masks = True  # as every SMAC script sets them
    return args


def float64(*objects) -> None:
    """The official code casts every input, and the value normaliser its statistics, to float32 through
    ``tpdv``; make them float64 like the weights."""
    for obj in objects:
        obj.tpdv = dict(dtype=torch.float64, device=torch.device("cpu"))
        for name in ("running_mean", "running_mean_sq", "debiasing_term"):
            if hasattr(obj, name):
                setattr(obj, name, getattr(obj, name).double())


def collect(policy, buffer, spec, threads: int, seed: int) -> int:
    """One rollout by the official policy on our simulator, stored as on-policy's SMAC runner stores it: the
    team reward and the episode's end copied to every agent, hidden states and masks reset where a battle
    ended, active masks off for dead agents (on where the battle ended). Returns the battles that ended."""
    n, steps = spec.n_agents, buffer.episode_length
    for name in ("share_obs", "obs", "rnn_states", "rnn_states_critic", "value_preds", "returns", "actions",
                 "action_log_probs", "rewards", "masks", "bad_masks", "active_masks", "available_actions"):
        setattr(buffer, name, getattr(buffer, name).astype(np.float64))
    with default_dtype(torch.float32):  # the simulator runs in float32, as in training
        env = envs.make(spec.task, num_envs=threads, seed=seed, backend="sim")
        step, ended_battles = env.reset(), 0
    as_numpy = lambda x: x.to(torch.float64).numpy()  # noqa: E731
    for t in range(steps + 1):
        buffer.obs[t], buffer.available_actions[t] = as_numpy(step.obs), as_numpy(step.avail_actions)
        buffer.share_obs[t] = as_numpy(step.state)[:, None].repeat(n, axis=1)
        if t == steps:
            break
        values, actions, log_probs, h, hc = policy.get_actions(
            buffer.share_obs[t].reshape(threads * n, -1), buffer.obs[t].reshape(threads * n, -1),
            buffer.rnn_states[t].reshape(threads * n, 1, -1), buffer.rnn_states_critic[t].reshape(threads * n, 1, -1),
            buffer.masks[t].reshape(threads * n, 1), buffer.available_actions[t].reshape(threads * n, -1))
        with default_dtype(torch.float32):
            step = env.step(actions.reshape(threads, n))
        ended = step.done.numpy()
        ended_battles += int(ended.sum())
        h, hc = (x.detach().numpy().reshape(threads, n, 1, -1) for x in (h, hc))
        h[ended], hc[ended] = 0.0, 0.0
        buffer.rnn_states[t + 1], buffer.rnn_states_critic[t + 1] = h, hc
        buffer.actions[t] = actions.numpy().reshape(threads, n, 1)
        buffer.action_log_probs[t] = log_probs.detach().numpy().reshape(threads, n, 1)
        buffer.value_preds[t] = values.detach().numpy().reshape(threads, n, 1)
        buffer.rewards[t] = as_numpy(step.reward)[:, None, None].repeat(n, axis=1)
        buffer.masks[t + 1] = np.where(ended, 0.0, 1.0)[:, None, None]
        dead = ~step.final_alive.numpy()
        buffer.active_masks[t + 1] = np.where(ended[:, None] | ~dead, 1.0, 0.0)[..., None]
    env.close()
    return ended_battles


def our_rollout(buffer) -> list[dict[str, torch.Tensor]]:
    """The same rollout in the layout our ``observe`` stores."""
    t64 = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64)  # noqa: E731
    steps = []
    for t in range(buffer.episode_length):
        first = t64(buffer.masks[t, :, 0, 0]) == 0
        steps.append(dict(
            obs=t64(buffer.obs[t]), critic_input=t64(buffer.share_obs[t]), avail=t64(buffer.available_actions[t]) > 0,
            active=t64(buffer.active_masks[t, ..., 0]), actor_h=t64(buffer.rnn_states[t, :, :, 0]),
            critic_h=t64(buffer.rnn_states_critic[t, :, :, 0]), first=first,
            actions=t64(buffer.actions[t, ..., 0]).long(), log_prob=t64(buffer.action_log_probs[t, ..., 0]),
            value=t64(buffer.value_preds[t, ..., 0]), reward=t64(buffer.rewards[t, :, 0, 0]),
            done=t64(buffer.masks[t + 1, :, 0, 0]) == 0))
    return steps


@contextmanager
def default_dtype(dtype: torch.dtype):
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


@contextmanager
def permutations(draws: list[torch.Tensor]):
    """``torch.randperm`` returns the given permutations in turn."""
    saved, queue = torch.randperm, list(draws)
    torch.randperm = lambda n, *args, **kwargs: queue.pop(0).clone()
    try:
        yield
    finally:
        torch.randperm = saved


def ours_of_official_chunks(threads: int, agents: int, steps: int, length: int) -> torch.Tensor:
    """For each official chunk index (environment, agent, time chunk; ``recurrent_generator``, and time,
    environment, agent for ``feed_forward_generator`` with chunks of one step) the index of the same chunk
    in ours (``time_chunks``: time chunk, environment, agent)."""
    per_agent = steps // length
    if length == 1:  # the feed-forward generator flattens [T, E, N] in that order, as ours does
        return torch.arange(steps * threads * agents)
    agent, time_chunk = np.divmod(np.arange(per_agent * threads * agents), per_agent)
    return torch.as_tensor(time_chunk * threads * agents + agent)


def compare(task: str, checkout: Path, seed: int = 0, sabotage: dict | None = None,
            settings: dict | None = None) -> dict[str, float]:
    """Largest relative difference of each compared quantity. ``settings`` change config fields on both sides
    (e.g. a Huber delta small enough that value errors reach its linear part); ``sabotage`` changes fields of
    ours only, to show that the comparison notices (it must then fail)."""
    with default_dtype(torch.float64):
        return _compare(task, checkout, seed, sabotage, settings or {})


def _compare(task: str, checkout: Path, seed: int, sabotage: dict | None, settings: dict) -> dict[str, float]:
    get_config, R_MAPPOPolicy, R_MAPPO, SharedReplayBuffer = import_official(checkout)
    torch.manual_seed(seed)
    spec = envs.env_spec(task, "sim")
    config = make_config("mappo", spec, "paper", {"agent_id": False, "episode_length": ROLLOUT, **settings})
    threads = config.num_envs
    args = official_args(get_config, config, config.recurrent, threads)
    obs_space, state_space, act_space = Box(spec.obs_dim), Box(spec.state_dim), Discrete(spec.n_actions)
    policy = R_MAPPOPolicy(args, obs_space, state_space, act_space)
    trainer = R_MAPPO(args, policy)
    float64(policy.actor, policy.critic, trainer, trainer.value_normalizer)
    ours = make_algorithm("mappo", spec, dataclasses.replace(config, **(sabotage or {})))
    pairs = [pair for theirs, mine in ((policy.actor, ours.actor), (policy.critic, ours.critic))
             for pair in copy_official_weights(theirs, mine, rename=our_name, skip=())]

    buffer = SharedReplayBuffer(args, spec.n_agents, obs_space, state_space, act_space)
    out = {"battles ended in the rollout": collect(policy, buffer, spec, threads, seed)}
    with torch.no_grad():  # the rollout's log-probabilities, entropies and values, step by step
        worst = {"log-probabilities": 0.0, "entropies (active agents' mean)": 0.0, "values": 0.0}
        for t in range(buffer.episode_length):
            b, n = threads, spec.n_agents
            memory = torch.as_tensor(buffer.rnn_states[t, :, :, 0])
            first = torch.as_tensor(buffer.masks[t, :, 0, 0]) == 0
            mine = action_distribution(ours.actor(torch.as_tensor(buffer.obs[t]).reshape(1, b * n, -1), memory.reshape(b * n, -1),
                              torch.ones(1, b * n), torch.as_tensor(buffer.available_actions[t]).reshape(1, b * n, -1) > 0)[0])
            log_prob = mine.log_prob(torch.as_tensor(buffer.actions[t, ..., 0]).reshape(1, -1)).reshape(b, n)
            worst["log-probabilities"] = max(worst["log-probabilities"], relative(log_prob, buffer.action_log_probs[t, ..., 0]))
            active = torch.as_tensor(buffer.active_masks[t, ..., 0])
            _, entropy = policy.actor.evaluate_actions(
                buffer.obs[t].reshape(b * n, -1), buffer.rnn_states[t].reshape(b * n, 1, -1),
                buffer.actions[t].reshape(b * n, 1), buffer.masks[t].reshape(b * n, 1),
                buffer.available_actions[t].reshape(b * n, -1), buffer.active_masks[t].reshape(b * n, 1))
            key = "entropies (active agents' mean)"
            worst[key] = max(worst[key], relative(masked_mean(mine.entropy().reshape(b, n), active), entropy))
            _, value, _, ours.critic_h = ours.value(torch.as_tensor(buffer.share_obs[t, :, 0]), first,
                                                    ours.critic_memory(b))
            worst["values"] = max(worst["values"], relative(value, buffer.value_preds[t, ..., 0]))
        out.update({f"rollout: {k}": v for k, v in worst.items()})

    with torch.no_grad():
        last = buffer.episode_length
        next_values = policy.get_values(buffer.share_obs[last].reshape(threads * spec.n_agents, -1),
                                        buffer.rnn_states_critic[last].reshape(threads * spec.n_agents, 1, -1),
                                        buffer.masks[last].reshape(threads * spec.n_agents, 1))
    buffer.compute_returns(next_values.numpy().reshape(threads, spec.n_agents, 1), trainer.value_normalizer)
    ours.rollout = our_rollout(buffer)
    ours.bootstrap = torch.as_tensor(buffer.value_preds[last, ..., 0])
    data = {k: torch.stack([step[k] for step in ours.rollout]) for k in ours.rollout[0]}
    returns, _ = ours.returns(data, ours.bootstrap)
    out["returns (GAE, denormalised values)"] = relative(returns, buffer.returns[:-1, ..., 0])

    to_ours = ours_of_official_chunks(threads, spec.n_agents, buffer.episode_length,
                                      config.data_chunk_length if config.recurrent else 1)
    official_order = [torch.randperm(len(to_ours)) for _ in range(config.ppo_epoch)]
    with permutations(official_order):
        info = trainer.train(buffer)
    with permutations([to_ours[p] for p in official_order]):
        metrics = ours.update()
    for theirs, mine in (("value_loss", "train/value_loss"), ("policy_loss", "train/policy_loss"),
                         ("dist_entropy", "train/entropy"), ("actor_grad_norm", "train/actor_grad_norm"),
                         ("critic_grad_norm", "train/critic_grad_norm")):
        out[f"train(): mean {theirs}"] = relative(torch.tensor(metrics[mine]), np.asarray(float(info[theirs])))
    out["train(): every parameter afterwards"] = max(relative_tensors(mine, theirs) for theirs, mine in pairs)
    out["train(): every gradient of the last minibatch"] = gradient_difference(pairs)
    out["train(): value normaliser"] = max(
        relative(getattr(ours.value_norm, name), getattr(trainer.value_normalizer, name).detach().numpy())
        for name in ("running_mean", "running_mean_sq", "debiasing_term"))
    return out


def relative(mine: torch.Tensor, theirs) -> float:
    """``relative_tensors`` with the official side as a numpy array (or tensor) of any shape holding as many values."""
    theirs = torch.as_tensor(np.asarray(theirs), dtype=torch.float64)
    return relative_tensors(mine.detach().to(torch.float64).reshape(theirs.shape), theirs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, required=True, help="checkout of marlbenchmark/on-policy")
    p.add_argument("--task", default="smac/3s5z_vs_3s6z")
    p.add_argument("--huber-delta", type=float,
                   help="on both sides (default: the preset's 10, which normalised value errors rarely reach; 0.125 "
                        "exercises the linear part and is exact in float32, as on-policy's float32 mask needs)")
    args = p.parse_args(argv)
    if not (args.official / "onpolicy" / "algorithms" / "r_mappo").is_dir():
        p.error(f"{args.official} is not a checkout of marlbenchmark/on-policy (no onpolicy/algorithms/r_mappo)")
    commit = "unknown (not a git checkout)"
    if (args.official / ".git").exists():
        commit = subprocess.run(["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or commit
    print(f"official: marlbenchmark/on-policy at {commit}; task {args.task}, float64, MAPPO paper preset")
    results = compare(args.task, args.official, settings={"huber_delta": args.huber_delta} if args.huber_delta else None)
    print(f"  ({results.pop('battles ended in the rollout')} battles ended in the rollout of 8 x {ROLLOUT} steps)")
    width = max(map(len, results))
    for name, value in results.items():
        print(f"  {name.ljust(width)}  {value:.1e}")
    passed = all(v <= TOLERANCE for v in results.values())
    print("PASS" if passed else f"FAIL: differences above {TOLERANCE:g}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
