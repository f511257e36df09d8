"""The seed members' speed harnesses run and print their tables (``suites/checks/learner_benchmark.py
--members``, ``suites/checks/member_layer_costs.py``), and ``suites/checks/seed_batch_benchmark.py`` reads
the runs' records right; their figures live in docs/performance.md."""
import json
import re

import pytest

from suites.checks import learner_benchmark, member_layer_costs, seed_batch_benchmark
from suites.planning.spec import RunSpec


def _printed_ratio(ratio: float, numerator: float, denominator: float, rounding: float) -> bool:
    """``ratio``, printed to 2 decimals, is ``numerator / denominator`` of two times printed to within ``rounding``."""
    return ((numerator - rounding) / (denominator + rounding) - 0.005 <= ratio
            <= (numerator + rounding) / (denominator - rounding) + 0.005)


def test_a_learner_call_of_members_is_timed_against_their_solo_calls(capsys):
    argv = ["--task", "smac/3m", "--preset", "tiny", "--algorithms", "mamba", "--members", "1", "2",
            "--model-epochs", "1", "--epochs", "1"]
    assert learner_benchmark.main(argv) == 0
    rows = re.findall(r"^\| mamba \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", capsys.readouterr().out, re.M)
    assert [int(k) for k, *_ in rows] == [1, 2]
    for together, alone, speed_up in (map(float, row[1:]) for row in rows):  # printed to 2 decimals
        assert together > 0 and alone > 0
        assert _printed_ratio(speed_up, alone, together, 0.005)


@pytest.mark.parametrize("module, argv, message", [
    (learner_benchmark, ["--members", "0"], "group sizes must be at least 1, got 0"),
    (seed_batch_benchmark, ["--repeats", "0"], "--repeats must be at least 1, got 0"),
    (member_layer_costs, ["--members", "1"], "at least 2 members to compare, got 1"),
])
def test_a_group_too_small_to_time_is_refused(capsys, module, argv, message):
    with pytest.raises(SystemExit) as stop:
        module.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_each_layer_is_timed_three_ways(capsys):
    member_layer_costs.main(["--members", "2", "--calls", "2"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| layer | K separate calls | one vmap call | stacked, no vmap |"
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| linear 32->96", "| GRU step, 32 wide",
                                                        "| softmax over 8 classes (8 categoricals)"]
    for row in rows[1:]:
        assert len(re.findall(r"\d+ / \d+", row)) == 3


def _record(results, spec, metrics: dict[str, float], attempt: int = 2) -> None:
    """A run record's last attempt with the final values of ``metrics`` (an earlier attempt is ignored)."""
    run_dir = results / "runs" / spec.run_id
    for n in range(1, attempt + 1):
        (run_dir / str(n)).mkdir(parents=True)
        values = metrics if n == attempt else dict.fromkeys(metrics, 1000.0)
        (run_dir / str(n) / "metrics.json").write_text(json.dumps(
            {name: {"steps": [0, 64], "values": [0.0, value]} for name, value in values.items()}))


def test_whole_runs_are_compared_per_learner_call_as_well(tmp_path):
    """The K solo runs and the group may make different numbers of learner calls in the same steps (their
    episodes differ once an action flips), so learning is also compared per call."""
    specs = [RunSpec(suite="bench", task="smac/3m", algorithm="mamba", preset="small", seed=s, steps=64,
                     eval_interval=64, eval_episodes=2) for s in range(2)]
    solo, group = tmp_path / "solo", tmp_path / "group"
    for spec, calls in zip(specs, (10, 12)):
        _record(solo, spec, {"time/act_seconds": 1.0, "time/env_seconds": 0.5, "time/learn_seconds": 11.0,
                             "train/learner_calls": calls})
        _record(group, spec, {"time/act_seconds": 0.5, "time/env_seconds": 0.25, "time/learn_seconds": 6.0,
                              "train/learner_calls": calls + 2})
    a, b = seed_batch_benchmark.phases(solo, specs), seed_batch_benchmark.phases(group, specs)
    assert a == {"act+env": 3.0, "learn": 22.0, "calls": 22.0} and b == {"act+env": 1.5, "learn": 12.0, "calls": 26.0}
    assert seed_batch_benchmark.per_call(a, b) == "22 / 26 | 2.17x"  # (22 / 22) / (12 / 26)
    mappo = dict(a, calls=0.0)  # an algorithm that does not count its updates
    assert seed_batch_benchmark.per_call(mappo, b) == "- | -"


def test_each_side_of_a_whole_run_comparison_reports_its_fastest_repeat(capsys):
    """Both sides are timed ``--repeats`` times, alternating; the row gives each side's fastest repeat and
    its slowest, and the speed-up of the fastest two."""
    seed_batch_benchmark.main(["--task", "smac/3m", "--algorithm", "mappo", "--preset", "tiny", "--steps", "64",
                               "--members", "2", "--repeats", "2"])
    out = capsys.readouterr().out
    assert "fastest of 2 repeat(s) of each side" in out
    row = re.search(r"^\| 2 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \| ([\d.]+) / ([\d.]+) \|", out, re.M)
    assert row, out
    solo, group, speed_up, solo_slowest, group_slowest = map(float, row.groups())
    assert solo <= solo_slowest and group <= group_slowest
    assert _printed_ratio(speed_up, solo, group, 0.05)
    assert seed_batch_benchmark.fastest_of([(3.0, {"learn": 2.0}), (1.5, {"learn": 1.0}), (2.0, {"learn": 1.5})]) \
        == (1.5, {"learn": 1.0}, 3.0)
