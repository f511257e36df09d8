"""The refactor check (suites/checks/fingerprint.py): every kind of difference between two fingerprints is named,
and equal fingerprints have none."""
import json

import pytest

from suites.checks.fingerprint import differences, main

BEFORE = {"smoke/smac_3m/mappo/seed_0": {"eval/win_rate": {"steps": [0, 512], "values": [0.0, 0.25]},
                                         "train/entropy": {"steps": [256], "values": [0.3]}}}


def test_equal_fingerprints_have_no_differences():
    assert differences(BEFORE, json.loads(json.dumps(BEFORE))) == []


def test_a_value_a_step_a_metric_and_a_run_that_differ_are_each_named():
    after = json.loads(json.dumps(BEFORE))
    after["smoke/smac_3m/mappo/seed_0"]["train/entropy"]["values"] = [0.1 + 0.2]  # the last bit
    assert differences(BEFORE, after) == [
        "smoke/smac_3m/mappo/seed_0 train/entropy step 256: 0.30000000000000004, before 0.3"]
    after["smoke/smac_3m/mappo/seed_0"]["eval/win_rate"]["steps"] = [0, 1024]
    after["smoke/smac_3m/mappo/seed_0"]["train/new"] = {"steps": [1], "values": [1.0]}
    after["smoke/smac_3m/mamba/seed_0"] = {}
    lines = differences(BEFORE, after)
    assert "smoke/smac_3m/mamba/seed_0: only after" in lines
    assert "smoke/smac_3m/mappo/seed_0 train/new: only after" in lines
    assert "smoke/smac_3m/mappo/seed_0 eval/win_rate: logged at steps [0, 1024], before [0, 512]" in lines


def test_comparing_with_a_missing_file_says_how_to_make_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--compare", str(tmp_path / "before.json")])
    assert stop.value.code == 2
    assert "write one first with --write" in capsys.readouterr().err
