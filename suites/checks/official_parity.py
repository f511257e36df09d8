"""Number-for-number check of our MAMBA or MABL against the official code, on the same weights and data.

Builds the official networks from a checkout you provide (as ``official_learner_benchmark.py`` does; we ship
none of its code) and ours at the ``paper`` preset, copies every official parameter into ours by name
(the modules the official code defines but never uses are skipped: the critic's ``prior`` MLP and MABL's
``state_decoder``), and feeds both the same random batch in the official replay's layout. Sampling is
made deterministic on both sides (every categorical draw takes its most likely class, every Bernoulli
draw its likelier value), dropout is off (evaluation mode) and the learner and acting run in float64, so any
difference beyond rounding is a difference in the computation. Compared, with the largest relative
difference of each:

- the world-model loss and the gradient of every world-model parameter (``model_loss``);
- imagination (``actor_rollout``): actions, imagined availability, behaviour logits, TD(lambda) returns
  and the advantages;
- the PPO actor loss and the critic's value loss on all imagined samples, and their gradients;
- a full learner update with its optimiser steps (``train_model`` x 2, then ``train_agent``: 5 PPO epochs of
  2,000-sample minibatches) from the same weights on one pinned batch, dropout off, minibatches in order:
  every parameter afterwards, relative to the size of the official update, and the annealed entropy weight
  (and Flatland's target critic). Adam divides by ``sqrt(v) + 1e-8``, which multiplies rounding in gradient
  elements near 0 by up to 2.5e7, so these pass at ``--update-tolerance`` (1e-6; rounding gives up to 5e-10,
  a wrong optimiser setting 2e-5 to 2);
- acting: the official ``DreamerController.step`` (what its workers call each environment step) against our
  ``act`` over a few steps with an episode boundary in between: actions, and the recurrent state carried to
  the next step. On Flatland MAMBA's agents attend only to the trains they observe (the worker's ``nn_mask``);
- collection (SMAC): the official ``DreamerWorker`` drives our simulator through the official SMAC wrapper's
  interface and fills the official ``DreamerMemory``; our runner's loop drives a second simulator with the same
  seed and fills our replay. Every stored entry and every sequence the memory can return must be identical
  (float32, as both collect; the absorbing entries' random actions set to action 0 on both sides). The official
  Flatland wrapper needs flatland 2.2.2, so Flatland collection is not compared.

    python -m suites.checks.official_parity --official /tmp/mamba --algorithm mamba --task smac/2s3z
    python -m suites.checks.official_parity --official /tmp/MABL/mabl --algorithm mabl --task smac/3s5z_vs_3s6z
    python -m suites.checks.official_parity --official /tmp/mamba --algorithm mamba --task flatland/5_agents

Flatland runs MAMBA's optimal/flatland configuration (the MABL repository ships no Flatland learner).

Exit status 1 when a difference exceeds ``--tolerance`` (after a full update: ``--update-tolerance``).
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import envs
from algorithms import make_algorithm, make_config, sampling
from algorithms.base import Transition
from algorithms.world_model.losses import masked_logits, model_loss, ppo_actor_loss
from suites.checks.kit import CheckError, copy_official_weights, gradient_difference, relative
from suites.checks.official_learner_benchmark import OFFICIAL_ALGORITHMS, official_learner

# Official parameter name prefix -> ours (MAMBA's RSSMTransition/Representation, MABL's two-level versions).
RENAMES = (
    ("transition._cell.", "agent.cell."), ("transition._attention_stack.", "communication."),
    ("transition._rnn_input_model.", "agent.input_model."), ("transition._stochastic_prior_model.", "agent.prior."),
    ("representation._stochastic_posterior_model.", "agent_posterior."),
    ("transition.agent_cell.", "agent.cell."), ("transition.agent_rnn_input_model.", "agent.input_model."),
    ("transition.agent_stochastic_prior_model.", "agent.prior."),
    ("representation.agent_stochastic_posterior_model.", "agent_posterior."),
    ("transition.global_cell.", "glob.cell."), ("transition.global_rnn_input_model.", "glob.input_model."),
    ("transition.global_stochastic_prior_model.", "glob.prior."),
    ("representation.global_stochastic_posterior_model.", "global_posterior."),
)
NEVER_USED = ("prior.", "state_decoder.")  # defined by the official code, read by no loss or forward pass


def copy_weights(official: torch.nn.Module, ours: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``copy_official_weights`` with the world models' names, skipping what the official code never uses."""
    return copy_official_weights(official, ours, our_name, NEVER_USED)


def our_name(official: str) -> str:
    for theirs, ours in RENAMES:
        if official.startswith(theirs):
            return ours + official[len(theirs):]
    return re.sub(r"^(reward_model|pcont|av_action|q_features)\.model\.", r"\1.", official)  # DenseModel's .model


@contextmanager
def deterministic_sampling():
    """Every draw takes its most likely value on both sides: ours through the one switch the algorithms read
    (``algorithms.sampling.deterministic``: likeliest class, likelier Bernoulli outcome, PPO minibatches in
    sample order); the official code's, which cannot be told, by standing in for the three functions it draws
    with (``torch.multinomial`` in its ``OneHotCategorical``, ``torch.bernoulli``, ``np.random.permutation``)
    while the block runs. Call it with the replays' ``sample`` already pinned to a batch."""
    saved = torch.multinomial, torch.bernoulli, np.random.permutation
    torch.multinomial = lambda probs, n, replacement=False, **_: probs.argmax(-1, keepdim=True).expand(
        *probs.shape[:-1], n)
    torch.bernoulli = lambda probs, *_, **__: (probs > 0.5).to(probs.dtype)
    np.random.permutation = lambda n: np.arange(n)
    try:
        with sampling.deterministic():
            yield
    finally:
        torch.multinomial, torch.bernoulli, np.random.permutation = saved


def random_batch(spec, steps: int, batch: int, seed: int = 1):
    """The same sequences in the official layout (``[T, B, N, 1]`` float flags) and ours."""
    g = torch.Generator().manual_seed(seed)
    t, b, n, a = steps, batch, spec.n_agents, spec.n_actions
    theirs = {
        "observation": torch.randn(t, b, n, spec.obs_dim, generator=g),
        "global_state": torch.randn(t, b, 1, spec.state_dim, generator=g),
        "action": F.one_hot(torch.randint(0, a, (t, b, n), generator=g), a).double(),
        "av_action": (torch.rand(t, b, n, a, generator=g) > 0.3).double(),
        "reward": torch.randn(t, b, 1, 1, generator=g).expand(t, b, n, 1),
        "done": (torch.rand(t, b, 1, 1, generator=g) > 0.8).double().expand(t, b, n, 1),
    }
    theirs["last"] = theirs["done"]
    theirs["fake"] = torch.zeros(t, b, n, 1, dtype=torch.float64)
    theirs["fake"][-2:, 0] = 1.0  # an absorbing tail in the first sequence
    return theirs, in_our_layout(theirs)


OUR_NAMES = {"observation": "obs", "global_state": "state", "action": "action", "av_action": "avail",
             "reward": "reward", "done": "done", "fake": "fake", "last": "last"}


def in_our_layout(official: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """Official sequences ``[T, B, N, ...]`` (0/1 flags ``[T, B, N, 1]``, the state ``[T, B, 1, S]``) as our
    replay returns them: our names, one ``last`` flag per step, boolean flags."""
    ours = {}
    for key, value in official.items():
        if value is None:  # no availability on Flatland
            continue
        if key == "last":
            value = value[:, :, 0, 0]
        elif key == "global_state":
            value = value[:, :, 0]
        elif key in ("reward", "done", "fake"):
            value = value[..., 0]
        ours[OUR_NAMES[key]] = value.bool() if key in ("av_action", "done", "fake", "last") else value
    return ours


def acting_inputs(spec, steps: int, seed: int = 2):
    """One environment's inputs per step: observations, availability (never empty), who observes whom (Flatland),
    and the first step of each episode (two episodes)."""
    g = torch.Generator().manual_seed(seed)
    n, a = spec.n_agents, spec.n_actions
    avail = torch.rand(steps, 1, n, a, generator=g) > 0.3
    avail[..., 0] = True
    first = torch.zeros(steps, 1, dtype=torch.bool)
    first[0] = first[steps // 2] = True
    return (torch.randn(steps, 1, n, spec.obs_dim, generator=g), avail, torch.rand(steps, 1, n, n, generator=g) > 0.5,
            first)


def official_controller(off):
    """A new official ``DreamerController`` on the learner's configuration, given ``DreamerControllerConfig``'s
    exploration settings (which its ``step`` never reads)."""
    controller_class = importlib.import_module("agent.controllers.DreamerController").DreamerController
    off.config.EXPL_DECAY, off.config.EXPL_NOISE, off.config.EXPL_MIN = 0.9999, 0.0, 0.0
    return controller_class(off.config)


def compare_acting(off, ours, spec, algorithm: str, steps: int) -> dict[str, float]:
    """The official controller (a worker's acting loop: ``init_rnns`` when an episode starts, then ``step``)
    against our ``act``, both from the learner's weights. Call under :func:`deterministic_sampling`."""
    controller = official_controller(off)
    if algorithm == "mamba":  # MAMBA's controller keeps its own copy; MABL's acts with the learner's modules
        controller.receive_params({"model": off.model.state_dict(), "actor": off.actor.state_dict()})
    smac, n = spec.family == "smac", spec.n_agents
    obs, avail, neighbours, first = acting_inputs(spec, steps)
    memory = ours.initial_memory(1)
    worst = {"acting: actions (mismatches)": 0.0, "acting: recurrent state": 0.0, "acting: latent sample": 0.0}
    for t in range(steps):
        if first[t]:
            controller.init_rnns()
        nn_mask = None if smac else (~(neighbours[t, 0] | torch.eye(n, dtype=torch.bool))).unsqueeze(0).repeat(8, 1, 1)
        inputs = (obs[t], avail[t].double() if smac else None, nn_mask)
        action = controller.step(*inputs) if algorithm == "mamba" else controller.step(*inputs, off.model, off.actor)
        state = controller.prev_rnn_state
        mine, memory, _ = ours.act(obs[t], avail[t], memory, first[t], neighbours=None if smac else neighbours[t])
        deter, stoch, _ = memory.split([state.deter.shape[-1], state.stoch.shape[-1], spec.n_actions], -1)
        worst["acting: actions (mismatches)"] += float((mine[0] != action.argmax(-1)).sum())
        worst["acting: recurrent state"] = max(worst["acting: recurrent state"], relative(deter, state.deter))
        worst["acting: latent sample"] = max(worst["acting: latent sample"], relative(stoch, state.stoch))
    return worst


def without_dropout(*modules: torch.nn.Module) -> None:
    """Dropout probabilities set to 0, so that training mode (the world model's steps) is deterministic."""
    for module in (m for root in modules for m in root.modules()):
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        elif isinstance(module, torch.nn.MultiheadAttention):
            module.dropout = 0.0


def compare_update(checkout: Path, algorithm: str, task: str, steps: int, batch: int, model_epochs: int = 2,
                   epochs: int = 1) -> dict[str, float]:
    """One learner update with its optimiser steps, as the official ``DreamerLearner.step`` runs it
    (``model_epochs`` x ``train_model``, then ``epochs`` x ``train_agent``), from the same weights on one batch
    of ``batch`` x ``steps`` sequences given to every step, in float64, sampling deterministic, dropout off,
    PPO minibatches in order: every parameter afterwards (difference relative to the official update's size)
    and the annealed entropy weight. Covers the optimisers (Adam, learning rates, the actor's weight decay),
    gradient clipping, the PPO epochs and 2,000-sample minibatches, entropy annealing per minibatch and
    Flatland's target critic."""
    overrides = {"capacity": 1_000, "model_epochs": model_epochs, "epochs": epochs}
    spec, off, ours, pairs = paired_learners(checkout, algorithm, task, torch.float64, 0, overrides)
    names, smac = tuple(pairs), spec.family == "smac"
    without_dropout(off.model, ours.model)
    before = {name: [theirs.detach().clone() for theirs, _ in pairs[name]] for name in names}
    theirs, mine = random_batch(spec, steps, batch)
    if not smac:
        theirs["av_action"] = None
    ours.replay.sample = lambda size: mine
    with deterministic_sampling():
        for _ in range(model_epochs):
            off.train_model(theirs)
        for _ in range(epochs):
            off.train_agent(theirs)
        ours.learner_call()
    out = {}
    for name in names:
        out[f"update: {name} parameters (worst tensor)"] = max(
            float((mine_p - theirs_p).detach().abs().max() / (theirs_p - start).detach().abs().max().clamp(min=1e-12))
            for (theirs_p, mine_p), start in zip(pairs[name], before[name]))
    out["update: annealed entropy weight"] = abs(float(ours.behaviour.entropy_weight) - off.entropy) / off.entropy
    if not smac:
        target = dict(ours.behaviour.target_critic.named_parameters())  # the official one is a fresh deepcopy by now
        out["update: target critic = critic"] = max(relative(target[our_name(name)], theirs_p) for name, theirs_p in
                                                    off.old_critic.named_parameters() if not name.startswith(NEVER_USED))
    return out


class OfficialStarCraftView:
    """Our simulator (one environment) behind the official SMAC wrapper's interface, which the official worker
    drives: per-agent dicts, the team reward and done copied to every agent, ``episode_limit``/``battle_won``
    in ``info`` (jbr-ai-labs/mamba@2c97258 ``env/starcraft/StarCraft.py``); MABL's wrapper adds the global
    state (``get_state``, and ``step`` returns it second). Episodes follow one another as our runner sees
    them: a finished battle restarts inside ``step``, and ``reset`` returns that restart."""

    def __init__(self, env, with_state: bool):
        self.env, self.with_state, self.n_agents = env, with_state, env.spec.n_agents
        self.current = None

    def reset(self):
        self.current = self.current if self.current is not None else self.env.reset()
        return dict(enumerate(self.current.obs[0].numpy()))

    def get_avail_agent_actions(self, handle: int):
        return self.current.avail_actions[0, handle].int().tolist()

    def get_state(self):
        return self.current.state[0].numpy()

    def step(self, actions):
        self.current = next_step = self.env.step(torch.stack(actions).view(1, -1))
        n, reward, done = self.n_agents, float(next_step.reward[0]), float(next_step.done[0])
        info = {"battle_won": bool(next_step.info["won"][0])}
        if next_step.info["episode_limit"][0]:
            info["episode_limit"] = True
        obs = dict(enumerate(next_step.final_obs[0].numpy()))
        rest = ({i: reward for i in range(n)}, {i: done for i in range(n)}, info)
        return (obs, next_step.final_state[0].numpy(), *rest) if self.with_state else (obs, *rest)


def official_worker_class():
    """The official ``DreamerWorker`` class: MAMBA's is a ray actor (the decorator is made a no-op here) and both
    import flatland 2's ``RailAgentStatus``, which only their Flatland branches read."""
    if "ray" not in sys.modules:
        sys.modules["ray"] = types.SimpleNamespace(remote=lambda cls: cls)
    try:
        import flatland.envs.agent_utils as agent_utils
    except ImportError:
        agent_utils = sys.modules["flatland.envs.agent_utils"] = types.ModuleType("flatland.envs.agent_utils")
        sys.modules.setdefault("flatland", types.ModuleType("flatland"))
        sys.modules.setdefault("flatland.envs", types.ModuleType("flatland.envs"))
    if not hasattr(agent_utils, "RailAgentStatus"):
        agent_utils.RailAgentStatus = types.SimpleNamespace(ACTIVE=1, READY_TO_DEPART=0, DONE_REMOVED=3)
    return importlib.import_module("agent.workers.DreamerWorker").DreamerWorker


def compare_collection(checkout: Path, algorithm: str, task: str, episodes: int, seed: int = 3) -> tuple[dict, str]:
    """SMAC collection: the official worker (its acting loop, absorbing entries, ``last``) filling the official
    ``DreamerMemory`` against our runner's loop filling our replay, on two simulators with the same seed and
    the same weights, sampling deterministic, in float32 as both collect. Compared: every stored entry and
    every sequence the memory can return (the official shift), with the absorbing entries' random actions
    set to action 0 on both sides."""
    spec, off, ours, _ = paired_learners(checkout, algorithm, task, torch.float32, seed, {"capacity": 10_000})
    mabl = algorithm == "mabl"
    view = OfficialStarCraftView(envs.make(task, num_envs=1, seed=seed), with_state=mabl)
    env_type = importlib.import_module("environments").Env.STARCRAFT
    env_config = types.SimpleNamespace(create_env=lambda: view, ENV_TYPE=env_type)
    controller_config = types.SimpleNamespace(create_controller=lambda: official_controller(off),
                                              IN_DIM=spec.obs_dim, STATE_DIM=spec.state_dim)
    worker = official_worker_class()(0, env_config, controller_config)
    memory_class = importlib.import_module("agent.memory.DreamerMemory").DreamerMemory
    length = ours.config.seq_length
    sizes = (spec.n_actions, spec.obs_dim) + ((spec.state_dim,) if mabl else ())
    memory = memory_class(10_000, length, *sizes, spec.n_agents, "cpu", env_type)
    env = envs.make(task, num_envs=1, seed=seed)
    step, state, first = env.reset(), ours.initial_memory(1), torch.ones(1, dtype=torch.bool)
    out, battles_ended = {}, 0
    columns = ["observation"] + (["global_state"] if mabl else []) + ["action", "reward", "done", "fake", "last",
                                                                      "avail_action"]  # memory.append's order
    with deterministic_sampling():
        for _ in range(episodes):
            if mabl:
                buffer, _ = worker.run(off.model, off.actor)
            else:
                buffer, _ = worker.run({"model": off.model.state_dict(), "actor": off.actor.state_dict()})
            memory.append(*(buffer[key] for key in columns))
            battles_ended += int(buffer["fake"].any())  # a battle's end appends absorbing entries
            while True:
                actions, state, extras = ours.act(step.obs, step.avail_actions, state, first)
                next_step = env.step(actions)
                ours.observe(Transition.between(step, first, actions, next_step, extras))
                step, first = next_step, next_step.done
                if bool(next_step.done[0]):
                    break
    entries = int(ours.replay.count[0])
    data = {key: value[:entries, 0] for key, value in ours.replay.data.items()}
    absorbing = data["fake"].all(-1)
    data["action"][absorbing] = 0
    data["action"] = F.one_hot(data["action"], spec.n_actions)
    memory.actions[:entries][absorbing.numpy()] = F.one_hot(torch.tensor(0), spec.n_actions).float().numpy()
    out["collection: stored entries (count mismatches)"] = float(abs(memory.next_idx - entries))
    stored = {"observation": memory.observations, "action": memory.actions, "reward": memory.rewards,
              "done": memory.dones, "fake": memory.fake, "last": memory.last, "av_action": memory.av_actions}
    if mabl:
        stored["global_state"] = memory.global_states
    theirs = in_our_layout({key: torch.as_tensor(value[:entries]).unsqueeze(1) for key, value in stored.items()})
    for key, value in theirs.items():  # the stream as one sequence
        out[f"collection: stored {key}"] = relative(data[key].double(), value[:, 0].double())
    # every sequence start the official sampler may draw (it never crosses the write position)
    worst, starts = 0.0, int(ours.replay._valid_starts()[0])
    for start in range(starts):
        mine = ours.replay.sequences(torch.tensor([start]))
        for key, value in in_our_layout(memory.get_transitions(np.arange(start, start + length)[None])).items():
            worst = max(worst, relative(mine[key].double(), value.double()))
    out[f"collection: every sampled sequence ({starts} starts)"] = worst
    return out, f"{episodes} episodes, {entries} entries, {battles_ended} ended by the battle (absorbing entries)"


def task_spec(task: str):
    env = envs.make(task, num_envs=1)
    env.close()
    return env.spec


def paired_learners(checkout: Path, algorithm: str, task: str, dtype: torch.dtype, seed: int, overrides: dict):
    """The official learner and ours at ``paper`` in ``dtype``, ours holding the official weights (Flatland's
    target critic too). Returns the task's spec, both learners and the (official, ours) parameter pairs of the
    model, actor and critic."""
    torch.set_default_dtype(dtype)
    torch.manual_seed(seed)
    spec = task_spec(task)
    off = official_learner(checkout, algorithm, spec, "cpu", {})
    ours = make_algorithm(algorithm, spec, make_config(algorithm, spec, "paper", overrides))
    pairs = {name: copy_weights(getattr(off, name), getattr(ours, name)) for name in ("model", "actor", "critic")}
    if spec.family != "smac":  # Flatland bootstraps imagination with a target critic (the official ``old_critic``)
        copy_weights(off.old_critic, ours.behaviour.target_critic)
    return spec, off, ours, pairs


def compare(checkout: Path, algorithm: str, task: str, steps: int, batch: int) -> dict[str, float]:
    spec, off, ours, pairs = paired_learners(checkout, algorithm, task, torch.float64, 0, {"capacity": 1_000})
    smac = spec.family == "smac"
    official_loss = sys.modules["agent.optim.loss"]  # imported by the official learner
    advantage = sys.modules["agent.optim.utils"].advantage if smac else (lambda adv: adv)  # SMAC only
    theirs, mine = random_batch(spec, steps, batch)
    if not smac:
        theirs["av_action"] = None  # no available-action head on Flatland
    mabl = algorithm == "mabl"
    state_args = (theirs["global_state"],) if mabl else ()
    off.model.eval()
    ours.model.eval()
    out = {}
    with deterministic_sampling():
        # world model
        loss_theirs = official_loss.model_loss(off.config, off.model, theirs["observation"], *state_args, theirs["action"],
                                               theirs["av_action"], theirs["reward"], theirs["done"], theirs["fake"],
                                               theirs["last"])
        loss_mine, _ = model_loss(ours.model, mine)
        loss_theirs.backward()
        loss_mine.backward()
        out["world-model loss"] = relative(loss_mine, loss_theirs)
        out["world-model gradients (worst tensor)"] = gradient_difference(pairs["model"])
        # imagination
        rollout = official_loss.actor_rollout(theirs["observation"], *state_args, theirs["action"], theirs["last"],
                                              off.model, off.actor, off.critic if smac else off.old_critic, off.config)
        actions, av_actions, old_policy, *features, returns = rollout
        flat, adv_mine, _ = ours.behaviour.imagine_batch(mine)
        values = off.critic(*features, actions) if mabl else off.critic(*features)
        adv_theirs = advantage(returns - values.detach())
        out["imagined actions (mismatches)"] = float((flat["action"][..., 0] != actions.argmax(-1)).sum())
        masked = old_policy <= -1e9  # unavailable under the imagined availability (-1e10 on both sides; SMAC)
        out["imagined unavailable actions (mismatches)"] = float(((flat["old_logits"] <= -1e9) != masked).sum())
        out["imagined behaviour logits (available)"] = relative(flat["old_logits"][~masked], old_policy[~masked])
        out["TD(lambda) returns"] = relative(flat["returns"], returns)
        out["advantages"] = relative(adv_mine, adv_theirs)
    # PPO losses on every imagined sample
    entropy = ours.config.entropy
    actor_theirs = official_loss.actor_loss(features[0], actions, av_actions, old_policy, adv_theirs, off.actor, entropy)
    logits = masked_logits(ours.actor(flat["agent_feat"]), flat.get("avail"))
    actor_mine, _ = ppo_actor_loss(logits, flat["old_logits"], flat["action"], adv_mine, entropy, ours.config.ppo_clip)
    value_theirs = (official_loss.value_loss(off.critic, actions, *features, returns) if mabl
                    else official_loss.value_loss(off.critic, features[0], returns))
    value_mine = ((flat["returns"] - ours.critic(flat["critic_feat"])) ** 2 / 2).mean()
    for loss in (actor_theirs, actor_mine, value_theirs, value_mine):
        loss.backward()
    out["actor loss"] = relative(actor_mine, actor_theirs)
    out["actor gradients (worst tensor)"] = gradient_difference(pairs["actor"])
    out["value loss"] = relative(value_mine, value_theirs)
    out["critic gradients (worst tensor)"] = gradient_difference(pairs["critic"])
    with deterministic_sampling():
        out.update(compare_acting(off, ours, spec, algorithm, steps))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, required=True, help="official checkout (for MABL its mabl/ folder)")
    p.add_argument("--algorithm", choices=OFFICIAL_ALGORITHMS, required=True)
    p.add_argument("--task", default="smac/2s3z", help="smac/2s3z: random-weight policies end battles there (3m: time limits)")
    p.add_argument("--steps", type=int, default=10, help="sequence length of the batch the losses are compared on")
    p.add_argument("--batch", type=int, default=3, help="sequences in that batch")
    p.add_argument("--update-steps", type=int, default=20, help="sequence length of the full update's batch")
    p.add_argument("--update-batch", type=int, default=10,
                   help="sequences in the full update's batch (10 x 20 imagine enough samples for 2 PPO minibatches)")
    p.add_argument("--episodes", type=int, default=3, help="episodes collected by each side (SMAC)")
    p.add_argument("--tolerance", type=float, default=1e-9, help="largest relative difference that passes")
    p.add_argument("--update-tolerance", type=float, default=1e-6,
                   help="the same after a full update: Adam divides by sqrt(v) + 1e-8, which multiplies rounding in "
                        "a gradient element near 0 by up to 1 / (4 x 1e-8)")
    args = p.parse_args(argv)
    smac = args.task.startswith("smac/")
    try:
        result = compare(args.official, args.algorithm, args.task, args.steps, args.batch)
        result.update(compare_update(args.official, args.algorithm, args.task, args.update_steps, args.update_batch))
        if smac:
            collection, summary = compare_collection(args.official, args.algorithm, args.task, args.episodes)
            result.update(collection)
    except CheckError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.algorithm} vs official ({args.official}), {args.task}, relative differences (learner and acting "
          "in float64):")
    failed = []
    for name, value in result.items():
        print(f"  {name:48s} {value:.1e}" if "mismatches" not in name else f"  {name:48s} {value:.0f}")
        if value > (args.update_tolerance if name.startswith("update:") else args.tolerance):
            failed.append(name)
    print(f"  (collection in float32: {summary})" if smac else
          "  (collection not compared: the official Flatland wrapper runs flatland 2.2.2)")
    print(f"FAIL: {', '.join(failed)}" if failed else "PASS")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
