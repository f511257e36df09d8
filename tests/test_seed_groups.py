"""Seed members trained in one process (``--seed-batch``): each a full run, independent of the others, faults
kept inside one member, resumable; the simulator's member axis; groups in the plan."""
import copy
import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import envs
from algorithms.mappo.agent import MAPPO
from envs.members import make_members
from suites import run as cli
from suites.launching.experiment import execute, execute_group
from suites.launching.records import DONE, FAILED, run_status
from suites.planning.plan import seed_groups
from suites.planning.spec import RunSpec
from tests.test_suites import InterruptedAt, _learning, _metrics

TINY = dict(suite="test", task="smac/3m", algorithm="mappo", preset="tiny", steps=512, eval_interval=256,
            eval_episodes=4, backend="sim")


def _specs(*seeds, **changes):
    return [RunSpec(seed=s, **{**TINY, **changes}) for s in seeds]


def _status(results: Path, spec: RunSpec) -> dict:
    run_dir = results / "runs" / spec.run_id
    last = max(int(p.name) for p in run_dir.iterdir() if p.name.isdigit())
    return json.loads((run_dir / str(last) / "run.json").read_text())


def test_simulator_members_step_exactly_as_simulators_of_their_own_seed():
    seeds, b = (5, 7, 11), 4
    group = make_members("smac/3m", list(seeds), b, backend="sim", checked=False)
    alone = [envs.make("smac/3m", b, seed=s, backend="sim", checked=False) for s in seeds]
    step, steps = group.reset(), [e.reset() for e in alone]
    pick = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(120):
        actions = torch.cat([torch.multinomial(s.avail_actions.flatten(0, 1).float(), 1, generator=pick).view(b, -1)
                             for s in steps])
        step = group.step(actions)
        steps = [e.step(a) for e, a in zip(alone, actions.split(b))]
        for k, own in enumerate(steps):
            mine = step.rows(k * b, (k + 1) * b)
            for field in ("obs", "state", "avail_actions", "reward", "done", "final_obs"):
                assert torch.equal(getattr(mine, field), getattr(own, field)), (k, field)
        ended += int(step.done.sum())
    assert ended > 0  # restarts happened, each from the member's own generator
    # a member's snapshot is a one-member simulator's: it continues alone exactly as inside the group
    solo = envs.make("smac/3m", b, seed=0, backend="sim", checked=False)
    solo.reset()
    solo.set_state(group.member_state(1))
    actions = torch.zeros(3 * b, 3, dtype=torch.long) + 1
    assert torch.equal(solo.step(actions[:b]).obs, group.step(actions).rows(b, 2 * b).obs)


def test_other_families_stack_members_behind_the_same_interface():
    group = make_members("flatland/2_agents", [0, 1], 2, workers=1, build_ahead=False)
    alone = envs.make("flatland/2_agents", 2, seed=1, workers=1, build_ahead=False)
    try:
        assert group.members == 2 and group.num_envs == 4
        assert torch.equal(group.reset().rows(2, 4).obs, alone.reset().obs)
    finally:
        group.close()
        alone.close()


def _close_series(a: dict, b: dict, rel: float = 1e-3) -> None:
    """The same metrics at the same steps, values equal to float rounding (batched products sum in another
    order; a difference in the last bits grows a little over a few updates)."""
    assert a.keys() == b.keys()
    for name in a:
        assert a[name][0] == b[name][0], name
        assert a[name][1] == pytest.approx(b[name][1], rel=rel, abs=1e-5), name


@pytest.mark.parametrize("algorithm", ["mappo", "mamba"])
def test_each_member_records_the_series_of_its_solo_run(tmp_path, algorithm):
    """Members compute as one (``algorithms/mappo/members.py``, ``algorithms/world_model/members.py``): their
    series equal the solo runs' to float rounding."""
    specs = _specs(0, 1, algorithm=algorithm)
    execute_group(specs, tmp_path / "group")
    for spec in specs:
        execute(spec, tmp_path / "solo")
        group, solo = _learning(_metrics(tmp_path / "group", spec)), _learning(_metrics(tmp_path / "solo", spec))
        _close_series(group, solo)
        assert group != solo  # really computed together, not one after another
        assert run_status(tmp_path / "group" / "runs" / spec.run_id) == DONE


@pytest.mark.parametrize("algorithm", ["mappo", "mamba"])
def test_a_members_series_does_not_depend_on_the_other_members_seeds(tmp_path, algorithm):
    """Bit for bit: the vectorised computation gives each member's slice the same numbers whatever the others
    hold and however many they are (and a world-model member's waits change when it computes, not what)."""
    execute_group(_specs(0, 1, algorithm=algorithm), tmp_path / "a")
    execute_group(_specs(0, 9, 4, algorithm=algorithm), tmp_path / "b")
    spec = _specs(0, algorithm=algorithm)[0]
    assert _learning(_metrics(tmp_path / "a", spec)) == _learning(_metrics(tmp_path / "b", spec))


def test_a_member_record_has_the_layout_of_a_solo_record_and_names_its_group(tmp_path):
    specs = _specs(0, 1)
    execute_group(specs, tmp_path / "group")
    execute(specs[1], tmp_path / "solo")

    def layout(results):
        run_dir = results / "runs" / specs[1].run_id
        return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if "events.out" not in p.name)

    assert layout(tmp_path / "group") == layout(tmp_path / "solo")
    group_config = json.loads((tmp_path / "group" / "runs" / specs[1].run_id / "1" / "config.json").read_text())
    solo_config = json.loads((tmp_path / "solo" / "runs" / specs[1].run_id / "1" / "config.json").read_text())
    assert group_config["seed_group"] == [0, 1] and solo_config["seed_group"] == [1]
    assert set(group_config) == set(solo_config)
    cout = (tmp_path / "group" / "runs" / specs[1].run_id / "1" / "cout.txt").read_text()
    assert "seed_1 step 512" in cout and "seed_0" not in cout  # each member's own lines only
    assert len(list((tmp_path / "group" / "runs" / specs[1].run_id).glob("events.out.tfevents.*"))) == 1


def test_a_diverging_member_fails_alone_and_the_others_are_unchanged(tmp_path, monkeypatch):
    made, real_take = [], MAPPO.take_rollout

    def count(self, *args, **kwargs):
        made.append(self)
        real_init(self, *args, **kwargs)

    def poisoned(self):
        data, bootstrap = real_take(self)
        if self is made[1]:
            data["reward"][-1] = float("inf")  # NaN losses
        return data, bootstrap

    real_init = MAPPO.__init__
    monkeypatch.setattr(MAPPO, "__init__", count)
    monkeypatch.setattr(MAPPO, "take_rollout", poisoned)
    specs = _specs(0, 1)
    results = execute_group(specs, tmp_path / "group")
    monkeypatch.undo()

    assert isinstance(results[1], Exception) and "not finite" in str(results[1])
    failed = _status(tmp_path / "group", specs[1])
    assert failed["status"] == "FAILED" and "environment steps" in failed["fail_trace"][-1]
    assert run_status(tmp_path / "group" / "runs" / specs[1].run_id) == FAILED
    assert run_status(tmp_path / "group" / "runs" / specs[0].run_id) == DONE
    # the failed member's checkpoint is its last good one: written at step 0, before the poisoned update
    checkpoint = torch.load(tmp_path / "group" / "runs" / specs[1].run_id / "checkpoint.pt", weights_only=False)
    assert checkpoint["steps"] == 0
    execute(specs[0], tmp_path / "solo")
    _close_series(_learning(_metrics(tmp_path / "group", specs[0])), _learning(_metrics(tmp_path / "solo", specs[0])))


def test_a_diverging_world_model_member_fails_alone_and_the_other_goes_on_bit_for_bit(tmp_path, monkeypatch):
    """A member whose world-model loss stops being finite (its replayed rewards poisoned) fails with its solo
    run's message; the other's series equals its series beside a healthy member, bit for bit (it computes
    alone afterwards, with the same numbers)."""
    from algorithms.world_model.agent import WorldModelAgent
    from algorithms.world_model.replay import SequenceReplay

    made, real_init, real_sample = [], WorldModelAgent.__init__, SequenceReplay.sample

    def count(self, *args, **kwargs):
        made.append(self)
        real_init(self, *args, **kwargs)

    def poisoned(self, size):
        batch = real_sample(self, size)
        if self is made[1].replay:
            batch["reward"] = batch["reward"] + float("inf")
        return batch

    specs = _specs(0, 1, algorithm="mamba")
    monkeypatch.setattr(WorldModelAgent, "__init__", count)
    monkeypatch.setattr(SequenceReplay, "sample", poisoned)
    results = execute_group(specs, tmp_path / "group")
    monkeypatch.undo()

    assert isinstance(results[1], Exception) and "'train/reward_loss' is not finite" in str(results[1])
    assert _status(tmp_path / "group", specs[1])["status"] == "FAILED"
    assert run_status(tmp_path / "group" / "runs" / specs[0].run_id) == DONE
    execute_group(specs, tmp_path / "healthy")
    assert _learning(_metrics(tmp_path / "group", specs[0])) == _learning(_metrics(tmp_path / "healthy", specs[0]))


@pytest.mark.parametrize("algorithm", ["mappo", "mamba"])
def test_an_interrupted_group_resumes_every_member_to_the_uninterrupted_series(tmp_path, algorithm):
    specs = _specs(0, 1, steps=768, algorithm=algorithm)
    execute_group(specs, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        execute_group(specs, tmp_path / "cut", progress=InterruptedAt(2 * 600))  # both members past step 512
    assert all(_status(tmp_path / "cut", s)["status"] == "INTERRUPTED" for s in specs)
    execute_group(specs, tmp_path / "cut")
    for spec in specs:
        assert _learning(_metrics(tmp_path / "cut", spec)) == _learning(_metrics(tmp_path / "whole", spec))


def test_members_resume_from_checkpoints_at_different_steps(tmp_path):
    """A kill between two members' checkpoint writes leaves them at different steps: each resumes from its own,
    and they still compute as one (each with its own Adam step count), so each series is its uninterrupted
    solo run's to float rounding."""
    specs = _specs(0, 1, steps=768)
    for spec in specs:
        execute(spec, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        execute(specs[0], tmp_path / "cut", progress=InterruptedAt(600))  # seed 0 checkpointed at 512
    with pytest.raises(KeyboardInterrupt):
        execute(specs[1], tmp_path / "cut", progress=InterruptedAt(300))  # seed 1 at 256
    execute_group(specs, tmp_path / "cut")
    for spec in specs:
        _close_series(_learning(_metrics(tmp_path / "cut", spec)), _learning(_metrics(tmp_path / "whole", spec)))


def test_seed_groups_hold_seeds_of_identical_settings_only():
    runs = _specs(0, 1, 2, 3, 4) + _specs(0, 1, algorithm="mamba") + _specs(0, variant="other")
    groups = seed_groups(runs, 2)
    assert [[(r.algorithm, r.variant, r.seed) for r in g] for g in groups] == [
        [("mappo", "", 0), ("mappo", "", 1)], [("mappo", "", 2), ("mappo", "", 3)], [("mappo", "", 4)],
        [("mamba", "", 0), ("mamba", "", 1)], [("mappo", "other", 0)]]
    assert seed_groups(runs, 1) == [(r,) for r in runs]


def test_dry_run_shows_the_groups_and_bad_sizes_are_refused(tmp_path, capsys):
    assert cli.main(["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "3", "--seed-batch", "2",
                     "--backend", "sim", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "group of 2 seeds in one process: smoke/smac_3m/mappo/seed_0,1"
    assert out[1].split() == ["pending", "smoke/smac_3m/mappo/seed_0", "(5120", "steps,", "preset", "tiny)"]
    assert out[3].startswith("pending  smoke/smac_3m/mappo/seed_2")  # the last seed runs alone
    with pytest.raises(SystemExit):
        cli.main(["smoke", "--seed-batch", "0"])
    assert "--seed-batch must be >= 1, got 0" in capsys.readouterr().err


def test_a_suite_file_sets_the_seed_batch(tmp_path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "mine"\ntasks = ["smac/3m"]\nalgorithms = ["mappo"]\nseeds = 2\nsteps = 256\n'
                     'eval_interval = 256\nseed_batch = 2\nbackend = "sim"\n')
    assert cli.main([str(suite), "--results", str(tmp_path), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("group of 2 seeds in one process: mine/smac_3m/mappo/seed_0,1")


def test_the_analysis_reads_batched_and_solo_records_alike(tmp_path):
    from analysis.loading import load_records

    specs = _specs(0, 1, 2, steps=256)
    execute_group(specs[:2], tmp_path)
    execute(specs[2], tmp_path)
    frame, report = load_records(tmp_path)
    assert report.loaded == 3
    assert sorted(frame[frame["metric"] == "absolute/win_rate"]["seed"].unique()) == [0, 1, 2]


def test_thread_settings_are_chosen_in_one_place_and_recorded(tmp_path, monkeypatch):
    from suites.launching import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose() == threads.DEFAULT_THREADS == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose() == 3 and threads.choose(2) == 2  # --threads beats the environment
    spec = _specs(0, steps=256, threads=2)[0]
    try:
        execute(spec, tmp_path)
    finally:
        monkeypatch.undo()
        threads.apply()  # the tests' default again
    config = json.loads((tmp_path / "runs" / spec.run_id / "1" / "config.json").read_text())
    assert config["threads"] == 2 and "omp_wait_policy" in config
    assert cli.read_command(["smoke", "--threads", "4"])[1].threads == 4


def test_a_member_that_cannot_start_fails_alone_in_a_worker_process(tmp_path, capsys):
    """An unreadable checkpoint stops its member only; the group's worker process reports each member."""
    broken = tmp_path / "runs" / "smoke/smac_3m/mappo/seed_1" / "checkpoint.pt"
    broken.parent.mkdir(parents=True)
    broken.write_text("not a checkpoint")
    argv = ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "2", "--seed-batch", "2", "--jobs", "2",
            "--steps", "256", "--eval-episodes", "2", "--backend", "sim", "--results", str(tmp_path)]
    assert cli.main(argv) == 1
    out = capsys.readouterr()
    assert "1 run(s) failed: smoke/smac_3m/mappo/seed_1" in out.err
    assert run_status(tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0") == DONE
    failed = _status(tmp_path, _specs(1, suite="smoke")[0])
    assert failed["status"] == "FAILED" and "is unreadable" in failed["fail_trace"][-1]


def _gap(mine: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """The largest difference, relative to the largest entry of ``theirs``."""
    return (mine - theirs).abs().max() / theirs.abs().max().clamp(min=1e-12)


def _assert_adam_states_match(pairs: dict, tolerance: float) -> None:
    """Each (members' optimiser, solo optimiser) pair: the same steps, moments equal to ``tolerance``."""
    for label, (mine, theirs) in pairs.items():
        mine, theirs = mine.state_dict()["state"], theirs.state_dict()["state"]
        assert mine.keys() == theirs.keys()
        for i in mine:
            assert mine[i]["step"] == theirs[i]["step"]
            for moment in ("exp_avg", "exp_avg_sq"):
                assert _gap(mine[i][moment], theirs[i][moment]) <= tolerance, (label, moment)


def _cast(step, dtype):
    floats = {f.name: getattr(step, f.name).to(dtype) for f in dataclasses.fields(step)
              if isinstance(getattr(step, f.name), torch.Tensor) and getattr(step, f.name).is_floating_point()}
    return dataclasses.replace(step, **floats)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-11), (torch.float32, 1e-4)])
@pytest.mark.parametrize("batched_update", [True, False])
def test_one_mappo_update_of_members_together_equals_their_solo_updates(dtype, tolerance, batched_update):
    """Same weights, same transitions, same minibatch orders: after one update every member's networks equal its
    solo copy's to float rounding (measured worst: 8e-14 in float64, 3e-6 in float32, relative to each
    tensor's largest entry), with the update computed as one or member by member."""
    from algorithms import make_algorithm, make_config
    from algorithms.base import Transition
    from algorithms.mappo.members import MAPPOMembers

    env = envs.make("smac/3m", 8, seed=0, backend="sim", checked=False)
    config = make_config("mappo", env.spec, "tiny")
    step, first = _cast(env.reset(), dtype), torch.ones(8, dtype=torch.bool)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        members = []
        for seed in (0, 1, 2):
            torch.manual_seed(seed)
            members.append(make_algorithm("mappo", env.spec, config))
        solo = copy.deepcopy(members)
        draws_from = {}

        @contextmanager
        def same_draws():  # every member draws its minibatch orders from one state, as each solo update will
            if draws_from:
                torch.set_rng_state(draws_from["state"])
            yield

        batch = MAPPOMembers(members, [same_draws] * 3)
        batch.batched_update = batched_update
        memory = torch.stack([m.initial_memory(8) for m in members])
        for _ in range(config.episode_length):
            moves = batch.act(*(torch.stack([x] * 3) for x in (step.obs, step.avail_actions)), memory,
                              torch.stack([first] * 3))
            torch.set_default_dtype(torch.float32)  # the simulator's own
            next_step = _cast(env.step(moves[0][0]), dtype)
            torch.set_default_dtype(dtype)
            transitions = [Transition.between(step, first, a, next_step, extras) for a, _, extras in moves]
            draws_from["state"] = torch.get_rng_state()
            metrics = batch.observe_and_update(transitions)
            for own, transition in zip(solo, transitions):
                own.observe(transition)
            step, first, memory = next_step, next_step.done, torch.stack([m for _, m, _ in moves])
        solo_metrics = []
        for own in solo:
            torch.set_rng_state(draws_from["state"])
            solo_metrics.append(own.update())
    finally:
        torch.set_default_dtype(default)
    for together, own, m_together, m_own in zip(members, solo, metrics, solo_metrics):
        assert m_together.keys() == m_own.keys()
        assert list(m_together.values()) == pytest.approx(list(m_own.values()), rel=tolerance * 10)
        for module in ("actor", "critic", "value_norm"):
            theirs = getattr(own, module).state_dict()
            for name, value in getattr(together, module).state_dict().items():
                assert value.dtype == theirs[name].dtype
                assert _gap(value, theirs[name]) <= tolerance, (module, name)
        # the optimisers' moments were handed back too: a checkpoint continues from them
        _assert_adam_states_match({opt: (getattr(together, opt), getattr(own, opt)) for opt in ("actor_opt", "critic_opt")},
                                  tolerance * 10)


@pytest.mark.parametrize("algorithm", ["mamba", "mabl"])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-11), (torch.float32, 1e-4)])
def test_one_world_model_learner_call_of_members_together_equals_their_solo_calls(algorithm, dtype, tolerance):
    """Same weights, same transitions, same generator states: members acting together pick their solo copies'
    actions, and after one learner call (world-model steps with MAMBA's dropout or MABL's global level, then a
    policy round in imagination) every member's networks, Adam moments and step counts, entropy weight and
    metrics equal its solo copy's to float rounding (measured worst: 1.2e-13 in float64, 4.0e-5 in float32,
    relative to each tensor's largest entry)."""
    from algorithms import make_algorithm, make_config
    from algorithms.base import Transition
    from algorithms.members import WAITING
    from algorithms.world_model.members import WorldModelMembers

    env = envs.make("smac/3m", 2, seed=0, backend="sim", checked=False)
    config = dataclasses.replace(make_config(algorithm, env.spec, "tiny"), num_envs=2, min_buffer_size=40)
    step, first = _cast(env.reset(), dtype), torch.ones(2, dtype=torch.bool)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        def made(seed):  # the agent's learner steps close over it: copies are made, not deep-copied
            torch.manual_seed(seed)
            return make_algorithm(algorithm, env.spec, config)

        members, solo = [made(seed) for seed in (0, 1, 2)], [made(seed) for seed in (0, 1, 2)]
        drawn, states = {}, {}

        def draws(k):  # every member starts from one state at each call below, as its solo copy will
            @contextmanager
            def draw():
                torch.set_rng_state(states.get(k, drawn["state"]))
                yield
                states[k] = torch.get_rng_state()
            return draw

        batch = WorldModelMembers(members, [draws(k) for k in range(3)])
        memory = torch.stack([m.initial_memory(2) for m in members])
        solo_memory = [m.initial_memory(2) for m in solo]
        outcomes = []
        while WAITING not in outcomes:
            drawn["state"] = torch.get_rng_state()
            states.clear()
            moves = batch.act(*(torch.stack([x] * 3) for x in (step.obs, step.avail_actions)), memory,
                              torch.stack([first] * 3))
            for k, own in enumerate(solo):
                torch.set_rng_state(drawn["state"])
                actions, solo_memory[k], _ = own.act(step.obs, step.avail_actions, solo_memory[k], first)
                assert torch.equal(actions, moves[k][0])
                assert (solo_memory[k] - moves[k][1]).abs().max() <= tolerance
            torch.set_default_dtype(torch.float32)  # the simulator's own
            next_step = _cast(env.step(moves[0][0]), dtype)
            torch.set_default_dtype(dtype)
            transitions = [Transition.between(step, first, a, next_step, extras) for a, _, extras in moves]
            drawn["state"] = torch.get_rng_state()
            states.clear()
            outcomes = batch.observe_and_update(transitions)
            for own, transition in zip(solo, transitions):
                torch.set_rng_state(drawn["state"])
                own.observe(transition)
            step, first, memory = next_step, next_step.done, torch.stack([m for _, m, _ in moves])
        assert outcomes == [WAITING] * 3
        drawn["state"] = torch.get_rng_state()
        states.clear()
        metrics = batch.update_waiting()
        solo_metrics = []
        for own in solo:
            torch.set_rng_state(drawn["state"])
            solo_metrics.append(own.update())
    finally:
        torch.set_default_dtype(default)
    for together, own, m_together, m_own in zip(members, solo, metrics, solo_metrics):
        assert m_together.keys() == m_own.keys()
        assert m_together == pytest.approx(m_own, rel=tolerance * 10, abs=1e-9)
        for module in ("model", "actor", "critic"):
            theirs = getattr(own, module).state_dict()
            for name, value in getattr(together, module).state_dict().items():
                if name.endswith("in_proj_bias"):  # without the key biases: softmax is blind to them, their
                    d = value.shape[0] // 3  # gradients are rounding noise, which Adam scales up to full steps
                    value, theirs[name] = torch.cat([value[:d], value[2 * d:]]), torch.cat([theirs[name][:d],
                                                                                           theirs[name][2 * d:]])
                assert _gap(value, theirs[name]) <= tolerance, (module, name)
        _assert_adam_states_match({"model": (together.world_model.optimiser, own.world_model.optimiser),
                                   "actor": (together.behaviour.actor_opt, own.behaviour.actor_opt),
                                   "critic": (together.behaviour.critic_opt, own.behaviour.critic_opt)}, tolerance * 10)
        assert float(together.behaviour.entropy_weight) == float(own.behaviour.entropy_weight)
