"""CI regression checks on short runs against the committed references in tests/regression_reference/
(``tox -e regression`` runs only these; refresh with ``python -m suites.regression --refresh``)."""
import json

import pytest

import envs
from suites import regression
from suites.launching.records import run_id as record_id
from suites.planning.definitions import SUITES


def run_id(task: str, algorithm: str) -> str:
    return record_id("regression", task, algorithm, 0, backend=envs.resolve_backend(task, "sim"))


REFERENCE = dict(task="smac/3m", algorithm="mappo", steps=2048, metric="win_rate", absolute=0.5,
                 steps_per_second=100.0, losses_finite=True, losses_falling=["train/value_loss"])


def test_every_regression_run_has_a_committed_reference():
    suite = SUITES["regression"]
    expected = {run_id(t, a) for t in suite.tasks for a in suite.algorithms}
    assert len(expected) == 12
    for run in expected:
        assert regression.reference_path(run).exists(), f"missing reference for {run}"


@pytest.mark.parametrize("change, problem", [
    ({}, None),
    ({"losses_finite": False}, "a training loss is not finite"),
    ({"losses_falling": []}, "train/value_loss no longer falls over the run"),
    ({"absolute": 0.8}, "absolute win_rate 0.800 is outside 0.500 ± 0.25"),
    ({"absolute": 0.74}, None),
    ({"steps_per_second": 1.0}, None),  # a slow run is no learning regression: the machine may be busy
])
def test_compare_flags_each_kind_of_learning_regression(change, problem):
    problems = regression.compare({**REFERENCE, **change}, REFERENCE)
    assert problems == ([problem] if problem else [])


def test_a_slowdown_is_reported_beside_the_learning_check():
    slow = regression.slowdown({**REFERENCE, "steps_per_second": 49.0}, REFERENCE)
    assert slow.startswith("throughput 49.0 steps/s is below half the reference 100.0")
    assert regression.slowdown({**REFERENCE, "steps_per_second": 51.0}, REFERENCE) is None


@pytest.mark.parametrize("check, code, label", [(False, 0, "SLOW"), (True, 1, "FAIL")])
def test_the_regression_tool_shows_a_slowdown_and_fails_on_it_only_when_asked(monkeypatch, capsys, check, code, label):
    run = run_id("smac/3m", "mappo")
    reference = json.loads(regression.reference_path(run).read_text())
    monkeypatch.setattr(regression, "run_suite", lambda results: {run: {**reference, "steps_per_second": 1.0}})
    assert regression.main(["--check-throughput"] if check else []) == code
    out = capsys.readouterr().out
    assert out.startswith(f"{label} {run}  1 steps/s (reference {reference['steps_per_second']:.0f})")
    assert "below half the reference" in out


def test_falling_means_the_last_third_below_the_first():
    assert regression._falls([3.0, 2.0, 2.5, 1.0])
    assert not regression._falls([1.0, 2.0, 3.0])
    assert not regression._falls([1.0])


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    return regression.run_suite(tmp_path_factory.mktemp("regression"))


@pytest.mark.regression
@pytest.mark.parametrize("task", SUITES["regression"].tasks)
@pytest.mark.parametrize("algorithm", SUITES["regression"].algorithms)
def test_short_run_matches_its_reference(summaries, task, algorithm):
    reference = json.loads(regression.reference_path(run_id(task, algorithm)).read_text())
    assert regression.compare(summaries[run_id(task, algorithm)], reference) == []
