"""The analysis (analysis/): statistics against rliable, skipped records, coverage, backends and game
versions kept apart, output names, tables and figures that do not mislead, and the marl-eval export."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from rliable import metrics

from analysis import figures, make_plots, stats
from analysis.export import write_table
from analysis.loading import SkippedRecord, load_records
from suites.launching.experiment import execute, execute_group
from suites.planning.spec import RunSpec
from tests.helpers import ROOT, TINY, member_specs, write_record

ALGOS = ("mabl", "mabl_single_level", "mamba", "mappo")


def test_iqm_and_probability_of_improvement_match_rliable():
    assert stats.iqm(np.array([[4.0], [1.0], [3.0], [2.0]])) == 2.5  # drop 1 and 4
    rng = np.random.default_rng(0)
    for shape in [(5, 3), (7, 4), (10, 1), (3, 5)]:
        a = rng.random(shape)
        assert stats.iqm(a) == pytest.approx(metrics.aggregate_iqm(a))
        x, y = rng.integers(0, 3, shape) / 2, rng.integers(0, 3, (4, shape[1])) / 2  # many ties
        assert stats.probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))
        assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)
    curves = rng.random((5, 3, 7))
    assert stats.iqm(curves) == pytest.approx([metrics.aggregate_iqm(curves[..., t]) for t in range(7)])
    assert stats.probability_of_improvement(np.ones((3, 2)), np.zeros((4, 2))) == 1.0


def test_intervals_contain_the_truth_and_are_reproducible():
    rng = np.random.default_rng(1)
    scores = {"a": rng.uniform(0, 1, (10, 5)), "b": rng.beta(2, 5, (10, 5))}  # true means 0.5 and 2/7
    table = stats.aggregate_table(scores, reps=500)
    mean = table[table.statistic == "Mean"].set_index("algorithm")
    for algo, truth in (("a", 0.5), ("b", 2 / 7)):
        assert mean.lower[algo] < truth < mean.upper[algo]
        assert mean.lower[algo] <= mean.point[algo] <= mean.upper[algo]
    iqm = table[table.statistic == "IQM"].set_index("algorithm")
    assert iqm.lower["a"] < 0.5 < iqm.upper["a"]  # the IQM of U(0, 1) is 0.5
    assert table.equals(stats.aggregate_table(scores, reps=500))  # seeded: same numbers every time
    # one algorithm's interval does not depend on which others are analysed alongside it
    alone = stats.aggregate_table({"b": scores["b"]}, reps=500)
    assert np.allclose(alone.lower, table[table.algorithm == "b"].lower)


def _suite(results, suite="synthetic", backend="sim", seeds=3, tasks=("smac/3m", "smac/2s3z"), algos=ALGOS,
           steps=(0, 100, 200)):
    for task in tasks:
        for i, algo in enumerate(algos):
            for seed in range(seeds):
                final = min(1.0, 0.2 * i + 0.05 * seed)
                write_record(results, suite, task, algo, seed, backend=backend,
                             evals={s: final * s / steps[-1] for s in steps}, absolute=final)


def test_curves_are_on_the_evaluation_steps_every_run_has(tmp_path):
    _suite(tmp_path, seeds=2)
    write_record(tmp_path, "synthetic", "smac/3m", "mappo", 2, evals={0: 0.0, 100: 0.5, 150: 0.6, 200: 1.0},
                 absolute=1.0)  # an extra evaluation point the other runs lack
    frame, _ = load_records(tmp_path)
    arrays, steps = stats.curve_arrays(frame[frame.metric == "eval/win_rate"])
    assert list(steps) == [0, 100, 200]
    assert arrays["mappo"].shape == (2, 2, 3)  # seed 2 lacks smac/2s3z, so only seeds complete on both tasks
    curves = stats.iqm_curves(arrays, steps, reps=100)
    assert sorted(curves.step.unique()) == [0, 100, 200]
    assert curves[curves.step == 0].point.tolist() == [0.0] * 4


def test_failed_partial_and_corrupt_records_are_skipped_with_a_warning_each(tmp_path):
    _suite(tmp_path, seeds=1, algos=("mappo",))
    write_record(tmp_path, "synthetic", "smac/3m", "mappo", 1, status="FAILED")
    write_record(tmp_path, "synthetic", "smac/3m", "mappo", 2, status="RUNNING", checkpoint=True)
    write_record(tmp_path, "synthetic", "smac/3m", "mappo", 3)
    (tmp_path / "runs/synthetic/smac_3m/mappo/seed_3/1/metrics.json").write_text('{"eval/win_rate": {"steps": [0')
    with pytest.warns(SkippedRecord) as caught:
        frame, report = load_records(tmp_path)
    assert len(caught) == 3 and report.loaded == 2
    assert str(report) == ("loaded 2 completed run(s); skipped 3; 1 failed run; 1 partial run; 1 unreadable record")
    assert sorted(frame.seed.unique()) == [0]


def test_coverage_reports_missing_seeds_and_tasks(tmp_path):
    _suite(tmp_path, seeds=3, algos=("mabl",))
    _suite(tmp_path, seeds=2, algos=("mappo",), tasks=("smac/3m",))
    frame, _ = load_records(tmp_path)
    assert stats.coverage(frame) == ["mappo: missing task(s) smac/2s3z", "mappo: smac/3m missing seed(s) 2"]


def test_make_plots_writes_every_output_and_keeps_backends_apart(tmp_path, capsys):
    _suite(tmp_path)
    _suite(tmp_path, backend="sc2", algos=("mappo",), seeds=2)
    write_record(tmp_path, "other", "flatland/5_agents", "mabl", 0, family="flatland", evals={0: 0.1, 50: 0.4},
                 absolute=0.4)
    assert make_plots.main(["--results", str(tmp_path), "--reps", "100", "--suite", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "SMAC (simulator), suite synthetic: 24 run(s)" in out and "SMAC (StarCraft II), suite synthetic: 4 run(s)" in out
    assert "other" not in out  # --suite filters
    names = {p.name for p in (tmp_path / "figures").iterdir()} | {p.name for p in (tmp_path / "tables").iterdir()}
    stem = "synthetic_smac_sim"
    for base in ("curves", "iqm_curve", "aggregates", "profiles", "improvement", "ablation"):
        assert {f"{stem}_{base}.png", f"{stem}_{base}.pdf"} <= names
    for base in ("absolute_win_rate", "improvement", "ablation"):
        assert {f"{stem}_{base}.{ext}" for ext in ("md", "tex", "csv")} <= names
    assert f"{stem}_iqm_curve.csv" in names
    # StarCraft II results have their own outputs, never pooled with the simulator's
    sc2 = (tmp_path / "tables" / "synthetic_smac_sc2_absolute_win_rate.csv").read_text()
    assert "mabl" not in sc2 and "mappo" in sc2
    sim = (tmp_path / "tables" / f"{stem}_absolute_win_rate.md").read_text()
    assert "all tasks" in sim and "Optimality gap" in sim
    # mappo's final scores (0.6, 0.65, 0.7) beat mabl's (0, 0.05, 0.1) on every pair: P(mabl > mappo) = 0
    improvement = (tmp_path / "tables" / f"{stem}_improvement.csv").read_text()
    assert "P(mabl > mappo),0.0,0.0,0.0" in improvement


def test_a_variant_is_an_algorithm_of_its_own_and_compare_tabulates_its_improvement(tmp_path, capsys):
    _suite(tmp_path, algos=("mabl", "mamba"))  # final scores: mabl 0, 0.05, 0.1; mamba 0.2, 0.25, 0.3
    for task in ("smac/3m", "smac/2s3z"):
        for seed in range(3):
            write_record(tmp_path, "synthetic", task, "mabl", seed, evals={0: 0.0, 100: 0.5, 200: 0.9}, absolute=0.9,
                         variant="joint-reward")
    frame, _ = load_records(tmp_path)
    assert set(frame.algorithm) == {"mabl", "mamba", "mabl+joint-reward"}
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50", "--compare", "mabl+joint-reward"]) == 0
    improvement = (tmp_path / "tables" / "synthetic_smac_sim_improvement.csv").read_text()
    for line in ("P(mabl > mamba),0.0,", "P(mabl > mabl+joint-reward),0.0,", "P(mabl+joint-reward > mabl),1.0,",
                 "P(mabl+joint-reward > mamba),1.0,"):
        assert line in improvement
    with pytest.raises(SystemExit):
        make_plots.main(["--results", str(tmp_path), "--compare", "mabl+joint"])
    assert ("--compare mabl+joint: no completed runs of that name; algorithms in these records: mabl, "
            "mabl+joint-reward, mamba") in capsys.readouterr().err


def test_return_is_analysed_on_the_win_rate_scale_and_unknown_metrics_are_refused(tmp_path, capsys):
    _suite(tmp_path, algos=("mabl", "mappo"))  # SMAC returns are 20 x the win rates here
    write_record(tmp_path, "synthetic", "flatland/5_agents", "mabl", 0, family="flatland", evals={0: 0.1}, absolute=0.4)
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50"]) == 0
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50", "--metric", "return_mean"]) == 0
    out = capsys.readouterr().out
    assert "Flatland, suite synthetic: not analysed, return_mean is not one of its scores (valid: completion, score)" in out
    tables = tmp_path / "tables"
    by_return = (tables / "synthetic_smac_sim_return_mean_absolute_return_mean.csv").read_text()
    assert by_return == (tables / "synthetic_smac_sim_absolute_win_rate.csv").read_text()  # return / 20 = win rate
    assert (tmp_path / "figures" / "synthetic_smac_sim_return_mean_profiles.png").exists()
    assert not (tables / "synthetic_flatland_return_mean_absolute_return_mean.csv").exists()
    with pytest.raises(SystemExit):
        make_plots.main(["--results", str(tmp_path), "--metric", "return"])
    assert ("unknown --metric 'return'; valid metrics of these records: completion, return_mean, score, win_rate"
            in capsys.readouterr().err)


def test_marl_eval_export_schema(tmp_path):
    """marl-eval's documented structure (its README and JsonLogger): per seed, step_0..step_k entries and
    ``absolute_metrics`` beside them, each metric a list."""
    _suite(tmp_path, suite="my_suite", seeds=2, algos=("mabl", "mappo"))
    write_record(tmp_path, "my_suite", "flatland/5_agents", "mabl", 0, family="flatland", evals={0: 0.1}, absolute=0.4)
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50"]) == 0
    flatland = json.loads((tmp_path / "marl_eval" / "my_suite_flatland.json").read_text())
    absolute = flatland["flatland"]["5_agents"]["mabl"]["seed_0"]["absolute_metrics"]
    assert absolute == {"completion": [0.4], "return_mean": [8.0]}
    data = json.loads((tmp_path / "marl_eval" / "my_suite_smac_sim.json").read_text())
    assert list(data) == ["smac_sim"] and set(data["smac_sim"]) == {"3m", "2s3z"}
    runs = data["smac_sim"]["3m"]["mappo"]
    assert set(runs) == {"seed_0", "seed_1"}
    run = runs["seed_1"]
    assert list(run) == ["step_0", "step_1", "step_2", "absolute_metrics"]
    steps = [k for k in run if k.startswith("step_")]
    assert [run[k]["step_count"] for k in steps] == [0, 100, 200]
    assert all(isinstance(run[k]["win_rate"], list) and len(run[k]["win_rate"]) == 1 for k in steps)
    assert not any("absolute_metrics" in run[k] for k in steps)
    assert run["absolute_metrics"]["win_rate"] == [0.25]
    assert all("," not in algo for algo in data["smac_sim"]["3m"])  # marl-eval splits pairs on commas


def test_marl_evals_own_loader_reads_the_export(tmp_path):
    """With marl-eval installed in a side environment (scripts/check_marl_eval.py says how), its
    data_process_pipeline and create_matrices_for_rliable read our export; they reject the old nesting
    (absolute metrics inside the last step)."""
    import os
    import subprocess

    python = os.environ.get("MARL_EVAL_PYTHON")
    if not python:
        pytest.skip("marl-eval not installed: set MARL_EVAL_PYTHON to a side environment's python "
                    "(scripts/check_marl_eval.py says how to make one)")
    _suite(tmp_path, suite="my_suite", seeds=2, algos=("mabl", "mappo"))
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50"]) == 0
    export = tmp_path / "marl_eval" / "my_suite_smac_sim.json"
    script = ROOT / "scripts" / "check_marl_eval.py"
    ok = subprocess.run([python, str(script), str(export)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "smac_sim mean_win_rate mappo: runs x tasks (2, 2), curve (2, 2, 3)" in ok.stdout
    data = json.loads(export.read_text())
    for runs in data["smac_sim"]["3m"].values():
        for run in runs.values():
            run["step_2"]["absolute_metrics"] = run.pop("absolute_metrics")
    export.write_text(json.dumps(data))
    assert subprocess.run([python, str(script), str(export)], capture_output=True).returncode == 1


def test_empty_results_say_what_to_do(tmp_path, capsys):
    assert make_plots.main(["--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no completed runs" in err and "python -m suites.run smoke" in err


def test_figures_name_algorithms_for_readers_keep_legends_off_the_data_and_state_their_intervals(tmp_path, monkeypatch):
    from analysis import figures

    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, caption: kept.append((fig, caption)) or [])
    _suite(tmp_path, seeds=3)
    for seed in range(3):
        write_record(tmp_path, "synthetic", "smac/3m", "mabl", seed, evals={0: 0.0, 100: 0.5, 200: 0.9}, absolute=0.9,
                     variant="reward_global")
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50", "--suite", "synthetic"]) == 0
    curves, caption = kept[0]  # per-task curves: one shared legend, right of every panel
    fig_legend = curves.legends[0]
    assert [t.get_text() for t in fig_legend.get_texts()] == ["MABL", "MABL (single level)", "MAMBA", "MAPPO",
                                                            "MABL + reward_global"]
    renderer = curves.canvas.get_renderer()
    legend_box = fig_legend.get_window_extent(renderer)
    assert all(ax.get_legend() is None and legend_box.x0 >= ax.get_window_extent(renderer).x1 for ax in curves.axes)
    assert "3 run(s) per algorithm on each of 2 task(s)" in caption and "95% stratified-bootstrap" in caption
    # every algorithm keeps its colour and marker in every figure that draws lines
    styles = [{line.get_label(): (line.get_color(), line.get_marker()) for line in fig.axes[0].get_lines()
               if not line.get_label().startswith("_")} for fig, _ in kept if fig.legends]
    for name in ("MABL", "MAPPO"):
        assert len({s[name] for s in styles if name in s}) == 1


def test_tables_are_wide_with_the_best_of_each_row_in_bold(tmp_path):
    _suite(tmp_path, seeds=3)  # final scores: mappo 0.6-0.7 best everywhere, mabl 0-0.1 worst
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50", "--suite", "synthetic"]) == 0
    md = (tmp_path / "tables" / "synthetic_smac_sim_absolute_win_rate.md").read_text().splitlines()
    assert [c.strip() for c in md[0].strip("|").split("|")] == ["task", "MABL", "MABL (single level)", "MAMBA", "MAPPO"]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")[1:]] for line in md[2:]}
    assert list(rows) == ["smac/2s3z", "smac/3m", "all tasks: IQM", "all tasks: Mean", "all tasks: Median",
                          "all tasks: Optimality gap"]
    assert rows["smac/3m"][3].startswith("**0.650 [") and not rows["smac/3m"][0].startswith("**")
    assert rows["all tasks: Optimality gap"][3].startswith("**0.350")  # the lowest gap is the best
    tex = (tmp_path / "tables" / "synthetic_smac_sim_absolute_win_rate.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex and "\\textbf{0.650" in tex
    ablation = (tmp_path / "tables" / "synthetic_smac_sim_ablation.tex").read_text()
    assert "P(MABL > MABL (single level))" in ablation


def test_the_analysis_never_imports_torch_or_the_environments():
    """Scores, titles and outcome names come from the records' env specs, not from the family code."""
    import subprocess
    import sys

    code = "import sys, analysis.make_plots; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not [m for m in loaded if m.split(".")[0] == "torch" or m in ("envs.base", "envs.smac.simulator")]


def test_a_record_of_another_format_is_skipped_with_the_reason(tmp_path):
    _suite(tmp_path, seeds=1, tasks=("smac/3m",), algos=("mabl", "mappo"))
    config = next((tmp_path / "runs").glob("**/mappo/**/config.json"))
    recorded = json.loads(config.read_text())
    del recorded["record_format"]
    config.write_text(json.dumps(recorded))
    with pytest.warns(SkippedRecord, match=r"record of another format \(None; this version reads format 2: rerun"):
        _, report = load_records(tmp_path)
    assert report.loaded == 1


def test_names_and_comparisons_come_from_the_records(tmp_path):
    """Display names are the algorithms' own (recorded from their configs) and the comparisons the suite's
    (recorded with its runs): the analysis knows no algorithm by name."""
    _suite(tmp_path, seeds=2, tasks=("smac/3m",), algos=("mamba", "mappo"))
    for config in (tmp_path / "runs").glob("**/config.json"):
        recorded = json.loads(config.read_text())
        recorded["comparisons"] = {"improvement": ["mappo"], "ablation": ["mamba", "mappo"]}
        if recorded["algorithm"] == "mamba":
            recorded["display_name"] = "My MAMBA"
        config.write_text(json.dumps(recorded))
    assert make_plots.main(["--results", str(tmp_path), "--reps", "20"]) == 0
    improvement = (tmp_path / "tables" / "synthetic_smac_sim_improvement.csv").read_text()
    assert "P(mappo > mamba)" in improvement and "P(mamba > mappo)" in improvement  # the pair's own, too
    assert "My MAMBA" in (tmp_path / "tables" / "synthetic_smac_sim_ablation.md").read_text()


def test_analysis_turns_records_into_figures_and_tables(tmp_path, capsys):
    from analysis import make_plots

    for seed in (0, 1):
        execute(RunSpec(seed=seed, **{**TINY, "steps": 512}), tmp_path)
    # a corrupt record is skipped and reported, never included
    broken = tmp_path / "runs" / "test/smac_3m/mappo/seed_9/1"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"status": "COMPLETED"')
    assert make_plots.main(["--results", str(tmp_path), "--reps", "200"]) == 0
    assert "seed_9: unreadable record (run.json)" in capsys.readouterr().err
    assert (tmp_path / "figures" / "test_smac_sim_curves.png").exists()
    table = (tmp_path / "tables" / "test_smac_sim_absolute_win_rate.md").read_text()
    assert "| smac/3m " in table and "| all tasks: IQM " in table and "| MAPPO " in table
    assert make_plots.main(["--results", str(tmp_path / "empty")]) == 1


def test_the_analysis_reads_batched_and_solo_records_alike(tmp_path):
    from analysis.loading import load_records

    specs = member_specs(0, 1, 2, steps=256)
    execute_group(specs[:2], tmp_path)
    execute(specs[2], tmp_path)
    frame, report = load_records(tmp_path)
    assert report.loaded == 3
    assert sorted(frame[frame["metric"] == "absolute/win_rate"]["seed"].unique()) == [0, 1, 2]


def test_make_plots_refuses_an_unwritable_output_folder_without_a_traceback(tmp_path, capsys):
    from analysis import make_plots
    from tests.helpers import write_record

    write_record(tmp_path, "smoke", "smac/3m", "mappo", 0, evals={0: 0.0, 256: 0.5}, absolute=0.5)
    (tmp_path / "figures").write_text("not a folder")
    assert make_plots.main(["--results", str(tmp_path), "--reps", "10"]) == 2
    assert f"error: cannot write to {tmp_path / 'figures'}" in capsys.readouterr().err


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
