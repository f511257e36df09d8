"""Flatland tasks on flatland-rl 4.3: layout, decision-point actions, rewards, deadlocks, seeding, workers."""
from __future__ import annotations

import os
import shutil
import signal
import time
import warnings

import numpy as np
import pytest
import torch
from flatland.envs.observations import TreeObsForRailEnv
from flatland.envs.step_utils.states import TrainState

import envs
from envs import UsageError
from envs.flatland.batched import FlatlandEnv, Shard, WorkerError
from envs.flatland.rail import NODE_FEATURES, ROOT_FEATURES, RailTask
from envs.flatland.tasks import TASKS, get_task
from envs.flatland.tree import MOVES, transition_table
from envs.seeding import child_seed
from tests.helpers import random_actions, shortest_path_actions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def make(task="5_agents", num_envs=1, workers=1, seed=0, **kw) -> FlatlandEnv:
    return envs.make(f"flatland/{task}", num_envs=num_envs, seed=seed, workers=workers, **kw)


def run_episodes(env, policy, episodes_per_env=1):
    """Per finished episode, environments in order: (completion, score, deadlocked, episode_limit, return, length)."""
    g, step = torch.Generator().manual_seed(0), env.reset()
    ret, length = torch.zeros(env.num_envs), torch.zeros(env.num_envs)
    left, out = torch.full((env.num_envs,), episodes_per_env), []
    while bool((left > 0).any()):
        step = env.step(policy(env, step, g))
        ret += step.reward
        length += 1
        for b in step.done.nonzero().flatten().tolist():
            if left[b] > 0:
                info = step.info
                out.append((b, float(info["completion"][b]), float(info["score"][b]), float(info["deadlocked"][b]),
                            bool(info["episode_limit"][b]), float(ret[b]), int(length[b])))
                left[b] -= 1
            ret[b], length[b] = 0, 0
    return [r[1:] for r in sorted(out, key=lambda r: r[0])]


def test_tasks_reproduce_the_official_settings_and_registry():
    assert {t for t in envs.list_tasks() if t.startswith("flatland/")} == {
        "flatland/2_agents", "flatland/5_agents", "flatland/10_agents", "flatland/20_agents"}
    five, ten, twenty = TASKS["5_agents"], TASKS["10_agents"], TASKS["20_agents"]
    assert (five.width, five.height, five.n_agents, five.n_cities, five.malfunction_rate) == (35, 35, 5, 3, 1 / 100)
    assert (ten.width, ten.height, ten.n_agents, ten.n_cities, ten.malfunction_rate) == (35, 35, 10, 4, 1 / 150)
    assert (twenty.width, twenty.height, twenty.n_agents, twenty.n_cities, twenty.malfunction_rate) == (60, 40, 20, 6, 1 / 200)
    assert five.episode_limit() == int(8 * (35 + 35 + 5 / 3))
    rail = RailTask(five, seed=1)
    rail.reset()
    assert rail.limit == rail.env._max_episode_steps >= five.episode_limit()
    assert all(a.speed_counter.speed == 1.0 for a in rail.env.agents)
    assert all(a.state == TrainState.READY_TO_DEPART for a in rail.env.agents)  # everyone departs at 0
    assert rail.env.malfunction_generator.MFP == (1 / 100, 20, 50)


def test_dimensions_and_value_ranges():
    env = make(num_envs=2)
    spec = env.spec
    assert (spec.family, spec.backend, spec.n_agents, spec.obs_dim, spec.n_actions, spec.metric) == (
        "flatland", "flatland", 5, 9 + 14 * 14, 3, "completion")
    assert spec.state_dim == 5 * 205
    step = env.reset()
    steps = [step]
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        step = env.step(random_actions(step.avail_actions, g))
        steps.append(step)
    for s in steps:
        assert s.obs.shape == (2, 5, 205) and s.obs.dtype == torch.float32
        assert s.state.shape == (2, 5 * 205) and torch.equal(s.state, s.obs.reshape(2, -1))
        assert s.avail_actions.shape == (2, 5, 3) and s.avail_actions.dtype == torch.bool
        assert s.avail_actions[..., 0].all()
        assert torch.isfinite(s.obs).all() and s.obs.abs().max() <= 11
        root = s.obs[..., :ROOT_FEATURES][s.alive]
        assert ((root[:, 3:] == 1) | (root[:, 3:] == -1) | (root[:, 5:6] <= 0)).all()
        assert ((root[:, 2] >= 0) & (root[:, 2] < 1)).all()  # random id
        nodes = s.obs[..., ROOT_FEATURES:].reshape(2, 5, -1, NODE_FEATURES)
        assert nodes.shape[2] == 14
        assert set(nodes[..., 0].unique().tolist()) <= {-1.0, 0.0, 1.0}
        padding = nodes[..., 0] == 0
        assert (nodes[padding] == 0).all()
        assert (s.obs[~s.alive] == 0).all()
    rich = make(state="rich")
    assert rich.spec.state_dim == 5 * (205 + 19)
    assert rich.reset().state.shape == (1, 5 * (205 + 19))


@pytest.mark.parametrize("task, trains", [("2_agents", 2), ("10_agents", 10), ("20_agents", 20)])
def test_every_task_builds_and_steps(task, trains):
    env = make(task)
    step = env.reset()
    assert env.spec.n_agents == trains and step.obs.shape == (1, trains, 205)
    assert step.state.shape == (1, trains * 205) and step.info["neighbours"].shape == (1, trains, trains)
    rail = env._local.envs[0]
    assert (rail.env.width, rail.env.height) == (TASKS[task].width, TASKS[task].height)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        step = env.step(random_actions(step.avail_actions, g))
        assert torch.isfinite(step.obs).all() and step.info["agent_reward"].shape == (1, trains)


def test_decision_points_stop_and_forced_moves():
    env = make()
    step = env.reset()
    rail = env._local.envs[0]
    assert step.avail_actions[0, :, 2].all()  # ready to depart: may wait
    step = env.step(torch.full((1, 5), 2))  # stop = do not depart
    assert all(a.state == TrainState.READY_TO_DEPART for a in rail.env.agents)
    assert float(step.reward) == 0.0
    step = env.step(torch.zeros(1, 5, dtype=torch.long))
    assert any(a.state == TrainState.MOVING for a in rail.env.agents)
    g = torch.Generator().manual_seed(0)
    checked = 0
    for _ in range(80):
        for i, agent in enumerate(rail.env.agents):
            if agent.state.is_on_map_state() and step.alive[0, i]:
                row, col, heading = rail._configuration(agent)
                forced = agent.state == TrainState.MALFUNCTION or not rail.decision[row, col, heading]
                expected = [True, not forced and len(rail._ways(row, col, heading)) > 1, not forced]
                assert step.avail_actions[0, i].tolist() == expected
                checked += 1
        step = env.step(random_actions(step.avail_actions, g))
    assert checked > 50


def test_decision_cells_are_switches_targets_and_their_entries():
    rail = RailTask(TASKS["5_agents"], seed=3)
    rail.reset()
    table = transition_table(rail.env.rail.grid)
    for (row, col), _ in (next(iter(a.targets)) for a in rail.env.agents):
        assert rail.decision[row, col].all()
    switches = np.argwhere(rail.switch)
    assert len(switches) > 0
    for row, col in switches:
        assert rail.decision[row, col].all()
        assert bin(int(rail.env.rail.grid[row, col])).count("1") > 2
    for row, col, heading in np.argwhere(rail.decision & ~rail.switch[..., None]):
        target = {tuple(next(iter(a.targets))[0]) for a in rail.env.agents}
        leads = [(row + MOVES[d][0], col + MOVES[d][1]) for d in range(4) if table[row, col, heading, d]]
        assert (row, col) in target or any(rail.switch[c] or c in target for c in leads)


def test_shortest_path_policy_completes_a_known_fraction_and_rewards_add_up():
    env = make(num_envs=3, seed=7)
    results = run_episodes(env, lambda e, s, g: shortest_path_actions(e, s))
    completion = [r[0] for r in results]
    assert completion == pytest.approx([1.0, 1.0, 0.6])  # fixed seed: flatland is deterministic
    random = run_episodes(make(num_envs=3, seed=7), lambda e, s, g: random_actions(s.avail_actions, g))
    assert np.mean(completion) > np.mean([r[0] for r in random])
    for comp, score, deadlocked, limit, _, _ in results:
        assert 0 < score <= 1
        assert comp + deadlocked == pytest.approx(1.0) or limit


def test_arrival_pays_ten_once_and_progress_rewards_telescope():
    env = make(seed=13, n_agents=2)
    rail = env._local.envs[0]
    step = env.reset()
    start = rail.distance.copy()
    totals = torch.zeros(2)
    arrivals = torch.zeros(2)
    while True:
        step = env.step(shortest_path_actions(env, step))
        reward = step.info["agent_reward"][0]
        totals += reward
        arrivals += (reward >= 9).float()
        assert torch.isclose(step.reward, reward.sum())
        if step.done[0]:
            break
    assert float(step.info["completion"][0]) == 1.0  # both trains home on this seed
    for i in range(2):
        assert arrivals[i] == 1
        assert float(totals[i]) == pytest.approx(10 + 0.01 * start[i], abs=1e-4)


def straight_pair(rail: RailTask) -> tuple[int, int, int]:
    """A cell and its east neighbour on a plain east-west track."""
    table = rail.transitions
    for row, col in np.argwhere(table[:, :-1, 1, 1] & table[:, 1:, 3, 3]):
        if not table[row, col, 1, [0, 2, 3]].any() and not table[row, col + 1, 3, [0, 1, 2]].any():
            return int(row), int(col), int(col + 1)
    raise AssertionError("no straight east-west pair")


def place(rail: RailTask, handle: int, row: int, col: int, heading: int) -> None:
    agent = rail.env.agents[handle]
    agent.current_configuration = ((row, col), heading)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent.state = TrainState.MOVING
    rail.distance = rail._distances()  # no progress reward for the teleport


def test_constructed_deadlock_is_detected_punished_once_and_ends_the_episode():
    rail = RailTask(get_task("5_agents", n_agents=2, malfunction_rate=0.0), seed=5)
    rail.reset()
    row, west, east = straight_pair(rail)
    place(rail, 0, row, west, 1)  # heading east
    place(rail, 1, row, east, 3)  # heading west: head to head on a single track
    out = rail.step(np.array([0, 0]))
    assert out["agent_reward"].tolist() == [-5.0, -5.0]  # stuck: no progress either
    assert not out["alive"].any() and out["done"] and not out["episode_limit"]
    assert out["deadlocked"] == 1.0 and out["completion"] == 0.0
    assert (out["obs"] == 0).all() and (out["avail"] == [True, False, False]).all()
    again = rail.step(np.array([0, 0]))  # no second penalty
    assert again["agent_reward"].tolist() == [0.0, 0.0]


def test_a_train_behind_a_free_train_is_not_deadlocked():
    rail = RailTask(get_task("5_agents", n_agents=2, malfunction_rate=0.0), seed=5)
    rail.reset()
    row, west, east = straight_pair(rail)
    place(rail, 0, row, west, 1)
    place(rail, 1, row, east, 1)  # both heading east, the front one has free track
    assert not rail._update_deadlocks().any()


def test_neighbours_are_the_trains_on_cells_a_tree_explored():
    rail = RailTask(get_task("5_agents", n_agents=2, malfunction_rate=0.0), seed=5)
    rail.reset()
    row, west, east = straight_pair(rail)
    place(rail, 0, row, west, 1)
    place(rail, 1, row, east, 1)  # train 1 runs ahead of train 0, same way
    seen = rail._observe()["neighbours"]
    assert seen.tolist() == [[False, True], [False, False]]  # the rear train sees the front one only
    env = make(num_envs=2)
    step = env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        step = env.step(random_actions(step.avail_actions, g))
        for b, rail in enumerate(env._local.envs):
            for i, j in step.info["neighbours"][b].nonzero().tolist():
                agent = rail.env.agents[j]
                assert agent.state.is_on_map_state() and i != j
                assert any((r, c) == agent.current_configuration[0] for r, c, _ in rail.tree.visited[i])


def assert_same_tree(ours, theirs, path="root"):
    """Same node fields (as floats; inf where flatland has inf), same children in the same order."""
    if not hasattr(theirs, "childs"):  # a missing branch: -inf
        assert ours == theirs, path
        return
    for field, a, b in zip(theirs._fields[:-1], ours[:-1], theirs[:-1]):
        assert float(a) == float(b), f"{path}.{field}: ours {a}, flatland {b}"
    assert list(ours.childs) == list(theirs.childs), path
    for key in theirs.childs:
        assert_same_tree(ours.childs[key], theirs.childs[key], path + key)


def assert_trees_match_flatland(rail: RailTask) -> dict:
    """Our trees for every train against flatland's TreeObsForRailEnv, cells explored included."""
    reference = TreeObsForRailEnv(max_depth=rail.depth)
    reference.reset(rail.env)
    handles = list(range(rail.n))
    theirs, ours = reference.get_many(handles), rail.tree.get_many(handles)
    for i in handles:
        assert_same_tree(ours[i], theirs[i], f"train {i}: root")
        assert rail.tree.visited[i] == set(rail.env.dev_obs_dict[i]), f"train {i}: cells explored"
    return ours


@pytest.mark.parametrize("task, depth, seed", [("5_agents", 3, 0), ("10_agents", 2, 1), ("2_agents", 1, 2)])
def test_our_tree_observation_is_flatlands_node_for_node(task, depth, seed):
    """Every node of every train's tree at every step of two episodes under random valid actions (trains
    arrive, meet, malfunction, pass targets and unusable switches), for three tasks and depths."""
    rail, rng = RailTask(get_task(task), seed=child_seed(seed, 0), tree_depth=depth), np.random.default_rng(seed)
    out, steps = rail.reset(), 0
    for _ in range(2):
        while True:
            assert_trees_match_flatland(rail)
            steps += 1
            out = rail.step(np.array([rng.choice(np.flatnonzero(avail)) for avail in out["avail"]]))
            if out["done"]:
                out = rail.reset()
                break
    assert steps > 50


def test_trees_count_trains_waiting_to_depart_where_a_train_stands():
    """flatland's quirk, reproduced: a start cell's waiting trains count only while a train stands on it."""
    rail = RailTask(get_task("5_agents", n_agents=3, malfunction_rate=0.0), seed=5)
    rail.reset()
    row, west, east = straight_pair(rail)
    place(rail, 2, row, west, 1)  # the observer, heading east
    rail.env.agents[1].initial_configuration = ((row, east), 1)  # waits to depart from the cell ahead
    assert assert_trees_match_flatland(rail)[2].childs["F"].num_agents_ready_to_depart == 0
    place(rail, 0, row, east, 1)  # a train now stands there
    assert assert_trees_match_flatland(rail)[2].childs["F"].num_agents_ready_to_depart == 1


def test_same_seed_same_episode_and_batched_matches_single_envs():
    seed, n_envs = 4, 3
    batched = make(num_envs=n_envs, seed=seed, workers=2)
    singles = [RailTask(TASKS["5_agents"], child_seed(seed, b)) for b in range(n_envs)]
    twin = make(num_envs=n_envs, seed=seed, workers=1)
    try:
        step, twin_step = batched.reset(), twin.reset()
        rows = [s.reset() for s in singles]
        g = torch.Generator().manual_seed(1)
        ended = 0
        for _ in range(250):
            for b, row in enumerate(rows):
                assert np.array_equal(step.obs[b].numpy(), row["obs"])
                assert np.array_equal(step.avail_actions[b].numpy(), row["avail"])
            assert torch.equal(step.obs, twin_step.obs)
            actions = random_actions(step.avail_actions, g)
            step, twin_step = batched.step(actions), twin.step(actions)
            for b, single in enumerate(singles):
                out = single.step(actions[b].numpy())
                assert np.array_equal(step.final_obs[b].numpy(), out["obs"])
                assert float(step.reward[b]) == pytest.approx(float(out["agent_reward"].sum()), abs=1e-5)
                assert bool(step.done[b]) == bool(out["done"])
                rows[b] = single.reset() if out["done"] else out
                ended += bool(out["done"])
        assert ended >= 1  # the comparison crossed an auto-reset
        other = make(num_envs=1, seed=seed + 1).reset()
        assert not torch.equal(other.obs[0], make(num_envs=1, seed=seed).reset().obs[0])
    finally:
        batched.close()


def test_workers_are_cleaned_up_on_close_and_on_error(monkeypatch):
    env = make(num_envs=3, workers=3)
    procs, directory = env._procs + env._helpers, env._local.directory.parent
    assert len(env._procs) == 2 and len(env._helpers) == 3  # this process steps the first shard; a helper each
    env.reset()
    assert all(p.is_alive() for p in procs) and directory.is_dir()
    env.close()
    assert not any(p.is_alive() for p in procs) and not directory.exists()
    env.close()  # idempotent

    env = make(num_envs=3, workers=3)
    procs = env._procs + env._helpers
    env.reset()
    os.kill(procs[0].pid, signal.SIGKILL)
    start = time.perf_counter()
    with pytest.raises(WorkerError, match="died|is gone"):  # which it notices first depends on scheduling
        env.step(torch.zeros(3, 5, dtype=torch.long))
    assert time.perf_counter() - start < 120  # noticed, not waited for forever (bound loose for busy machines)
    assert not any(p.is_alive() for p in procs)

    env = make(num_envs=2, workers=2, checked=False)
    procs = list(env._procs)
    env.reset()
    with pytest.raises(IndexError):
        env.step(torch.zeros(2, 1, dtype=torch.long))  # too few agents: this process's shard raises
    assert not any(p.is_alive() for p in procs)

    parent, step = os.getpid(), Shard.step

    def fails_in_workers(self, actions):
        if os.getpid() != parent:
            raise RuntimeError("flatland broke in a worker")
        return step(self, actions)

    monkeypatch.setattr(Shard, "step", fails_in_workers)
    env = make(num_envs=2, workers=2)
    procs = list(env._procs)
    env.reset()
    with pytest.raises(WorkerError, match="(?s)failed.*flatland broke in a worker"):
        env.step(torch.zeros(2, 5, dtype=torch.long))
    assert not any(p.is_alive() for p in procs)


def _wait_for(condition, seconds=60.0):
    deadline = time.perf_counter() + seconds
    while not condition():
        assert time.perf_counter() < deadline, "timed out"
        time.sleep(0.05)


def test_episodes_built_ahead_are_the_episodes_built_in_place(monkeypatch):
    import envs.flatland.rail as rail_module

    ahead, in_place = make(num_envs=2, workers=2, seed=5), make(num_envs=2, workers=2, seed=5, build_ahead=False)
    try:
        first, twin = ahead.reset(), in_place.reset()
        assert torch.equal(first.obs, twin.obs)
        shards = [ahead._local.directory, ahead._local.directory.parent / "shard_1"]
        _wait_for(lambda: all((d / "0_1.pkl").exists() for d in shards))  # each helper built episode 1
        built_here = []
        monkeypatch.setattr(rail_module, "build_episode", lambda *a: built_here.append(a) or pytest.fail("built here"))
        second = ahead.reset()  # this process's shard loads its episode 1 (a worker's shard runs the same code)
        monkeypatch.undo()
        second_twin = in_place.reset()
        assert not built_here and not torch.equal(second.obs, first.obs)
        g = torch.Generator().manual_seed(2)
        for _ in range(40):
            assert torch.equal(second.obs, second_twin.obs) and torch.equal(second.state, second_twin.state)
            actions = random_actions(second.avail_actions, g)
            second, second_twin = ahead.step(actions), in_place.step(actions)
            assert torch.equal(second.reward, second_twin.reward)
        # a helper drops what its shard has moved past: one file per environment, the next episode's
        _wait_for(lambda: sorted(p.name for p in shards[0].iterdir()) == ["0_2.pkl"])
        # a helper that dies leaves its shard building episodes itself
        for helper in ahead._helpers:
            os.kill(helper.pid, signal.SIGKILL)
        for _ in range(2):
            assert torch.equal(ahead.reset().obs, in_place.reset().obs)
    finally:
        ahead.close()
        in_place.close()


def test_workers_and_helpers_exit_when_their_parent_dies():
    import multiprocessing as mp

    def orphan(conn):
        env = make(num_envs=2, workers=2)
        env.reset()
        conn.send(([p.pid for p in env._procs + env._helpers], env._local.directory.parent))
        os._exit(0)  # no close(), no finalizers

    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    ctx.Process(target=orphan, args=(sender,)).start()
    assert receiver.poll(300)
    pids, directory = receiver.recv()
    assert len(pids) == 3

    def gone(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] in "ZX"  # exited, maybe not yet reaped
        except FileNotFoundError:
            return True

    _wait_for(lambda: all(gone(pid) for pid in pids), seconds=120)  # a hang guard, loose for busy machines
    shutil.rmtree(directory)  # what close() would have removed


def test_bad_input_is_refused_with_what_to_change():
    with pytest.raises(UsageError, match="valid tasks: .*flatland/5_agents"):
        envs.make("flatland/7_agents")
    with pytest.raises(UsageError, match="station tracks.*reduce n_agents"):
        get_task("5_agents", n_agents=40)
    with pytest.raises(UsageError, match="fits at most 1 cities.*enlarge the grid"):
        get_task("5_agents", width=20, height=20)
    with pytest.raises(UsageError, match="unknown Flatland setting.*valid settings"):
        get_task("5_agents", citys=3)
    with pytest.raises(UsageError, match="malfunction_rate"):
        get_task("5_agents", malfunction_rate=2.0)
    with pytest.raises(UsageError, match="valid: obs, rich"):
        make(state="everything")
    with pytest.raises(UsageError, match="workers"):
        make(num_envs=2, workers=3)
    with pytest.raises(UsageError, match="workers"):
        make(num_envs=2, workers=0)
    env = make()
    env.reset()
    with pytest.raises(ValueError, match=r"environment 0, agent 0 chose unavailable action 5"):
        env.step(torch.tensor([[5, 0, 0, 0, 0]]))


def test_generator_warnings_are_surfaced_once_per_message():
    env = make(width=22, height=22, n_cities=4, n_agents=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(6):
            env.reset()
    texts = [str(w.message) for w in caught if str(w.message).startswith("flatland:")]
    assert texts, "this grid is too tight for 4 cities, flatland warns"
    assert len(texts) == len(set(texts))


@pytest.mark.gpu
def test_tensors_arrive_on_the_requested_device_and_match_cpu():
    cpu, gpu = make(num_envs=2, workers=2), make(num_envs=2, workers=2, device="cuda")
    try:
        a, b = cpu.reset(), gpu.reset()
        for _ in range(20):
            assert b.obs.device.type == "cuda" and b.info["neighbours"].device.type == "cuda"
            assert torch.equal(a.obs, b.obs.cpu()) and torch.equal(a.reward, b.reward.cpu())
            actions = torch.zeros(2, 5, dtype=torch.long)
            a, b = cpu.step(actions), gpu.step(actions.cuda())
    finally:
        cpu.close()
        gpu.close()
