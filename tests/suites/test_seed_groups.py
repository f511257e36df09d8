"""Seed members trained in one process (``--seed-batch``): each a full run, independent of the others, faults
kept inside one member, resumable, and its record laid out as a solo run's."""
import json
from pathlib import Path

import pytest
import torch

from algorithms.mappo.agent import MAPPO
from algorithms.members import StackedNetworks
from suites import run as cli
from suites.launching.experiment import execute, execute_group
from suites.launching.records import DONE, FAILED, run_status
from suites.planning.spec import RunSpec
from tests.helpers import InterruptedAt, learning, member_specs, run_metrics


def _status(results: Path, spec: RunSpec) -> dict:
    run_dir = results / "runs" / spec.run_id
    last = max(int(p.name) for p in run_dir.iterdir() if p.name.isdigit())
    return json.loads((run_dir / str(last) / "run.json").read_text())


@pytest.mark.parametrize("algorithm", ["mappo", "mamba"])
def test_each_member_records_the_series_of_its_solo_run(tmp_path, monkeypatch, algorithm):
    """Members compute as one (``algorithms/mappo/members.py``, ``algorithms/world_model/members.py``), each its
    solo run's numbers, so their series are the solo runs', bit for bit on the CPU."""
    stacked_calls, real_call = [], StackedNetworks.call

    def counted(self, *args, **kwargs):
        stacked_calls.append(len(self.members))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(StackedNetworks, "call", counted)
    specs = member_specs(0, 1, algorithm=algorithm)
    execute_group(specs, tmp_path / "group")
    assert 2 in stacked_calls  # really computed together, not one after another
    for spec in specs:
        execute(spec, tmp_path / "solo")
        assert learning(run_metrics(tmp_path / "group", spec)) == learning(run_metrics(tmp_path / "solo", spec))
        assert run_status(tmp_path / "group" / "runs" / spec.run_id) == DONE


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ["mappo", "mamba"])
def test_a_group_trains_on_cuda_with_every_member_a_full_run(tmp_path, algorithm):
    """On a GPU members compute together too (eagerly; a solo world-model run replays CUDA graphs), each
    only to float rounding of its solo run, so a member's episodes may part from its solo run's: every member
    finishes with its own record, the solo run's series, and finite learning metrics."""
    specs = member_specs(0, 1, algorithm=algorithm, device="cuda")
    execute_group(specs, tmp_path / "group")
    execute(specs[0], tmp_path / "solo")
    solo = learning(run_metrics(tmp_path / "solo", specs[0]))
    for spec in specs:
        assert run_status(tmp_path / "group" / "runs" / spec.run_id) == DONE
        series = learning(run_metrics(tmp_path / "group", spec))
        assert series.keys() == solo.keys()
        assert all(value == value for steps, values in series.values() for value in values)  # no NaN


@pytest.mark.parametrize("algorithm", ["mappo", "mamba"])
def test_a_members_series_does_not_depend_on_the_other_members_seeds(tmp_path, algorithm):
    """Bit for bit: the vectorised computation gives each member's slice the same numbers whatever the others
    hold and however many they are (and a world-model member's waits change when it computes, not what)."""
    execute_group(member_specs(0, 1, algorithm=algorithm), tmp_path / "a")
    execute_group(member_specs(0, 9, 4, algorithm=algorithm), tmp_path / "b")
    spec = member_specs(0, algorithm=algorithm)[0]
    assert learning(run_metrics(tmp_path / "a", spec)) == learning(run_metrics(tmp_path / "b", spec))


def test_a_member_record_has_the_layout_of_a_solo_record_and_names_its_group(tmp_path):
    specs = member_specs(0, 1)
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
    specs = member_specs(0, 1)
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
    assert learning(run_metrics(tmp_path / "group", specs[0])) == learning(run_metrics(tmp_path / "solo", specs[0]))


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

    specs = member_specs(0, 1, algorithm="mamba")
    monkeypatch.setattr(WorldModelAgent, "__init__", count)
    monkeypatch.setattr(SequenceReplay, "sample", poisoned)
    results = execute_group(specs, tmp_path / "group")
    monkeypatch.undo()

    assert isinstance(results[1], Exception) and "'train/reward_loss' is not finite" in str(results[1])
    assert _status(tmp_path / "group", specs[1])["status"] == "FAILED"
    assert run_status(tmp_path / "group" / "runs" / specs[0].run_id) == DONE
    execute_group(specs, tmp_path / "healthy")
    assert learning(run_metrics(tmp_path / "group", specs[0])) == learning(run_metrics(tmp_path / "healthy", specs[0]))


@pytest.mark.parametrize("algorithm", ["mappo", "mamba"])
def test_an_interrupted_group_resumes_every_member_to_the_uninterrupted_series(tmp_path, algorithm):
    specs = member_specs(0, 1, steps=768, algorithm=algorithm)
    execute_group(specs, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        execute_group(specs, tmp_path / "cut", progress=InterruptedAt(2 * 600))  # both members past step 512
    assert all(_status(tmp_path / "cut", s)["status"] == "INTERRUPTED" for s in specs)
    execute_group(specs, tmp_path / "cut")
    for spec in specs:
        assert learning(run_metrics(tmp_path / "cut", spec)) == learning(run_metrics(tmp_path / "whole", spec))


def test_members_resume_from_checkpoints_at_different_steps(tmp_path):
    """A kill between two members' checkpoint writes leaves them at different steps: each resumes from its own,
    and they still compute as one (each with its own Adam step count), so each series is its uninterrupted
    solo run's, bit for bit."""
    specs = member_specs(0, 1, steps=768)
    for spec in specs:
        execute(spec, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        execute(specs[0], tmp_path / "cut", progress=InterruptedAt(600))  # seed 0 checkpointed at 512
    with pytest.raises(KeyboardInterrupt):
        execute(specs[1], tmp_path / "cut", progress=InterruptedAt(300))  # seed 1 at 256
    execute_group(specs, tmp_path / "cut")
    for spec in specs:
        assert learning(run_metrics(tmp_path / "cut", spec)) == learning(run_metrics(tmp_path / "whole", spec))


def test_thread_settings_are_chosen_in_one_place_and_recorded(tmp_path, monkeypatch):
    from suites.launching import threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.choose() == threads.DEFAULT_THREADS == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose() == 3 and threads.choose(2) == 2  # --threads beats the environment
    spec = member_specs(0, steps=256, threads=2)[0]
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
    failed = _status(tmp_path, member_specs(1, suite="smoke")[0])
    assert failed["status"] == "FAILED" and "is unreadable" in failed["fail_trace"][-1]
    # the finished member's progress file names its group (an ETA counts the group's time once)
    state = json.loads((tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0" / "progress.json").read_text())
    assert state["group"] == ["smoke/smac_3m/mappo/seed_0", "smoke/smac_3m/mappo/seed_1"]
