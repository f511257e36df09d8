"""Suites from TOML files, where results go and what records say about the code, the Python versions the
package admits, and the message when another package shadows ours."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suites import run as cli
from suites.launching.records import DONE, run_status

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "suites" / "examples" / "mappo_lr_sweep.toml"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_example_suite_file_expands_to_its_sweep(tmp_path, capsys):
    assert cli.main([str(EXAMPLE), "--dry-run", "--results", str(tmp_path)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 * (3 * 3 + 3)  # 2 tasks x (3 learning rates x 3 seeds for MAPPO + 3 MAMBA seeds)
    assert "pending  mappo_lr_sweep/smac_2s3z/mappo+lr-1e-3/seed_2  (16000 steps, preset tiny)" in listed
    assert "pending  mappo_lr_sweep/smac_3m/mamba/seed_0  (16000 steps, preset small)" in listed
    assert cli.main([str(EXAMPLE), "--dry-run", "--seeds", "1", "--budget", "tiny", "--results", str(tmp_path)]) == 0
    listed = capsys.readouterr().out.splitlines()  # flags override the file
    assert len(listed) == 2 * (3 + 1) and all("(2048 steps" in line for line in listed)


def test_a_tiny_suite_file_runs_and_the_command_line_overrides_its_settings(tmp_path):
    suite = _write(tmp_path / "tiny.toml", """
name = "from_file"
tasks = ["smac/3m"]
algorithms = ["mappo"]
preset = "tiny"
steps = 256
eval_interval = 128
seeds = 1
eval_episodes = 2
set = ["lr=1e-3", "ppo_epoch=3"]
backend = "sim"
improvement = ["mappo"]
ablation = []
""")
    results = tmp_path / "results"
    assert cli.main([str(suite), "--set", "lr=2e-3", "--results", str(results)]) == 0
    run_dir = results / "runs" / "from_file/smac_3m/mappo/seed_0"
    assert run_status(run_dir) == DONE
    config = json.loads((run_dir / "1" / "config.json").read_text())
    assert (config["suite"], config["budget_steps"], config["eval_interval"], config["eval_episodes"]) == (
        "from_file", 256, 128, 2)
    assert config["overrides"] == {"lr": 2e-3, "ppo_epoch": 3}  # the command line's lr replaced the file's
    assert config["comparisons"] == {"improvement": ["mappo"], "ablation": []} and config["display_name"] == "MAPPO"


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="needs Weights & Biases (pip install -e '.[wandb]')")
def test_a_flag_with_an_optional_value_in_a_suite_file_does_not_swallow_the_file(tmp_path, capsys):
    suite = _write(tmp_path / "w.toml", 'name = "w"\ntasks = ["smac/3m"]\nalgorithms = ["mappo"]\nsteps = 100\n'
                                        'seeds = 1\nwandb = true\n')
    assert cli.main([str(suite), "--dry-run", "--results", str(tmp_path)]) == 0
    assert "pending  w/smac_3m/mappo/seed_0" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ('name = "x"\ntasks = ["smac/3m"]\nsteps = 100\nseed = 3\n',
     "unknown key(s) 'seed' (did you mean 'seeds'?); valid keys: name, description"),
    ('tasks = ["smac/3m"]\nsteps = 100\n', "'name' is required"),
    ('name = "x"\ntasks = ["smac/4m"]\nsteps = 100\n', "unknown task 'smac/4m'; valid tasks: "),
    ('name = "x"\ntasks = ["smac/3m"]\nalgorithms = ["qmix"]\nsteps = 100\n', "unknown algorithm 'qmix'"),
    ('name = "x"\ntasks = ["smac/3m"]\nsteps = 0\n', "steps must be an integer >= 1, got 0"),
    ('name = "x"\ntasks = ["smac/3m"]\n', "give either budgets"),
    ('name = "x"\ntasks = ["smac/3m"]\nbudgets = { a = [10, 5] }\ndefault_budget = "b"\n',
     "default_budget 'b' is not one of its budgets (a)"),
    ('name = "x"\ntasks = ["smac/3m"]\nsteps = 100\njobs = 0\n', "bad.toml: jobs must be an integer >= 1, got 0"),
    ('name = "x"\ntasks = ["smac/3m"]\nsteps = 100\nset = ["mappo.lr=fast"]\n', "mappo.lr must be a number, got 'fast'"),
    ('name = "x"\ntasks = ["smac/3m"\n', "is not valid TOML"),
    ('name = "x"\ntasks = ["smac/3m"]\nsteps = 100\nablation = ["mabl"]\n', "ablation is a pair"),
    ('name = "x"\ntasks = ["smac/3m"]\nsteps = 100\nimprovement = ["mabel"]\n', "unknown algorithm 'mabel'"),
])
def test_a_bad_suite_file_is_refused_with_what_is_wrong(text, message, tmp_path, capsys):
    suite = _write(tmp_path / "bad.toml", text)
    try:
        code = cli.main([str(suite), "--dry-run", "--results", str(tmp_path)])
    except SystemExit as exit:  # argparse's own checks (a flag's value) exit with 2 after the usage line
        code = exit.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_missing_suite_file_is_named(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nope.toml"), "--results", str(tmp_path)]) == 2
    assert f"suite file {tmp_path / 'nope.toml'} not found" in capsys.readouterr().err


def test_results_go_to_the_working_directory_by_default(tmp_path):
    argv = ["smoke", "--tasks", "smac/3m", "--algorithms", "attack_nearest", "--seeds", "1", "--steps", "64",
            "--eval-episodes", "1", "--backend", "sim"]
    done = subprocess.run([sys.executable, "-m", "suites.run", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert run_status(tmp_path / "results" / "runs" / "smoke/smac_3m/attack_nearest/seed_0") == DONE


def test_records_name_the_commit_in_a_checkout_and_the_package_version_otherwise(monkeypatch, tmp_path):
    from suites.launching import provenance

    assert provenance.versions()[provenance.PACKAGE] != "not installed"
    if (ROOT / ".git").exists():
        assert len(provenance.git()["commit"]) == 40
    monkeypatch.setattr(provenance, "REPO", tmp_path)  # as installed into site-packages: no .git beside it
    assert provenance.git() == {"commit": None, "dirty": None}


def test_the_package_admits_python_3_10_to_3_13():
    from packaging.specifiers import SpecifierSet

    from suites.planning.suite_file import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    admitted = SpecifierSet(project["requires-python"])
    assert all(f"3.{minor}.0" in admitted for minor in (10, 11, 12, 13))
    assert "3.9.0" not in admitted and "3.14.0" not in admitted
    assert not [d for d in project["dependencies"] if "==" in d]  # ranges, not pins


def test_another_envs_package_on_the_path_is_named_instead_of_a_confusing_import_error(tmp_path):
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "__init__.py").write_text("")  # as in EPyMARL's and pymarl's src/
    done = subprocess.run([sys.executable, "-m", "suites.run", "smoke", "--dry-run"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert done.returncode != 0
    assert f"the package 'envs' that Python finds is {tmp_path / 'envs'}, not this suite's" in done.stderr
    assert "shadows it" in done.stderr
