"""MAMBA, MABL and the single-level ablation: shapes, losses by hand, replay indexing, CTDE, learning, resume."""
import copy

import pytest
import torch
import torch.nn.functional as F

from algorithms import Divergence, Transition, make_algorithm, make_config
from algorithms.sampling import sample_index
from algorithms.world_model.losses import kl_balanced, lambda_returns, model_loss, next_features, ppo_actor_loss
from algorithms.world_model.networks import AgentAttention, straight_through_sample
from algorithms.world_model.replay import SequenceReplay
from envs import UsageError
from envs.flatland.family import FLATLAND
from envs.smac.family import SMAC
from tests.helpers import simulator

WORLD_MODELS = ("mamba", "mabl", "mabl_single_level")
SMAC_3S5Z = SMAC.describe("3s5z_vs_3s6z", "sim", n_agents=8, obs_dim=136, state_dim=230, n_actions=15,
                          episode_limit=170)
FLATLAND_5 = FLATLAND.describe("5_agents", "flatland", n_agents=5, obs_dim=205, state_dim=5 * 205, n_actions=3,
                               episode_limit=560)


def _algo(name, spec, preset="tiny", **overrides):
    return make_algorithm(name, spec, make_config(name, spec, preset, overrides))


def _random_batch(spec, t=6, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = spec.n_agents
    return {"obs": torch.randn(t, b, n, spec.obs_dim, generator=g), "state": torch.randn(t, b, spec.state_dim, generator=g),
            "avail": torch.rand(t, b, n, spec.n_actions, generator=g) > 0.3, "fake": torch.zeros(t, b, n, dtype=torch.bool),
            "last": torch.zeros(t, b, dtype=torch.bool), "done": torch.zeros(t, b, n, dtype=torch.bool),
            "reward": torch.randn(t, b, n, generator=g),
            "action": F.one_hot(torch.randint(0, spec.n_actions, (t, b, n), generator=g), spec.n_actions).float()}


# ---------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("spec", [SMAC_3S5Z, FLATLAND_5], ids=["smac", "flatland"])
@pytest.mark.parametrize("name", WORLD_MODELS)
def test_component_shapes(name, spec):
    torch.manual_seed(0)
    algo = _algo(name, spec)
    cfg, model, n = algo.config, algo.model, spec.n_agents
    batch = _random_batch(spec)
    prior, post = model.observe_sequence(batch["obs"], batch["state"], batch["action"], batch["last"])
    assert post.agent.stoch.shape == (6, 3, n, cfg.stochastic) and post.agent.deter.shape == (6, 3, n, cfg.deterministic)
    assert (post.glob is not None) == (name == "mabl") == (prior.glob is not None)
    if post.glob is not None:
        assert post.glob.stoch.shape == (6, 3, n, cfg.stochastic)
    one_hots = post.agent.stoch.detach().view(6, 3, n, cfg.n_categoricals, cfg.n_classes)
    torch.testing.assert_close(one_hots.sum(-1), torch.ones(6, 3, n, cfg.n_categoricals))
    assert ((one_hots - one_hots.round()).abs() < 1e-6).all()  # straight-through values are one-hot
    obs_pred, hidden = model.observation_decoder(post.agent.features())
    assert obs_pred.shape == batch["obs"].shape and hidden.shape[-1] == cfg.hidden
    assert model.reward_model(next_features(post, False)).shape == (5, 3, n, 1)
    assert (model.av_action is not None) == (spec.family == "smac")
    loss, parts = model_loss(model, batch)
    expected = {"obs_loss", "reward_loss", "pcont_loss", "info_loss", "kl_agent"}
    expected |= {"avail_loss"} if spec.family == "smac" else set()
    expected |= {"kl_global"} if name == "mabl" else set()
    assert set(parts) == expected and loss.dim() == 0 and torch.isfinite(loss)
    assert algo.critic(algo.behaviour.critic_input(post)).shape == (6, 3, n, 1)
    actions, memory, _ = algo.act(batch["obs"][0], batch["avail"][0], algo.initial_memory(3), torch.ones(3, dtype=torch.bool))
    assert actions.shape == (3, n) and memory.shape == algo.initial_memory(3).shape


@pytest.mark.parametrize("name", WORLD_MODELS)
def test_acting_masks_unavailable_actions_where_the_model_has_an_availability_head(name):
    """SMAC: never an unavailable action. Flatland (no availability head, as in the official code): the policy
    chooses freely, as the official worker lets it, and the environment overrides forced moves."""
    torch.manual_seed(0)
    for spec in (SMAC_3S5Z, FLATLAND_5):
        algo, batch = _algo(name, spec), _random_batch(spec, b=16)
        only_first = torch.zeros_like(batch["avail"][0])
        only_first[..., 0] = True
        actions, _, _ = algo.act(batch["obs"][0], only_first, algo.initial_memory(16), torch.ones(16, dtype=torch.bool))
        assert (actions == 0).all() == (spec.family == "smac")


def test_paper_presets_have_the_official_sizes():
    small_replay = dict(capacity=2000)  # the paper replay (250k steps) is allocated up front; not needed here
    mamba, mabl = _algo("mamba", SMAC_3S5Z, "paper", **small_replay), _algo("mabl", SMAC_3S5Z, "paper", **small_replay)
    assert mamba.model.communication.encoder.num_layers == 3
    assert mamba.model.communication.encoder.layers[0].dropout.p == 0.1
    assert mamba.model.agent.cell.hidden_size == 256 and mamba.actor.feedforward_model[0].in_features == 1280
    assert mabl.model.agent.prior.dists[0].in_features == 256 + 1024  # agent prior reads the global prior sample
    assert mabl.model.global_posterior.dists[0].in_features == 256 + 1024 + 256
    assert mabl.model.glob.input_model[0].in_features == 8 * 15 + 1024  # joint action
    assert mabl.model.pcont[0].in_features == 2560 and mabl.critic.embed.in_features == 2560
    assert (mabl.config.model_lr, mabl.config.actor_lr, mabl.config.value_lr) == (3e-4, 1e-4, 1e-3)
    flat = _algo("mamba", FLATLAND_5, "paper", **small_replay)
    assert flat.model.agent.cell.hidden_size == 600 and flat.config.seq_length == 50
    assert flat.behaviour.target_critic is not None
    mabl_flat = _algo("mabl", FLATLAND_5, "paper", **small_replay)
    assert mabl_flat.critic.embed.in_features == 1624 and mabl_flat.model.pcont[0].in_features == 1624


def test_agent_attention_computes_the_library_transformer_layers():
    """The written-out forward is the library's ``nn.TransformerEncoder`` on the same parameters, masks
    included; in training it applies dropout (each call draws anew), and with dropout 0 training changes
    nothing."""
    torch.manual_seed(0)
    n, d = 5, 32
    attention = AgentAttention(3, d, d, 8, 0.1, n).eval()
    x = torch.randn(2, 4, n, d)
    mask = torch.rand(8, n, n) < 0.4
    mask[:, range(n), range(n)] = False  # an agent always reads itself
    for m in (None, mask):
        library = attention.encoder((x + attention.position[:n]).reshape(-1, n, d),
                                    mask=None if m is None else m.repeat_interleave(8, 0))
        torch.testing.assert_close(attention(x, m), library.view_as(x))
    attention.train()
    assert not torch.allclose(attention(x), attention(x))
    no_dropout = AgentAttention(3, d, d, 8, 0.0, n)
    torch.testing.assert_close(no_dropout.train()(x, mask), no_dropout.eval()(x, mask))


@pytest.mark.parametrize("name", WORLD_MODELS)
def test_small_keeps_the_official_world_model_steps_per_policy_round_on_tiny_networks(name):
    """What lets ``small`` learn SMAC where ``tiny`` collapses: 15 world-model steps on 20-step sequences per
    policy round, as the paper preset's 60 steps per 4 rounds; everything else is ``tiny``'s."""
    paper, small, tiny = (make_config(name, SMAC_3S5Z, p) for p in ("paper", "small", "tiny"))
    assert small.model_epochs / small.epochs == paper.model_epochs / paper.epochs == 15
    assert small.seq_length == paper.seq_length == 20
    differing = {k for k, v in small.asdict().items() if tiny.asdict()[k] != v}
    assert differing == {"model_epochs", "model_batch_size", "seq_length"}


def test_preset_for_another_family_is_refused_with_a_hint():
    with pytest.raises(UsageError, match="paper_flatland.*is for flatland tasks.*smac/3s5z_vs_3s6z.*use 'paper'"):
        make_config("mabl", SMAC_3S5Z, "paper_flatland")
    with pytest.raises(UsageError, match="valid presets: paper, paper_flatland, paper_smac, small, tiny"):
        make_config("mamba", SMAC_3S5Z, "huge")
    with pytest.raises(UsageError, match="seq_length must be at least 3"):
        make_config("mabl", SMAC_3S5Z, "tiny", {"seq_length": 2})
    with pytest.raises(UsageError, match="need global_level=True"):
        make_config("mabl_single_level", SMAC_3S5Z, "tiny", {"critic_features": "all"})
    with pytest.raises(UsageError, match="reward_uses_global=True need global_level=True"):
        make_config("mamba", SMAC_3S5Z, "tiny", {"reward_uses_global": True})


def test_the_reward_experiment_gives_the_reward_head_the_global_features_in_training_and_imagination():
    torch.manual_seed(0)
    algo = _algo("mabl", SMAC_3S5Z, reward_uses_global=True)
    model, batch = algo.model, _random_batch(SMAC_3S5Z)
    assert model.reward_model[0].in_features == 2 * algo.config.feat
    seen = []
    model.reward_model.register_forward_hook(lambda _module, inputs, _out: seen.append(inputs[0]))
    torch.manual_seed(1)
    _, post = model.observe_sequence(batch["obs"], batch["state"], batch["action"], batch["last"])
    torch.manual_seed(1)  # the same latent samples inside the loss
    model_loss(model, batch)
    torch.testing.assert_close(seen[-1], next_features(post, use_global=True))  # h^g_{t+1} saw the joint action
    out = algo.behaviour.imagine(post.map(lambda x: x[:-1].reshape(-1, 8, x.shape[-1])))
    assert seen[-1].shape[-1] == 2 * algo.config.feat and torch.isfinite(out["returns"]).all()


# ---------------------------------------------------------------------------------------------- losses by hand
def test_samples_follow_the_probabilities_and_never_draw_an_impossible_class():
    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.1, 0.0, 0.6, 0.3, 0.0], [0.5, 0.0, 0.0, 0.0, 0.0, 0.5]])
    draws = sample_index(probs.expand(100_000, 2, 6))
    counts = torch.stack([torch.bincount(draws[:, k], minlength=6) for k in range(2)]).float() / 100_000
    assert counts[probs == 0].sum() == 0  # leading, inner and trailing zeros
    assert torch.allclose(counts, probs, atol=0.006)
    sample = straight_through_sample(torch.log(probs[:1]).expand(1000, 6), 1, 6)  # one categorical of 6
    hard = sample.round()
    assert torch.allclose(sample, hard, atol=1e-6) and (hard.sum(-1) == 1).all() and (hard[:, [0, 2, 5]] == 0).all()


def test_kl_balancing_matches_a_hand_computation():
    post = torch.log(torch.tensor([[0.5, 0.5, 0.9, 0.1]]))
    prior = torch.log(torch.tensor([[0.25, 0.75, 0.5, 0.5]]))
    kl_1 = 0.5 * torch.log(torch.tensor(0.5 / 0.25)) + 0.5 * torch.log(torch.tensor(0.5 / 0.75))
    kl_2 = 0.9 * torch.log(torch.tensor(0.9 / 0.5)) + 0.1 * torch.log(torch.tensor(0.1 / 0.5))
    expected = (kl_1 + kl_2) / 2  # averaged (not summed) over the two categoricals; both balance terms equal in value
    assert kl_balanced(post, prior, 2, 2, 0.2).item() == pytest.approx(expected.item(), abs=1e-5)
    post_p, prior_p = post.clone().requires_grad_(), prior.clone().requires_grad_()
    (kl_balanced(post_p, prior_p, 2, 2, 0.2)).backward()
    prior_only = prior.clone().requires_grad_()
    (0.8 * kl_balanced(post, prior_only, 2, 2, 0.0)).backward()
    torch.testing.assert_close(prior_p.grad, prior_only.grad)  # the prior gets 0.8 of the gradient


def test_lambda_returns_match_a_hand_computation():
    r, v, d = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.5]), torch.tensor([1.0, 0.5])
    boot, lam, gamma = torch.tensor(3.0), 0.95, 0.99
    g1 = 2.0 + gamma * 0.5 * 3.0 * (1 - lam) + gamma * 0.5 * lam * 3.0
    g0 = 1.0 + gamma * 1.0 * 1.5 * (1 - lam) + gamma * 1.0 * lam * g1
    torch.testing.assert_close(lambda_returns(r, v, d, boot, lam, gamma), torch.tensor([g0, g1]))


def test_ppo_clips_the_ratio():
    old = torch.zeros(2, 1, 2)
    new = torch.log(torch.tensor([[[3.0, 1.0]], [[1.0, 3.0]]]))  # ratio of action 0: 1.5 and 0.5
    actions, adv = torch.zeros(2, 1, 1, dtype=torch.long), torch.tensor([[[1.0]], [[-1.0]]])
    loss, _ = ppo_actor_loss(new, old, actions, adv, 0.0, 0.2)
    assert loss.item() == pytest.approx(-(1.2 * 1 + 0.8 * -1) / 2)


# ---------------------------------------------------------------------------------------------- replay
def _filled_replay(entries=12, seq=5, terminal_at=(4,), limit_at=(9,)):
    """One stream whose observation, state, reward and action encode the entry index."""
    replay = SequenceReplay(100, 1, 2, 1, 1, 4, seq, "cpu")
    for k in range(entries):
        f = float(k)
        done = torch.tensor([k in terminal_at or k in limit_at])
        replay.add(torch.full((1, 2, 1), f), torch.full((1, 1), f), torch.ones(1, 2, 4, dtype=torch.bool),
                   torch.zeros(1, 2, dtype=torch.bool), torch.full((1, 2), k % 4), torch.full((1, 2), f),
                   done.view(1, 1).expand(1, 2), done, torch.tensor([k in terminal_at]))
    return replay


def test_absorbing_entries_follow_terminal_steps_only():
    replay = _filled_replay()
    d = {k: v[:, 0] for k, v in replay.data.items()}
    assert len(replay) == 14  # 12 steps + 2 absorbing after the terminal step, none after the time limit
    assert d["obs"][5:7].abs().sum() == 0 and d["state"][5:7].abs().sum() == 0
    assert d["fake"][5:7].all() and not d["fake"][:5].any() and not d["fake"][7:14].any()
    assert d["done"][4:7].all() and d["reward"][5:7].abs().sum() == 0 and d["avail"][5:7].all()
    assert d["last"][:14].nonzero().squeeze(-1).tolist() == [6, 11]  # second absorbing entry; time-limited step


def test_sample_shift_pairs_each_observation_with_the_preceding_action():
    torch.manual_seed(0)
    replay = _filled_replay(entries=30, terminal_at=(), limit_at=())
    batch = replay.sample(16)
    obs_idx, act_idx = batch["obs"][..., 0, 0], batch["action"][..., 0, :].argmax(-1)
    assert batch["obs"].shape[0] == 4  # L - 1
    assert torch.equal(obs_idx[1:] - obs_idx[:-1], torch.ones(3, 16))
    assert torch.equal(act_idx, ((obs_idx - 1) % 4).long())  # step t: action of entry t, observation of entry t + 1
    assert torch.equal(batch["reward"][..., 0], obs_idx - 1)
    assert obs_idx.max() <= 28  # the newest entry never ends a sequence (official sampling bound)


def test_reward_and_pcont_read_the_stochastic_state_before_and_the_deterministic_state_after_the_action():
    from algorithms.world_model.rssm import Latent, ModelState

    t = torch.arange(4.0).view(4, 1, 1, 1)
    agent = Latent(logits=t.expand(4, 1, 1, 2), stoch=t.expand(4, 1, 1, 2), deter=10 + t.expand(4, 1, 1, 3))
    glob = Latent(logits=t.expand(4, 1, 1, 2), stoch=100 + t.expand(4, 1, 1, 2), deter=1000 + t.expand(4, 1, 1, 3))
    feat = next_features(ModelState(agent, glob), use_global=True)
    assert feat.shape == (3, 1, 1, 10)
    assert feat[1, 0, 0].tolist() == [1, 1, 12, 12, 12, 101, 101, 1002, 1002, 1002]  # [z_t; h_t+1] per level
    assert next_features(ModelState(agent, glob), use_global=False).shape == (3, 1, 1, 5)


def test_replay_streams_stay_contiguous_with_many_environments():
    replay = SequenceReplay(60, 3, 1, 1, 1, 2, 4, "cpu")
    for k in range(25):
        terminal = torch.tensor([False, k == 3, False])
        replay.add(torch.full((3, 1, 1), float(k)), torch.zeros(3, 1), torch.ones(3, 1, 2, dtype=torch.bool),
                   torch.zeros(3, 1, dtype=torch.bool), torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, 1),
                   terminal.view(3, 1), terminal, terminal)
    assert replay.count.tolist() == [20, 20, 20] and replay.next_idx.tolist() == [5, 7, 5]
    batch = replay.sample(200)
    steps = batch["obs"][..., 0, 0]
    gaps = steps[1:] - steps[:-1]
    assert ((gaps == 1) | (batch["fake"][1:, :, 0]) | (batch["fake"][:-1, :, 0])).all()


def test_replay_samples_every_valid_start_equally_often_and_waits_for_a_whole_sequence():
    replay = SequenceReplay(60, 3, 1, 1, 1, 2, 4, "cpu")  # 3 streams of 20 entries, sequences of 4
    rows, envs = torch.meshgrid(torch.arange(20), torch.arange(3), indexing="ij")
    replay.data["reward"][:] = (1000 * envs + rows).float().unsqueeze(-1)
    replay.count[:], replay.next_idx[:] = torch.tensor([3, 3, 3]), torch.tensor([3, 3, 3])
    assert not replay.ready()
    replay.count[:], replay.next_idx[:] = torch.tensor([20, 8, 0]), torch.tensor([7, 8, 0])
    assert replay.ready()
    torch.manual_seed(0)
    first = replay.sample(42_000)["reward"][0, :, 0].long()  # the entry each sequence starts at
    expected = {(0, (7 + k) % 20) for k in range(17)} | {(1, k) for k in range(4)}  # full ring: no crossing entry 7
    counts = torch.bincount(first, minlength=2000)
    assert {(int(v) // 1000, int(v) % 1000) for v in counts.nonzero().squeeze(-1)} == expected
    assert counts[counts > 0].sub(2000).abs().max() < 250  # 21 starts, 2,000 draws each


def test_fake_agents_are_masked_out_of_reconstruction_and_action_information():
    """A fake agent's observation and action targets do not count (its KL does: no masking there, as official).
    The single-level model keeps agents apart, so changing agent 2 leaves the other agents' terms unchanged."""
    algo = _algo("mabl_single_level", SMAC_3S5Z)
    batch = _random_batch(SMAC_3S5Z)
    batch["fake"][:, :, 2] = True
    changed = copy.deepcopy(batch)
    changed["obs"][:, :, 2] += 100.0
    changed["action"][:, :, 2] = changed["action"][:, :, 2].roll(1, -1)
    torch.manual_seed(1)
    _, a = model_loss(algo.model, batch)
    torch.manual_seed(1)
    _, b = model_loss(algo.model, changed)
    assert a["obs_loss"].item() == pytest.approx(b["obs_loss"].item(), rel=1e-6)
    assert a["info_loss"].item() == pytest.approx(b["info_loss"].item(), rel=1e-6)
    assert a["kl_agent"].item() != pytest.approx(b["kl_agent"].item(), rel=1e-6)


def test_flatland_finished_trains_are_fake_with_zero_observations_and_rewards_stay_per_train():
    algo = _algo("mabl_single_level", FLATLAND_5)
    b, n = 1, 5
    alive = torch.tensor([[True, False, True, True, True]])
    transition = Transition(
        obs=torch.ones(b, n, 205), state=torch.ones(b, 1025), avail_actions=torch.ones(b, n, 3, dtype=torch.bool),
        alive=alive, first=torch.tensor([True]), actions=torch.zeros(b, n, dtype=torch.long),
        reward=torch.ones(b), agent_reward=torch.arange(5.0).view(b, n), done=torch.tensor([False]),
        terminated=torch.tensor([False]),
        next_obs=torch.ones(b, n, 205), next_state=torch.ones(b, 1025),
        next_avail_actions=torch.ones(b, n, 3, dtype=torch.bool), next_alive=alive,
        final_obs=torch.ones(b, n, 205), final_state=torch.ones(b, 1025),
        final_avail_actions=torch.ones(b, n, 3, dtype=torch.bool),
        final_alive=torch.tensor([[True, False, False, True, True]]))
    algo.replay = SequenceReplay(40, 1, n, 205, 1025, 3, 5, "cpu")
    algo.observe(transition)
    d = algo.replay.data
    assert d["fake"][0, 0].tolist() == [False, True, False, False, False]
    assert d["obs"][0, 0, 1].abs().sum() == 0 and d["obs"][0, 0, 0].sum() == 205
    assert d["done"][0, 0].tolist() == [False, True, True, False, False]  # agent 2 finished during this step
    assert d["reward"][0, 0].tolist() == [0, 1, 2, 3, 4]  # each train's own reward (official Flatland worker)


# ---------------------------------------------------------------------------------------------- CTDE
@pytest.mark.parametrize("name", ["mabl", "mabl_single_level"])
def test_decentralised_act_works_without_the_global_level_and_ignores_other_agents(name):
    torch.manual_seed(0)
    algo = _algo(name, SMAC_3S5Z)
    batch = _random_batch(SMAC_3S5Z, b=2)
    obs, avail, first = batch["obs"][0], batch["avail"][0], torch.ones(2, dtype=torch.bool)
    torch.manual_seed(5)
    actions, memory, _ = algo.act(obs, avail, algo.initial_memory(2), first, explore=False)
    for module in ("glob", "global_posterior", "state_encoder", "pcont", "av_action", "reward_model"):
        setattr(algo.model, module, None)  # acting must not need any of these
    algo.critic = None
    others = obs.clone()
    others[:, 1:] = torch.randn_like(others[:, 1:])
    torch.manual_seed(5)
    actions2, memory2, _ = algo.act(others, avail, algo.initial_memory(2), first, explore=False)
    assert torch.equal(actions[:, 0], actions2[:, 0]) and torch.equal(memory[:, 0], memory2[:, 0])
    assert not torch.equal(memory[:, 1:], memory2[:, 1:])


def test_mamba_agents_exchange_messages_when_acting():
    torch.manual_seed(0)
    algo = _algo("mamba", SMAC_3S5Z)
    batch = _random_batch(SMAC_3S5Z, b=2)
    memory = algo.initial_memory(2)
    memory.uniform_()
    first = torch.zeros(2, dtype=torch.bool)
    _, a, _ = algo.act(batch["obs"][0], batch["avail"][0], memory, first)
    other = memory.clone()
    other[:, 1:, 32:] = 0.0  # other agents' previous latent and action change
    _, b, _ = algo.act(batch["obs"][0], batch["avail"][0], other, first)
    assert not torch.allclose(a[:, 0, :32], b[:, 0, :32])  # agent 0's GRU state depends on the messages


def test_mamba_on_flatland_hears_only_the_trains_it_observes():
    torch.manual_seed(0)
    algo = _algo("mamba", FLATLAND_5)
    batch = _random_batch(FLATLAND_5, b=2)
    memory = algo.initial_memory(2).uniform_()
    other = memory.clone()
    other[:, 2:, 32:] = 0.0  # trains 2..4 change their latent and action
    first = torch.zeros(2, dtype=torch.bool)
    sees = torch.zeros(2, 5, 5, dtype=torch.bool)
    sees[:, 1, 2] = True  # train 1 observes train 2; train 0 observes nobody
    act = lambda m: algo.act(batch["obs"][0], batch["avail"][0], m, first, neighbours=sees)[1]  # noqa: E731
    h = algo.config.deterministic
    a, b = act(memory), act(other)
    assert torch.allclose(a[:, 0, :h], b[:, 0, :h])  # nothing reaches train 0's GRU
    assert not torch.allclose(a[:, 1, :h], b[:, 1, :h])  # train 2's message reaches train 1


# ---------------------------------------------------------------------------------------------- learning
def _add_toy_step(algo, obs, actions, reward):
    """One step of 4 toy environments with everything available, nothing fake and no episode end; the
    team ``reward`` [B] is every agent's."""
    b, n, a = *actions.shape, algo.spec.n_actions
    flags = dict(dtype=torch.bool, device=obs.device)
    algo.replay.add(obs, obs[:, 0, :4], torch.ones(b, n, a, **flags), torch.zeros(b, n, **flags), actions,
                    reward.unsqueeze(-1).expand(b, n), torch.zeros(b, n, **flags), torch.zeros(b, **flags),
                    torch.zeros(b, **flags))


def _fit_world_model(algo, updates):
    algo.model.train()
    for _ in range(updates):
        loss, _ = model_loss(algo.model, algo.replay.sample(16))
        algo.world_model.optimiser.zero_grad()
        loss.backward()
        algo.world_model.optimiser.step()
    algo.model.eval()


def test_world_model_learns_a_tiny_deterministic_multi_agent_task():
    """Two agents see a shared clock (one-hot of t mod 4) and their own last action; the team reward is 1
    when the clock reads 3. Reconstruction and reward losses must fall below fixed thresholds."""
    torch.manual_seed(0)
    spec = SMAC.describe("toy", "sim", n_agents=2, obs_dim=6, state_dim=4, n_actions=2, episode_limit=40)
    algo = _algo("mabl", spec, model_lr=3e-3)
    g = torch.Generator().manual_seed(0)
    prev_actions = torch.zeros(4, 2, dtype=torch.long)
    for t in range(400):
        actions = torch.randint(0, 2, (4, 2), generator=g)
        clock = F.one_hot(torch.full((4, 2), t % 4), 4).float()
        prev = F.one_hot(prev_actions, 2).float() * (t > 0)
        obs = torch.cat([clock, prev], -1)
        _add_toy_step(algo, obs, actions, torch.full((4,), float(t % 4 == 3)))
        prev_actions = actions
    _fit_world_model(algo, 250)
    parts = {k: v.item() for k, v in model_loss(algo.model, algo.replay.sample(64))[1].items()}
    assert parts["obs_loss"] < 0.05, parts
    assert parts["reward_loss"] < 0.03, parts


@pytest.mark.parametrize("name", WORLD_MODELS)
def test_imagination_gives_finite_returns_of_the_right_shapes(name):
    torch.manual_seed(0)
    algo = _algo(name, SMAC_3S5Z)
    batch = _random_batch(SMAC_3S5Z, t=5, b=2)
    _, post = algo.model.observe_sequence(batch["obs"], batch["state"], batch["action"], batch["last"])
    start = post.map(lambda x: x[:-1].reshape(-1, 8, x.shape[-1]))
    out = algo.behaviour.imagine(start)
    h, s = algo.config.horizon, 4 * 2
    assert out["returns"].shape == (h - 1, s, 8, 1) and torch.isfinite(out["returns"]).all()
    assert out["reward"].shape == (h - 1, s, 1, 1)  # team reward: the mean over agents
    assert out["action"].shape == (h - 1, s, 8, 1) and out["old_logits"].shape == (h - 1, s, 8, 15)
    chosen_available = out["avail"].gather(-1, out["action"])
    assert (chosen_available | ~out["avail"].any(-1, keepdim=True)).all()  # sampled availability is respected


def _run_steps(algo, env, steps, seed=0):
    step, first = env.reset(), torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    memory, metrics = algo.initial_memory(env.num_envs), {}
    for _ in range(steps):
        actions, next_memory, extras = algo.act(step.obs, step.avail_actions, memory, first)
        next_step = env.step(actions)
        algo.observe(Transition.between(step, first, actions, next_step, extras))
        step, memory, first = next_step, next_memory, next_step.done
        metrics = algo.update() or metrics
    return metrics


def test_one_environment_reproduces_the_official_schedule():
    """B = 1: one learner call after every finished episode once the replay holds min_buffer_size steps,
    each with model_epochs world-model steps and epochs x ppo_epochs x ceil(samples / minibatch) PPO steps."""
    torch.manual_seed(0)
    env = simulator("3m", num_envs=1, seed=0)
    algo = _algo("mabl_single_level", env.spec, num_envs=1, min_buffer_size=60, model_epochs=3, epochs=2,
                 ppo_epochs=2, ppo_minibatch=50)
    step, first, memory = env.reset(), torch.ones(1, dtype=torch.bool), algo.initial_memory(1)
    expected_calls = 0
    for _ in range(200):
        actions, memory, _ = algo.act(step.obs, step.avail_actions, memory, first)
        next_step = env.step(actions)
        algo.observe(Transition.between(step, first, actions, next_step))
        expected_calls += int(next_step.done.item() and len(algo.replay) >= 60)
        algo.update()
        step, first = next_step, next_step.done
    assert expected_calls > 0 and algo.learner_calls == expected_calls
    samples = (algo.config.horizon - 1) * (algo.config.seq_length - 2) * algo.config.batch_size
    per_call = 2 * 2 * -(-samples // 50)
    assert algo.world_model.optimiser.state_dict()["state"][0]["step"].item() == 3 * expected_calls
    assert algo.behaviour.actor_opt.state_dict()["state"][0]["step"].item() == per_call * expected_calls


def _after_a_few_learner_calls(name):
    """A ``tiny`` agent after 80 steps of 4 smac/3m environments (a few learner calls)."""
    torch.manual_seed(0)
    env = simulator("3m", num_envs=4, seed=0)
    algo = _algo(name, env.spec)
    _run_steps(algo, env, 80)
    assert algo.learner_calls > 0
    return algo


def test_checkpoint_round_trip_continues_identically():
    algo = _after_a_few_learner_calls("mabl")
    clone = _algo("mabl", algo.spec)
    clone.load_state_dict(copy.deepcopy(algo.state_dict()))
    torch.manual_seed(7)
    a = algo.update() or algo.learner_call() or algo.collect_metrics()
    torch.manual_seed(7)
    b = clone.update() or clone.learner_call() or clone.collect_metrics()
    assert a == b
    for p, q in zip(algo.actor.parameters(), clone.actor.parameters()):
        assert torch.equal(p, q)


def _assert_divergence_stops_before_the_parameters(algo):
    """Plant a NaN in the reward head: the learner call must name the reward loss and leave every parameter
    as it was (fused Adam skips all updates from the first non-finite loss on)."""
    with torch.no_grad():
        algo.model.reward_model[0].weight.fill_(float("nan"))
    before = [p.clone() for m in (algo.model, algo.actor, algo.critic) for p in m.parameters()]
    with pytest.raises(Divergence, match="train/reward_loss"):
        algo.learner_call()
    after = [p for m in (algo.model, algo.actor, algo.critic) for p in m.parameters()]
    assert all(torch.equal(a.nan_to_num(), b.nan_to_num()) for a, b in zip(before, after))


def test_divergence_names_the_loss_and_no_update_follows():
    _assert_divergence_stops_before_the_parameters(_after_a_few_learner_calls("mamba"))


@pytest.mark.gpu
@pytest.mark.parametrize("name", WORLD_MODELS)
def test_learner_runs_on_cuda_with_everything_on_the_device(name):
    torch.manual_seed(0)
    env = simulator("3m", num_envs=4, device="cuda", seed=0)
    algo = make_algorithm(name, env.spec, make_config(name, env.spec, "tiny"), "cuda")
    metrics = _run_steps(algo, env, 150)
    assert metrics and all(v == v for v in metrics.values())
    assert all(t.is_cuda for t in algo.replay.data.values())
    assert all(p.is_cuda for p in algo.model.parameters())
    assert algo._model_graph.graph is not None and algo._policy_graph.graph is not None  # captured, replayed
    _assert_divergence_stops_before_the_parameters(algo)  # inside the replayed graphs


@pytest.mark.gpu
def test_cuda_graphs_learn_like_eager_steps():
    """The world model fitted with replayed graphs reaches the same losses as eager steps (the random
    draws differ, so the trajectories do, not the result)."""
    losses = {}
    for graphs in (False, True):
        torch.manual_seed(0)
        spec = SMAC.describe("toy", "sim", n_agents=2, obs_dim=6, state_dim=4, n_actions=3, episode_limit=40)
        algo = make_algorithm("mabl", spec, make_config("mabl", spec, "tiny", {"cuda_graphs": graphs, "model_epochs": 50}),
                              "cuda")
        g = torch.Generator().manual_seed(0)
        for t in range(400):
            actions = torch.randint(0, 3, (4, 2), generator=g)
            obs = torch.cat([F.one_hot(torch.full((4, 2), t % 4), 4).float(), torch.zeros(4, 2, 2)], -1)
            _add_toy_step(algo, obs.cuda(), actions.cuda(), (actions == 0).float().mean(-1).cuda())
        first = algo.learner_call() or algo.collect_metrics()
        for _ in range(5):
            algo.learner_call()
        last = algo.collect_metrics()
        assert (algo._model_graph.graph is not None) == graphs
        losses[graphs] = (first["train/model_loss"], last["train/model_loss"], last["train/reward_loss"])
    for graphs in (False, True):
        assert losses[graphs][1] < 0.5 * losses[graphs][0], losses
    assert losses[True][1] == pytest.approx(losses[False][1], rel=0.5), losses
    assert losses[True][2] == pytest.approx(losses[False][2], abs=0.05), losses


def test_policy_learns_the_rewarded_action_in_imagination():
    """Team reward = fraction of agents that chose action 0. After the world model has learned this from
    random play, PPO in imagination alone must make action 0 the policy's clear choice."""
    torch.manual_seed(0)
    spec = SMAC.describe("toy", "sim", n_agents=2, obs_dim=6, state_dim=4, n_actions=3, episode_limit=40)
    algo = _algo("mabl_single_level", spec, model_lr=3e-3, actor_lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for t in range(400):
        actions = torch.randint(0, 3, (4, 2), generator=g)
        obs = torch.cat([F.one_hot(torch.full((4, 2), t % 4), 4).float(), torch.zeros(4, 2, 2)], -1)
        _add_toy_step(algo, obs, actions, (actions == 0).float().mean(-1))
    _fit_world_model(algo, 200)

    def chance_of_action_0():
        batch = algo.replay.sample(16)
        with torch.no_grad():
            _, post = algo.model.observe_sequence(batch["obs"], batch["state"], batch["action"], batch["last"])
            return algo.actor(post.agent.features()).softmax(-1)[..., 0].mean().item()

    assert chance_of_action_0() < 0.5
    for _ in range(10):
        algo.behaviour.round(algo.replay.sample(16))
    assert chance_of_action_0() > 0.9
