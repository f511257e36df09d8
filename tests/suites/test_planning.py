"""A suite command becomes runs (suites/planning/): suites and their defaults, budgets, presets, sweeps, suite
files, seed groups, the run options, and the checks and messages before anything runs."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from suites import run as cli
from suites.launching.records import DONE, run_status
from suites.planning.definitions import SUITES
from suites.planning.plan import plan, seed_groups
from tests.helpers import ROOT, SMALL, expand, member_specs

EXAMPLE = ROOT / "suites" / "examples" / "mappo_lr_sweep.toml"


def test_superhard_suite_expands_to_every_map_algorithm_and_seed():
    runs = expand("smac_superhard", "--seeds", "5")
    assert len(runs) == 5 * 4 * 5
    assert {r.task for r in runs} == {"smac/3s5z_vs_3s6z", "smac/6h_vs_8z", "smac/MMM2", "smac/27m_vs_30m", "smac/corridor"}
    assert {r.algorithm for r in runs} == {"mabl", "mabl_single_level", "mamba", "mappo"}
    assert {r.seed for r in runs} == set(range(5)) and len({r.run_id for r in runs}) == 100
    assert {(r.steps, r.eval_interval, r.preset, r.eval_episodes) for r in runs} == {(2_000_000, 40_000, "paper", 32)}
    assert runs[0].run_id == "smac_superhard/smac_3s5z_vs_3s6z/mabl/seed_0"


@pytest.mark.parametrize("suite, runs", [("smoke", 2 * 4 * 2), ("smac_paper", 11 * 4 * 5), ("smac_all", 23 * 4 * 5),
                                         ("flatland", 3 * 4 * 5),
                                         ("ablation", 5 * 2 * 5), ("regression", 3 * 4 * 1),
                                         ("cpu_learning", 1 * 6 * 5)])
def test_every_suite_expands_with_its_default_seeds_and_budget(suite, runs):
    specs = expand(suite)
    assert len(specs) == runs
    steps, interval = SUITES[suite].budgets[SUITES[suite].default_budget]
    assert {(s.steps, s.eval_interval) for s in specs} == {(steps, interval)}


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_every_suite_preset_fits_its_algorithms_and_tasks(suite):
    for spec in {(s.task, s.algorithm): s for s in expand(suite)}.values():
        config = spec.algorithm_config()  # a preset that does not exist or fit raises UsageError
        assert spec.env_spec.task == spec.task and config.asdict()


def test_a_suite_can_give_one_algorithm_its_own_preset():
    assert {(r.algorithm, r.preset) for r in expand("cpu_learning")} == {
        ("mabl", "small"), ("mabl_single_level", "small"), ("mamba", "small"), ("mappo", "tiny"),
        ("attack_nearest", "small"), ("focus_fire", "small")}
    assert {r.preset for r in expand("cpu_learning", "--preset", "tiny")} == {"tiny"}  # --preset applies to all


def test_budgets_and_steps_override():
    assert {(r.steps, r.eval_interval) for r in expand("flatland", "--budget", "short")} == {(100_000, 5_000)}
    assert {(r.steps, r.eval_interval) for r in expand("smac_superhard", "--budget", "tiny")} == {(10_000, 2_000)}
    # --steps replaces the budget's steps; evaluation never spaces wider than the run
    assert {(r.steps, r.eval_interval) for r in expand("smac_superhard", "--steps", "30000")} == {(30_000, 30_000)}
    assert {(r.steps, r.eval_interval) for r in expand("smac_superhard", "--steps", "100000")} == {(100_000, 40_000)}


def test_a_list_of_values_sweeps_the_grid_of_the_fields_that_reach_each_algorithm():
    runs = expand("smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "mabl", "--seeds", "1", "--variant", "sw",
                  "--set", "mappo.lr=1e-4,5e-4", "--set", "ppo_epoch=3,4", "--set", "model_lr=3e-4")
    mappo = {r.variant: dict(r.overrides) for r in runs if r.algorithm == "mappo"}
    assert mappo == {f"sw_lr-{lr}_ppo_epoch-{epochs}": {"lr": float(lr), "ppo_epoch": epochs}
                     for lr in ("1e-4", "5e-4") for epochs in (3, 4)}
    (mabl,) = [r for r in runs if r.algorithm == "mabl"]  # no swept field reaches it: one run, as without a sweep
    assert (mabl.variant, dict(mabl.overrides)) == ("sw", {"model_lr": 3e-4})
    assert {r.run_id for r in runs} >= {"smoke/smac_3m/mappo+sw_lr-1e-4_ppo_epoch-3/seed_0", "smoke/smac_3m/mabl+sw/seed_0"}
    single = expand("smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "1", "--set", "lr=1e-4")
    assert [(r.variant, r.overrides) for r in single] == [("", (("lr", 1e-4),))]  # a single value: no variant


def test_a_suite_plans_from_python_as_from_the_command_line():
    from suites.planning.definitions import get_suite
    from suites.planning.options import RunOptions

    options = RunOptions(seeds=2, tasks=("smac/3m",), algorithms=("mappo",), assignments=("mappo.lr=1e-3",),
                         backend="sim")
    assert plan(get_suite("smoke"), options) == expand("smoke", "--seeds", "2", "--tasks", "smac/3m", "--algorithms",
                                                       "mappo", "--set", "mappo.lr=1e-3", "--backend", "sim")


def test_every_run_option_has_one_flag_and_the_file_takes_all_but_the_suites_own(tmp_path, capsys):
    """RunOptions is the one list: each field is a flag; a suite file takes each field it may set under the
    same name, as a typed value, and the command line overrides it."""

    from suites.planning.options import RunOptions

    flags = {a.dest: a.option_strings for a in cli.parser()._actions}
    for f in dataclasses.fields(RunOptions):
        assert flags[f.name] == ["--" + RunOptions.key(f).replace("_", "-")]
    assert set(RunOptions.file_keys()) == {RunOptions.key(f) for f in dataclasses.fields(RunOptions)} - {
        "seeds", "algorithms", "tasks", "budget", "steps", "eval_episodes", "preset", "results", "dry_run", "status"}
    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\ntasks = ["smac/3m"]\nalgorithms = ["mappo"]\nsteps = 256\nseed_batch = 2\njobs = 2\n'
                     'set = ["mappo.lr=1e-3", "mappo.ppo_epoch=3"]\n')
    _, options = cli.read_command([str(suite), "--jobs", "1", "--set", "mappo.lr=5e-4"])
    assert (options.seed_batch, options.jobs) == (2, 1)
    assert options.assignments == ("mappo.ppo_epoch=3", "mappo.lr=5e-4")  # the command line's lr replaces the file's
    suite.write_text('name = "s"\ntasks = ["smac/3m"]\nsteps = 256\njobs = "2"\n')
    assert cli.main([str(suite), "--dry-run"]) == 2
    assert "jobs must be an integer >= 1, got '2'" in capsys.readouterr().err


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


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_seed_groups_hold_seeds_of_identical_settings_only():
    runs = member_specs(0, 1, 2, 3, 4) + member_specs(0, 1, algorithm="mamba") + member_specs(0, variant="other")
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


@pytest.mark.parametrize("assignment, first_line", [
    ("mappo.ppo_epoch=-3", "error: mappo config: ppo_epoch must be at least 1, got -3"),
    ("mappo.lr=-1", "error: mappo config: lr must be positive, got -1.0"),
    ("mappo.lr=0", "error: mappo config: lr must be positive, got 0.0"),
    ("mappo.clip_param=-0.2", "error: mappo config: clip_param must be positive, got -0.2"),
    ("mappo.gamma=1.5", "error: mappo config: gamma must be between 0 and 1, got 1.5"),
    ("mamba.model_lr=-1", "error: mamba config: model_lr must be positive, got -1.0"),
    ("mamba.model_epochs=0", "error: mamba config: model_epochs must be at least 1, got 0"),
])
def test_settings_that_would_train_nothing_are_refused_before_anything_runs(tmp_path, capsys, assignment, first_line):
    algorithm = assignment.split(".")[0]
    argv = [*SMALL, "--algorithms", algorithm, "--set", assignment, "--results", str(tmp_path)]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.splitlines()[0] == first_line
    assert not (tmp_path / "runs").exists()


def test_argument_errors_come_without_the_usage_block(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["smoke", "--seeds", "0"])
    err = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and "usage:" not in "\n".join(err)
    assert err == ["python -m suites.run: error: argument --seeds: --seeds must be >= 1, got 0",
                   "(`python -m suites.run --help` lists every option)"]


def test_an_unknown_suite_file_key_gets_a_guess(tmp_path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "mine"\ntasks = ["smac/3m"]\nalgoritms = ["mappo"]\n')
    assert cli.main([str(suite), "--dry-run"]) == 2
    assert "unknown key(s) 'algoritms' (did you mean 'algorithms'?)" in capsys.readouterr().err


def test_a_sweep_reruns_as_done(tmp_path, capsys):
    argv = [*SMALL, "--results", str(tmp_path), "--set", "mappo.lr=1e-4,1e-3"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv + ["--dry-run"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["done", "done"]
    assert json.loads((tmp_path / "runs/smoke/smac_3m/mappo+lr-1e-3/seed_0/1/config.json").read_text())[
        "algorithm_config"]["lr"] == 1e-3


@pytest.mark.parametrize("argv, message", [
    (["nosuch"], "unknown suite 'nosuch'; valid suites: ablation, cpu_learning, flatland, regression, smac_all, "
                 "smac_paper, smac_superhard, smoke"),
    (["smoke", "--tasks", "smac/4m"], "valid tasks: "),
    (["smoke", "--algorithms", "qmix"], "valid algorithms: attack_nearest, focus_fire, mabl, mabl_single_level, mamba, mappo"),
    (["smoke", "--preset", "huge"], "unknown mabl preset 'huge'; valid presets: paper, paper_flatland, paper_smac, small, tiny"),
    (["smoke", "--budget", "forever"], "valid budgets: tiny, short, paper"),
    (["smoke", "--backend", "sc2"], "install smacv2"),
    (["smoke", "--device", "cuda:7"], "CUDA requested but not available"),
    (["smoke", "--set", "modl_lr=1e-3"], "any selected algorithm has no config field 'modl_lr'; did you mean model_lr?"),
    (["smoke", "--set", "model_lr=fast"], "--set model_lr=fast: mabl.model_lr must be a number, got 'fast'"),
    (["smoke", "--set", "mappo.model_lr=1e-3"], "mappo has no config field 'model_lr'"),
    (["smoke", "--set", "tf32=maybe"], "mabl.tf32 is true or false, got 'maybe'"),
    (["smoke", "--set", "hidden"], "--set expects [ALGORITHM.]FIELD=VALUE, got 'hidden'"),
    (["smoke", "--algorithms", "mappo", "--set", "mabl.hidden=8"], "mabl is not among the selected algorithms (mappo)"),
    (["smoke", "--set", "qmix.hidden=8"], "unknown algorithm 'qmix'"),
    (["smoke", "--set", "hidden=0"], "hidden must be at least 1, got 0"),
    (["smoke", "--variant", "lr 1e-3"], "invalid variant name 'lr 1e-3' (from --variant): it names run directories"),
    (["smoke", "--variant", "../x"], "invalid variant name '../x'"),
    (["smoke", "--set", "mappo.lr=1e-4,fast"], "mappo.lr must be a number, got 'fast'"),
    (["smoke", "--set", "mappo.lr=1e-4,"], "a list of values has an empty entry"),
    (["smoke", "--set", "mappo.critic_features=a+b,c"], "mappo has no config field 'critic_features'"),
])
def test_bad_names_exit_2_with_the_valid_ones(argv, message, capsys, tmp_path):
    if "cuda:7" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert cli.main(argv + ["--results", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["smoke", "--seeds", "0"], "--seeds must be >= 1"),
    (["smoke", "--steps", "-5"], "--steps must be >= 1"),
])
def test_bad_numbers_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err
