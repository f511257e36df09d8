"""Simulator mechanics against hand-computed expectations (unit data: envs/smac/units.py)."""
import pytest
import torch

from tests.helpers import focus_fire, place, random_actions, run_episodes, simulator

STOP = 1


def test_marine_needs_eight_shots_at_its_cooldown():
    """6 damage per shot, 45 HP, no armour: 8 shots, 13.8 loops apart (7 gaps = ~96 loops = 12 steps)."""
    env = simulator("3m", seed=1)
    env.reset()
    place(env, {0: (10, 16), 3: (14, 16)}, alive={0, 3})
    health, steps, done = [], 0, False
    while not done:
        step = env.step(torch.tensor([[6, 0, 0]]))
        done = bool(step.done)
        health.append(float(step.final_state[0, 12]) * 45)  # enemy 0's health (state row after 3 allies)
        steps += 1
    assert step.info["won"].item() and health[-1] == 0
    losses = [45 - h for h in health[:-1]]  # the killing shot overkills
    assert all(abs(x / 6 - round(x / 6)) < 1e-4 for x in losses)  # whole shots of 6
    assert 11 <= steps <= 13


def test_shields_absorb_first_and_armour_reduces_the_spill():
    """Stalker (13, +5 vs armoured) on a zealot (light, 50 shields, 100 HP, armour 1):
    shields 37, 24, 11, then 11 absorbed and 2-1=1 HP lost, then 12 HP per shot."""
    env = simulator("2s3z", seed=2)
    env.reset()
    n = env.n_agents
    zealot = n + 2
    place(env, {0: (10, 16), zealot: (15.5, 16)}, alive={0, zealot})
    seen = []
    for _ in range(26):  # the zealot kills the stalker (80 HP + 80 shields) after about 28 steps
        env.step(torch.tensor([[6 + 2, 0, 0, 0, 0]]))  # stalker 0 attacks enemy 2
        state = (round(float(env.s.shield[0, zealot]), 3), round(float(env.s.hp[0, zealot]), 3))
        if not seen or seen[-1] != state:
            seen.append(state)
    expected = [(37, 100), (24, 100), (11, 100), (0, 99), (0, 87), (0, 75), (0, 63), (0, 51)]
    assert seen[: len(expected)] == expected[: len(seen)] and len(seen) >= 6


def test_medivac_heals_and_spends_energy():
    env = simulator("MMM2", seed=3)
    env.reset()
    n = env.n_agents
    place(env, {9: (10, 16), 2: (11, 16), n: (30, 23)}, alive={2, 9, n})
    env.s.hp[0, 2] = 20.0
    actions = torch.zeros(1, n, dtype=torch.long)
    actions[0, 2], actions[0, 9] = STOP, 6 + 2  # medivac heals ally 2
    env.step(actions)
    # 9 HP per game second for 0.5 s, 1 energy per 3 HP, +0.5625 energy per second
    assert float(env.s.hp[0, 2]) == pytest.approx(24.5, abs=1e-4)
    assert float(env.s.energy[0, 9]) == pytest.approx(50 - 4.5 / 3 + 0.5625 * 0.5, abs=1e-4)


def test_dead_agents_can_only_noop_and_see_zeros():
    env = simulator("3m")
    env.reset()
    place(env, {}, alive={1, 2, 3, 4, 5})
    obs, state, avail, alive = env._observe(env.s)
    assert avail[0, 0].tolist() == [True] + [False] * 8
    assert obs[0, 0].abs().sum() == 0 and not alive[0, 0]
    assert state[0, :4].abs().sum() == 0
    with pytest.raises(ValueError, match="environment 0, agent 0: action 1 \\(stop\\) is not available"):
        env.step(torch.tensor([[1, 1, 1]]))


def test_moves_into_walls_or_off_the_map_are_unavailable():
    env = simulator("3m")
    env.reset()
    place(env, {0: (5, 8.5), 1: (31.5, 12)})  # flat band: rows y 8..23 are pathable
    avail = env._observe(env.s)[2][0]
    assert avail[0, 2:6].tolist() == [True, False, True, True]  # north, south (cliff), east, west
    assert avail[1, 2:6].tolist() == [True, True, False, True]  # east leaves the 32x32 map


def test_checked_mode_refuses_and_unchecked_mode_skips_the_check():
    env = simulator("3m")
    env.reset()
    place(env, {0: (5, 8.5)})
    with pytest.raises(ValueError, match="agent 0: action 3 \\(move south\\)"):
        env.step(torch.tensor([[3, 1, 1]]))
    fast = simulator("3m", checked=False)
    fast.reset()
    place(fast, {0: (5, 8.5)})
    fast.step(torch.tensor([[3, 1, 1]]))
    assert float(fast.s.pos[0, 0, 1]) >= 8.0  # the wall holds even when the mask is ignored


def test_win_reward_and_ending():
    env = simulator("3m")
    env.reset()
    place(env, {0: (10, 16), 3: (14, 16)}, alive={0, 3})
    env.s.hp[0, 3] = 6.0
    step = env.step(torch.tensor([[6, 0, 0]]))
    assert step.done.item() and step.info["won"].item() and not step.info["episode_limit"].item()
    assert step.reward.item() == pytest.approx((6 + 10 + 200) / (365 / 20))
    assert step.final_alive[0, 0] and step.alive.all()  # the new episode has started
    assert not torch.equal(step.final_state, step.state)


def test_loss_ending_gives_no_bonus():
    env = simulator("3m")
    env.reset()
    place(env, {0: (10, 16), 3: (14, 16), 4: (14, 17)}, alive={0, 3, 4})
    env.s.hp[0, 0] = 1.0
    step = env.step(torch.tensor([[STOP, 0, 0]]))
    assert step.done.item() and not step.info["won"].item() and not step.info["episode_limit"].item()
    assert step.reward.item() == 0.0


def test_time_limit_ends_the_episode():
    env = simulator("2s_vs_1sc")  # the spine crawler never moves; stalkers stay out of its range
    step = env.reset()
    for t in range(300):
        step = env.step(torch.full((1, 2), STOP))
        assert step.done.item() == (t == 299)
    assert step.info["episode_limit"].item() and not step.info["won"].item()
    assert not step.terminated.item()


def test_same_seed_same_trajectory():
    def trajectory(seed):
        env = simulator("3s5z", num_envs=4, seed=seed)
        g = torch.Generator().manual_seed(0)
        step, out = env.reset(), []
        for _ in range(30):
            step = env.step(random_actions(step.avail_actions, g))
            out.append(step.state.clone())
        return torch.stack(out)

    assert torch.equal(trajectory(5), trajectory(5))
    assert not torch.equal(trajectory(5), trajectory(6))


@pytest.mark.parametrize("name", ["3m", "8m", "2s3z"])
def test_focus_fire_beats_random(name):
    env = simulator(name, num_envs=32, seed=0)
    rand_return, rand_win = run_episodes(env, random_actions, 32)
    env = simulator(name, num_envs=32, seed=0)
    focus_return, focus_win = run_episodes(env, lambda avail, g: focus_fire(env, avail), 32)
    assert focus_return > rand_return + 3.0
    assert focus_win >= rand_win


def test_corridor_enemies_find_the_neck():
    """With no allies in the way, zerglings attack-move through the diagonal neck to the lower-left room."""
    env = simulator("corridor", seed=0)
    env.reset()
    place(env, {i: (29.5 - 1.1 * (i // 3), 17.0 + i % 3) for i in range(6)})  # allies parked out of the zerglings' scan range
    step = env.step(torch.full((1, 6), STOP))
    for _ in range(60):
        step = env.step(step.avail_actions[..., STOP].long())  # stop while alive, no-op once dead
    enemies = env.s.pos[0, 6:][env.s.alive[0, 6:]]
    assert (enemies.sum(-1) < 16).float().mean() > 0.5  # most are past the neck (x + y < 16)


def _trajectory(map_name: str, device: str, compile: bool = False, steps: int = 20,
                enemy_shift: tuple[float, float] = (0.0, 0.0)):
    """Steps of 8 battles under random valid actions, every random draw taken from one CPU generator
    (CUDA generators give other streams), so devices and compiled/eager runs see the same randomness.
    Battles 0-3 lose their enemies at once, so they are won and restart on the first step. Float
    rounding differs between kernels and grows through collisions (about 1e-4 after 20 steps), so
    trajectories are compared over 20 steps. ``enemy_shift`` moves the enemy by (dx, dy) at the start."""
    env = simulator(map_name, num_envs=8, seed=3, device=device, compile=compile)
    draws = torch.Generator().manual_seed(7)
    env._cooldown_jitter = lambda: torch.randint(-1, 3, (env.substeps, env.num_envs, env.n_units),
                                                 generator=draws).to(device)
    g = torch.Generator().manual_seed(0)
    step, out = env.reset(), []
    for name in ("alive", "hp", "shield"):
        getattr(env.s, name)[:4, env.n_agents:] = 0
    env.s.pos[:, env.n_agents:] += torch.tensor(enemy_shift, device=device)
    for _ in range(steps):
        step = env.step(random_actions(step.avail_actions.cpu(), g).to(device))
        out.append([t.cpu() for t in (step.obs, step.state, step.avail_actions, step.reward, step.done,
                                      step.final_obs)])
    return out


def _assert_same_trajectory(a, b):
    for t, (x, y) in enumerate(zip(a, b)):
        for name, u, v in zip(("obs", "state", "avail", "reward", "done", "final_obs"), x, y):
            if u.dtype == torch.bool:
                assert torch.equal(u, v), f"step {t}: {name} differs"
            else:
                torch.testing.assert_close(u, v, atol=1e-3, rtol=1e-3, msg=f"step {t}: {name} differs")


@pytest.mark.slow
def test_compiled_step_matches_eager():
    """compile=True (one graph per step, one per restart) gives the eager trajectory, restarts included."""
    eager, compiled = _trajectory("MMM", "cpu"), _trajectory("MMM", "cpu", compile=True)
    assert eager[0][4][:4].all()  # battles 0-3 ended and restarted
    _assert_same_trajectory(eager, compiled)


@pytest.mark.slow
def test_compiled_step_matches_eager_with_line_splash():
    """The same on 2c_vs_64zg, the zerglings started 2 north, within the colossi's reach: their lances hit
    lines of zerglings from the first step. 64 zerglings pushing each other amplify rounding quickly (a
    target chosen differently by a hundredth of a unit changes the battle after about 10 steps), so the
    first 8 steps are compared."""
    eager = _trajectory("2c_vs_64zg", "cpu", steps=8, enemy_shift=(0.0, 2.0))
    compiled = _trajectory("2c_vs_64zg", "cpu", steps=8, enemy_shift=(0.0, 2.0), compile=True)
    # without splash, two colossi's four attacks of 15 (and at most two kills) earn at most (60 + 20) / 154
    assert float(eager[0][3][4:].max()) > 80 / (3080 / 20)
    _assert_same_trajectory(eager, compiled)


@pytest.mark.slow
def test_compiled_step_matches_eager_with_bursts():
    """And on so_many_baneling, the banelings started 9 closer along the band: they burst on the zealots (and
    die bursting or burst when killed) from the fourth step, until battles end and restart."""
    eager = _trajectory("so_many_baneling", "cpu", steps=12, enemy_shift=(-9.0, -9.0))
    compiled = _trajectory("so_many_baneling", "cpu", steps=12, enemy_shift=(-9.0, -9.0), compile=True)
    banelings_alive = [int((step[1][4:, 35:35 + 3 * 32:3] > 0).sum()) for step in eager]  # enemy rows' health
    assert min(banelings_alive[:8]) < banelings_alive[0] - 30 and any(bool(step[4][4:].any()) for step in eager)
    _assert_same_trajectory(eager, compiled)


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True])
def test_cpu_and_cuda_agree(compile):
    _assert_same_trajectory(_trajectory("3s5z_vs_3s6z", "cpu"), _trajectory("3s5z_vs_3s6z", "cuda", compile))


# ---------------------------------------------------------------- splash and cliffs (units.LANCE_*, BURST_RADIUS)
def test_a_colossus_hits_every_enemy_on_its_line():
    """Thermal Lances: 2 x (10 +5 vs light) to the target and to every enemy ground unit touching the 2.5-long
    line across it; a zergling (35 HP, light, no armour) left or right of the target takes the same 30, one
    behind the target or beyond the line's end takes nothing."""
    env = simulator("2c_vs_64zg", checked=False)
    env.reset()
    n = env.n_agents
    on_line, off_line = [n, n + 1, n + 2], [n + 3, n + 4]
    place(env, {0: (16, 16), n: (21.5, 16), n + 1: (21.5, 17), n + 2: (21.5, 15), n + 3: (21.5, 18.8),
                n + 4: (23, 16)}, alive={0, *on_line, *off_line})
    env.step(torch.tensor([[6 + 0, 0]]))  # colossus 0 attacks enemy 0
    lost = 35 - env.s.hp[0]  # regeneration gives back at most 0.14 in a step
    assert all(29.8 < float(lost[u]) <= 30 for u in on_line)
    assert all(float(lost[u]) == 0 for u in off_line)


def test_a_baneling_burst_damages_every_enemy_in_its_radius_and_spares_friends():
    """Volatile Burst: 16 +19 vs light to every enemy ground unit within 2.2 (+ its radius) of the baneling,
    which dies; zealots are light, so 35 come off their 50 shields. Another baneling inside the radius (a
    friend) is unhurt, a zealot outside it too; the bursting baneling's death earns the kill reward."""
    env = simulator("so_many_baneling", checked=False)
    env.reset()
    n = env.n_agents
    bane, friend = n, n + 1
    place(env, {0: (10, 10), 1: (11, 10), 2: (12.5, 10), bane: (8.5, 10), friend: (7, 11.5)},
          alive={0, 1, 2, bane, friend})
    step = env.step(torch.tensor([[STOP] * 3 + [0] * 4]))
    s = env.s
    assert not s.alive[0, bane] and s.alive[0, friend] and float(s.hp[0, friend]) == 30
    assert [float(x) for x in s.shield[0, :3]] == [15, 15, 50] and bool((s.hp[0, :3] == 100).all())
    # SMAC's reward counts the enemy's losses only: the baneling's 30 hit points and the kill's 10
    assert float(step.reward) == pytest.approx((30 + 10) / (env.max_reward / 20))


def test_a_killed_baneling_bursts():
    """A baneling killed by a zergling bursts where it died (a slice later): the zergling next to it dies."""
    env = simulator("bane_vs_bane", checked=False)
    env.reset()
    n = env.n_agents
    baneling, zergling, far = 0, n, n + 1
    place(env, {baneling: (16, 12), zergling: (16, 12.8), far: (16, 24), 4: (8, 14)}, alive={baneling, 4, zergling, far})
    env.s.hp[0, baneling] = 1.0
    actions = torch.zeros(1, n, dtype=torch.long)
    actions[0, baneling], actions[0, 4] = STOP, STOP
    env.step(actions)
    assert not env.s.alive[0, baneling] and not env.s.alive[0, zergling]
    assert env.s.alive[0, far] and env.s.alive[0, 4]


def _north_after(env, steps: int) -> float:
    for _ in range(steps):
        env.step(torch.tensor([[2, STOP]]))  # colossus 0 moves north while it may
    return float(env.s.pos[0, 0, 1])


def test_a_colossus_crosses_a_cliff_that_zerglings_walk_around():
    """2c_vs_64zg's wall (y 12-13) stops ground units but not a colossus: one ordered north from below it walks
    onto the cliff, where the same unit without cliff walking stops at the wall's edge. The zerglings, whose
    order is to attack the colossi on the plateau, never set foot on the wall: they go round by the sides."""
    ys = []
    for walks_cliffs in (True, False):
        env = simulator("2c_vs_64zg", checked=False)
        env.reset()
        n = env.n_agents
        place(env, {0: (16, 10.9), 1: (30, 16), n: (2, 30.5)}, alive={0, 1, n})
        env.cliff_walker[0] = walks_cliffs
        ys.append(_north_after(env, 2))
    assert ys[0] > 12.4 and ys[1] < 12.0

    env = simulator("2c_vs_64zg")
    step = env.reset()
    n = env.n_agents
    reached = 0
    for _ in range(16):
        step = env.step(step.avail_actions[..., STOP].long())
        lings = env.s.pos[0, n:][env.s.alive[0, n:]]
        assert bool(env._pathable(lings).all())  # on the ground grid, never on the wall
        reached = max(reached, int((lings[:, 1] > 14).sum()))
    assert reached > 32  # most of the 64 reached the plateau
