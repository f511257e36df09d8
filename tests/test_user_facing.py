"""What a new user sees: refused settings, unwritable folders, log files, tables and figures that do not
mislead, and messages that say what to do."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import figures, stats
from analysis.export import write_table
from suites import run as cli

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "1", "--steps", "256", "--eval-episodes", "2",
         "--backend", "sim"]


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


def test_an_unwritable_results_folder_is_refused_with_the_path_and_what_to_do(tmp_path, capsys):
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    assert cli.main([*SMALL, "--results", str(blocked / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write to {blocked / 'results'} (")
    assert "choose another directory with --results or make this one writable" in err and "Traceback" not in err


def test_make_plots_refuses_an_unwritable_output_folder_without_a_traceback(tmp_path, capsys):
    from analysis import make_plots
    from tests.helpers import write_record

    write_record(tmp_path, "smoke", "smac/3m", "mappo", 0, evals={0: 0.0, 256: 0.5}, absolute=0.5)
    (tmp_path / "figures").write_text("not a folder")
    assert make_plots.main(["--results", str(tmp_path), "--reps", "10"]) == 2
    assert f"error: cannot write to {tmp_path / 'figures'}" in capsys.readouterr().err


def test_progress_written_to_a_file_is_a_few_plain_lines(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as out:
        code = subprocess.call([sys.executable, "-m", "suites.run", *SMALL, "--results", str(tmp_path / "r")],
                               cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    text = log.read_text()
    assert code == 0, text
    assert "\x1b[" not in text and "\r" not in text
    assert len(text.splitlines()) < 20
    assert "completed smoke/smac_3m/mappo/seed_0" in text


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


def test_make_plots_names_the_recorded_suites_for_a_misspelled_one(tmp_path, capsys):
    from analysis import make_plots
    from tests.helpers import write_record

    write_record(tmp_path, "smoke", "smac/3m", "mappo", 0, evals={0: 0.0, 256: 0.5}, absolute=0.5)
    assert make_plots.main(["--results", str(tmp_path), "--suite", "smoek"]) == 1
    err = capsys.readouterr().err
    assert "no records of suite 'smoek'" in err and "suites recorded there: smoke" in err


def test_check_marl_eval_in_the_wrong_interpreter_says_how_to_make_the_side_environment(tmp_path):
    pytest.importorskip("numpy")
    if subprocess.call([sys.executable, "-c", "import marl_eval"], stderr=subprocess.DEVNULL) == 0:
        pytest.skip("marl-eval is installed here")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_marl_eval.py"), str(tmp_path / "x.json")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "marl-eval cannot be imported" in done.stderr and "pip install --no-deps id-marl-eval==0.0.4" in done.stderr


def _table(points: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([dict(task="smac/3m", statistic="IQM", algorithm=a, point=p, lower=p, upper=p, seeds=2)
                         for a, p in points.items()])


def test_tied_best_cells_are_all_bold_and_a_row_of_ties_has_none(tmp_path):
    write_table(_table({"mabl": 0.5, "mamba": 0.5, "mappo": 0.25}), tmp_path / "tied")
    row = (tmp_path / "tied.md").read_text().splitlines()[2]
    assert row.count("**") == 4 and "**0.250" not in row
    write_table(_table({"mabl": 0.0, "mamba": 0.0, "mappo": 0.0}), tmp_path / "all")
    assert "**" not in (tmp_path / "all.md").read_text() and "textbf" not in (tmp_path / "all.tex").read_text()


def test_a_probability_of_improvement_from_ties_alone_says_so(tmp_path):
    zeros = np.zeros((3, 2))
    table = stats.improvement_table({"mabl": zeros, "mamba": zeros, "mappo": np.ones((3, 2))}, reps=10, targets=("mabl",))
    assert table.set_index("comparison").all_ties.to_dict() == {"P(mabl > mamba)": True, "P(mabl > mappo)": False}
    write_table(table, tmp_path / "improvement")
    lines = (tmp_path / "improvement.md").read_text().splitlines()
    assert "0.500 [0.500, 0.500] (all ties)" in lines[2] and "all ties" not in lines[3]


def test_the_ablation_figure_uses_the_whole_score_scale(tmp_path, monkeypatch):
    shown = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path, caption: shown.setdefault("ylim", fig.axes[0].get_ylim()) and [])
    per_task = pd.DataFrame([dict(task="smac/3m", algorithm=a, point=p, lower=p, upper=p + 0.0125)
                             for a, p in (("mabl", 0.0), ("mabl_single_level", 0.0125))])
    figures.ablation(per_task, ("mabl", "mabl_single_level"), "win rate", "ablation", tmp_path / "ablation", "caption")
    assert shown["ylim"] == pytest.approx((-0.03, 1.03))


def test_a_sweep_reruns_as_done(tmp_path, capsys):
    argv = [*SMALL, "--results", str(tmp_path), "--set", "mappo.lr=1e-4,1e-3"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv + ["--dry-run"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["done", "done"]
    assert json.loads((tmp_path / "runs/smoke/smac_3m/mappo+lr-1e-3/seed_0/1/config.json").read_text())[
        "algorithm_config"]["lr"] == 1e-3


def test_memory_stays_flat_across_the_runs_of_one_process(tmp_path):
    """World-model runs one after another in one process (as the sequential launcher runs a suite): what a
    finished run held is freed, so resident memory does not climb run after run."""
    from suites.launching.experiment import execute
    from suites.planning.spec import RunSpec

    def resident_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    sizes = []
    for seed in range(5):
        execute(RunSpec(suite="mem", task="smac/3m", algorithm="mabl", preset="tiny", seed=seed, steps=256,
                        eval_interval=256, eval_episodes=2, backend="sim"), tmp_path)
        sizes.append(resident_mb())
    # before the fix each run of this size added about 35 MB that was never given back
    assert sizes[-1] - sizes[1] < 40, f"resident memory after each run: {[round(s) for s in sizes]} MB"
