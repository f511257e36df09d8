"""The seed members' speed harnesses run and print their tables (``suites/checks/learner_benchmark.py
--members``, ``suites/checks/member_layer_costs.py``); their figures live in docs/performance.md."""
import re

import pytest

from suites.checks import learner_benchmark, member_layer_costs


def test_a_learner_call_of_members_is_timed_against_their_solo_calls(capsys):
    argv = ["--task", "smac/3m", "--preset", "tiny", "--algorithms", "mamba", "--members", "1", "2",
            "--model-epochs", "1", "--epochs", "1"]
    assert learner_benchmark.main(argv) == 0
    rows = re.findall(r"^\| mamba \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", capsys.readouterr().out, re.M)
    assert [int(k) for k, *_ in rows] == [1, 2]
    for together, alone, speed_up in (map(float, row[1:]) for row in rows):  # printed to 2 decimals
        assert together > 0 and alone > 0
        assert (alone - 0.005) / (together + 0.005) - 0.005 <= speed_up <= (alone + 0.005) / (together - 0.005) + 0.005


@pytest.mark.parametrize("module, argv, message", [
    (learner_benchmark, ["--members", "0"], "group sizes must be at least 1, got 0"),
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
