"""Runs end to end through Sacred: records, determinism, resume, failures and bad input."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from algorithms import Divergence
from suites import run as cli
from suites.launching.experiment import execute
from suites.launching.records import DONE, FAILED, PARTIAL, PENDING, run_status
from suites.planning.plan import check_wandb, plan
from suites.planning.spec import RunSpec
from suites.training.evaluation import EpisodeStats, evaluation_rank

TINY = dict(suite="test", task="smac/3m", algorithm="mappo", preset="tiny", steps=768, eval_interval=256,
            eval_episodes=4, backend="sim")


class InterruptedAt:
    """A progress bar whose run the user interrupts (Ctrl-C) once ``steps`` environment steps are done."""

    def __init__(self, steps: int):
        self.n, self.steps = 0, steps

    def update(self, steps: int) -> None:
        self.n += steps
        if self.n >= self.steps:
            raise KeyboardInterrupt

    def set_postfix_str(self, text: str) -> None:
        pass


def _metrics(results: Path, spec: RunSpec, attempt: int | None = None) -> dict:
    run_dir = results / "runs" / spec.run_id
    attempt = attempt or max(int(p.name) for p in run_dir.iterdir() if p.name.isdigit())
    return json.loads((run_dir / str(attempt) / "metrics.json").read_text())


def _learning(metrics: dict) -> dict:
    return {k: (v["steps"], v["values"]) for k, v in metrics.items() if not k.startswith("time/")}


def test_run_produces_a_complete_sacred_record(tmp_path):
    spec = RunSpec(seed=3, **TINY)
    execute(spec, tmp_path)
    run_dir = tmp_path / "runs" / "test/smac_3m/mappo/seed_3"
    assert run_status(run_dir) == DONE
    config = json.loads((run_dir / "1" / "config.json").read_text())
    for key in ("algorithm_config", "task", "backend", "seed", "budget_steps", "device", "versions", "git", "preset"):
        assert key in config
    assert config["backend"] == "sim" and config["algorithm_config"]["clip_param"] == 0.2
    metrics = _metrics(tmp_path, spec)
    assert metrics["eval/win_rate"]["steps"] == [0, 256, 512, 768]
    assert {"train/policy_loss", "train/value_loss", "absolute/win_rate", "eval/return_mean"} <= set(metrics)
    # training episodes are reported at every evaluation after the first (none has finished at step 0)
    assert metrics["collect/win_rate"]["steps"] == [256, 512, 768]
    assert all(0 < v <= 60 for v in metrics["collect/episode_length"]["values"])
    assert json.loads((run_dir / "1" / "run.json").read_text())["status"] == "COMPLETED"


def test_tensorboard_holds_every_metric_at_the_recorded_steps_and_one_file_after_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = RunSpec(seed=2, **TINY)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, tmp_path, progress=InterruptedAt(300))
    execute(spec, tmp_path)
    run_dir = tmp_path / "runs" / spec.run_id
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(run_dir))
    events.Reload()
    metrics = _metrics(tmp_path, spec)
    assert set(events.Tags()["scalars"]) == set(metrics)
    for name, logged in metrics.items():
        scalars = events.Scalars(name)
        assert [s.step for s in scalars] == logged["steps"]
        assert [s.value for s in scalars] == pytest.approx(logged["values"], rel=1e-6)


def test_wandb_mirrors_a_run_offline_when_there_are_no_credentials(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb", reason="Weights & Biases not installed (pip install -e '.[wandb]')")
    for name in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.setenv("WANDB_SILENT", "true")
    spec = RunSpec(seed=2, wandb="test-project", **TINY)
    execute(spec, tmp_path)
    run_dir = tmp_path / "runs" / spec.run_id
    assert f"logging offline under {run_dir / 'wandb'}" in capsys.readouterr().out
    logs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1 and logs[0].stat().st_size > 0


def test_wandb_missing_says_how_to_install(monkeypatch):
    import importlib.util

    from envs import UsageError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UsageError, match=r"pip install -e '\.\[wandb\]'"):
        check_wandb("my-project")


def test_the_last_step_is_evaluated_when_the_budget_is_not_a_multiple_of_the_interval(tmp_path):
    spec = RunSpec(seed=0, **dict(TINY, steps=640))
    execute(spec, tmp_path)
    assert _metrics(tmp_path, spec)["eval/win_rate"]["steps"] == [0, 256, 512, 640]


def test_training_episodes_are_summed_across_environments_and_reports():
    """Two environments: episodes of (return 3, length 2, won) and (return 1, length 1, lost) finish in the
    first report's window; the second environment's unfinished episode carries into the next one."""
    import torch

    stats = EpisodeStats(2, "cpu", (("won", "win_rate"),))

    def step(reward, done, won):
        return SimpleNamespace(reward=torch.tensor(reward), done=torch.tensor(done), info={"won": torch.tensor(won)})

    stats.add(step([1.0, 1.0], [False, True], [False, False]))
    stats.add(step([2.0, 5.0], [True, False], [True, False]))
    assert stats.report() == {"episodes": 2.0, "return_mean": 2.0, "episode_length": 1.5, "win_rate": 0.5}
    assert stats.report() == {}
    restored = EpisodeStats(2, "cpu", (("won", "win_rate"),))
    restored.load_state_dict(stats.state_dict())
    restored.add(step([0.5, 1.0], [False, True], [False, True]))
    assert restored.report() == {"episodes": 1.0, "return_mean": 6.0, "episode_length": 2.0, "win_rate": 1.0}
    # evaluation counts only each environment's first episode: an ending outside ``counted`` is left out
    restored.add(step([1.0, 2.0], [True, True], [True, True]), counted=torch.tensor([True, False]))
    assert restored.report() == {"episodes": 1.0, "return_mean": 1.5, "episode_length": 2.0, "win_rate": 1.0}


def test_the_absolute_metric_keeps_the_best_policy_by_metric_then_return():
    never_won = [{"win_rate": 0.0, "return_mean": r} for r in (2.2, 6.6, 5.9)]
    assert max(never_won, key=lambda r: evaluation_rank(r, "win_rate"))["return_mean"] == 6.6
    assert evaluation_rank({"win_rate": 0.1, "return_mean": 1.0}, "win_rate") > evaluation_rank(never_won[1], "win_rate")
    assert evaluation_rank({"return_mean": 3.0}, "score") == (3.0, 3.0)  # a task without that metric ranks by return


def test_same_seed_gives_identical_metrics(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    spec = RunSpec(seed=1, **TINY)
    execute(spec, a)
    execute(spec, b)
    assert _learning(_metrics(a, spec)) == _learning(_metrics(b, spec))


def test_interrupted_run_resumes_to_the_same_history(tmp_path):
    spec = RunSpec(seed=2, **TINY)
    execute(spec, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        execute(spec, tmp_path / "cut", progress=InterruptedAt(300))
    run_dir = tmp_path / "cut" / "runs" / spec.run_id
    assert run_status(run_dir) == PARTIAL
    execute(spec, tmp_path / "cut")
    assert run_status(run_dir) == DONE
    assert _learning(_metrics(tmp_path / "cut", spec)) == _learning(_metrics(tmp_path / "whole", spec))


def test_compile_env_reaches_the_training_simulator_and_the_record(tmp_path, monkeypatch):
    """--compile-env -> RunSpec -> envs.make -> SmacSimulator(compile=True) -> config.json. torch.compile
    is replaced by a recorder here (the compiled step itself is tested in test_smac_mechanics)."""
    import envs.smac.simulator as simulator

    compiled = []
    monkeypatch.setattr(simulator.torch, "compile", lambda fn, **kw: compiled.append(fn.__name__) or fn)
    (spec,) = plan(*cli.read_command(
        ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "1", "--budget", "tiny",
         "--steps", "256", "--compile-env", "--results", str(tmp_path)]))
    assert spec.compile_env
    execute(spec, tmp_path)
    assert compiled == ["_advance", "_restart"]  # the training environment; evaluation stays eager
    config = json.loads((tmp_path / "runs" / spec.run_id / "1" / "config.json").read_text())
    assert config["compile_env"] is True


@pytest.mark.parametrize("algorithm", ["mamba", "mabl", "mabl_single_level"])
def test_world_models_run_through_the_suite_runner(tmp_path, algorithm):
    spec = RunSpec(seed=0, **{**TINY, "algorithm": algorithm, "steps": 640, "eval_interval": 320})
    execute(spec, tmp_path)
    assert run_status(tmp_path / "runs" / spec.run_id) == DONE
    metrics = _metrics(tmp_path, spec)
    assert metrics["eval/win_rate"]["steps"] == [0, 320, 640]
    assert {"train/model_loss", "train/kl_agent", "train/actor_loss", "train/value_loss", "absolute/win_rate"} <= set(metrics)
    assert ("train/kl_global" in metrics) == (algorithm == "mabl")
    assert all(v == v for v in metrics["train/model_loss"]["values"])


@pytest.mark.parametrize("algorithm", ["mappo", "mabl", "mabl_single_level", "mamba"])
def test_flatland_runs_through_the_suite_runner(tmp_path, algorithm):
    # A world model learns when an episode ends once its replay holds 200 steps (tiny preset): with one
    # environment, some episode ends within flatland/2_agents' time limit (488 steps) after step 200.
    world_model = algorithm != "mappo"
    steps = 700 if world_model else 800
    spec = RunSpec(seed=0, overrides=(("num_envs", 1),) if world_model else (),
                   **{**TINY, "task": "flatland/2_agents", "algorithm": algorithm, "steps": steps,
                      "eval_interval": steps, "eval_episodes": 1, "backend": "auto"})
    execute(spec, tmp_path)
    run_dir = tmp_path / "runs" / spec.run_id
    assert run_status(run_dir) == DONE
    assert json.loads((run_dir / "1" / "config.json").read_text())["backend"] == "flatland"
    metrics = _metrics(tmp_path, spec)
    assert metrics["eval/completion"]["steps"] == [0, steps]
    assert {"eval/score", "eval/deadlocked", "absolute/completion", "eval/return_mean"} <= set(metrics)
    assert "eval/win_rate" not in metrics
    assert all(0 <= v <= 1 for v in metrics["eval/completion"]["values"] + metrics["absolute/completion"]["values"])
    learned = "train/policy_loss" if algorithm == "mappo" else "train/model_loss"  # the learner ran on Flatland data
    assert all(v == v for v in metrics[learned]["values"])


def test_interrupted_world_model_run_resumes_to_the_same_history(tmp_path):
    spec = RunSpec(seed=4, **{**TINY, "algorithm": "mabl", "steps": 640, "eval_interval": 160})
    execute(spec, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        execute(spec, tmp_path / "cut", progress=InterruptedAt(400))
    execute(spec, tmp_path / "cut")
    whole, cut = _metrics(tmp_path / "whole", spec), _metrics(tmp_path / "cut", spec)
    assert "train/model_loss" in whole and _learning(cut) == _learning(whole)


def test_an_attempt_left_running_by_a_killed_process_is_marked_interrupted_on_resume(tmp_path):
    spec = RunSpec(seed=2, **TINY)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, tmp_path, progress=InterruptedAt(300))
    run_dir = tmp_path / "runs" / spec.run_id
    killed = json.loads((run_dir / "1" / "run.json").read_text())
    (run_dir / "1" / "run.json").write_text(json.dumps(dict(killed, status="RUNNING")))  # as SIGKILL leaves it
    execute(spec, tmp_path)
    first, second = (json.loads((run_dir / n / "run.json").read_text()) for n in ("1", "2"))
    assert (first["status"], first["superseded_by"], second["status"]) == ("INTERRUPTED", "attempt 2", "COMPLETED")
    assert _metrics(tmp_path, spec)["eval/win_rate"]["steps"] == [0, 256, 512, 768]  # the latest attempt's


def test_a_full_disk_fails_the_run_with_a_plain_message_and_the_run_resumes(tmp_path, monkeypatch):
    """torch reports a full disk as "unexpected pos"; the run must say what happened, keep its last good
    checkpoint (the partial one never replaces it) and resume to the uninterrupted history."""
    import torch

    from suites.errors import DiskFull
    from suites.training import checkpoint

    spec = RunSpec(seed=2, **TINY)
    execute(spec, tmp_path / "whole")
    save, checkpoints = torch.save, []

    def fills_the_disk_at_the_third_checkpoint(obj, path, *args, **kwargs):
        if Path(path).name == "checkpoint.tmp":
            checkpoints.append(path)
            if len(checkpoints) == 3:
                Path(path).write_bytes(b"half a checkpoint")
                raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 185536 vs 185428")
        return save(obj, path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", fills_the_disk_at_the_third_checkpoint)
        patch.setattr(checkpoint.shutil, "disk_usage", lambda path: SimpleNamespace(total=1 << 30, used=1 << 30, free=0))
        with pytest.raises(DiskFull) as failure:
            execute(spec, tmp_path / "cut")
    run_dir = tmp_path / "cut" / "runs" / spec.run_id
    assert str(failure.value) == (f"no space left on the device holding {run_dir}; "
                                  "free space and rerun to resume from step 256")
    assert run_status(run_dir) == FAILED and not (run_dir / "checkpoint.tmp").exists()
    execute(spec, tmp_path / "cut")
    assert run_status(run_dir) == DONE
    assert _learning(_metrics(tmp_path / "cut", spec)) == _learning(_metrics(tmp_path / "whole", spec))


def test_divergence_fails_the_run_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    from algorithms.mappo.agent import MAPPO

    real_update = MAPPO.update

    def poisoned(self):  # an infinite reward in the rollout makes the next losses NaN
        if len(self.rollout) == self.config.episode_length:
            self.rollout[-1]["reward"] = torch.full_like(self.rollout[-1]["reward"], float("inf"))
        return real_update(self)

    monkeypatch.setattr(MAPPO, "update", poisoned)
    spec = RunSpec(seed=0, **TINY)
    with pytest.raises(Divergence, match="train/.*environment steps; last good checkpoint"):
        execute(spec, tmp_path)
    run_dir = tmp_path / "runs" / spec.run_id
    assert run_status(run_dir) == FAILED and (run_dir / "checkpoint.pt").exists()


def test_suite_continues_after_a_failure_and_exits_1(tmp_path, monkeypatch, capsys):
    import suites.launching.experiment

    real = suites.launching.experiment.execute_group

    def flaky(specs, results, progress=None):
        if specs[0].seed == 0:
            raise Divergence("loss 'train/value_loss' is not finite")
        return real(specs, results, progress)

    monkeypatch.setattr(suites.launching.experiment, "execute_group", flaky)
    code = cli.main(["smoke", "--seeds", "2", "--tasks", "smac/3m", "--algorithms", "mappo", "--steps", "512",
                     "--eval-episodes", "2",
                     "--results", str(tmp_path), "--backend", "sim"])
    out = capsys.readouterr()
    assert code == 1 and "1 run(s) failed: smoke/smac_3m/mappo/seed_0" in out.err
    assert run_status(tmp_path / "runs" / "smoke/smac_3m/mappo/seed_1") == DONE
    assert "value_loss" in out.out
    # dry run lists the state of each run; rerunning skips the done one
    assert cli.main(["smoke", "--seeds", "2", "--tasks", "smac/3m", "--algorithms", "mappo", "--results", str(tmp_path),
                     "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert f"{PENDING:8s} smoke/smac_3m/mappo/seed_0" in listing and f"{DONE:8s} smoke/smac_3m/mappo/seed_1" in listing


@pytest.mark.parametrize("argv, message", [
    (["nosuch"], "unknown suite 'nosuch'; valid suites: ablation, cpu_learning, flatland, regression, smac_paper, "
                 "smac_superhard, smoke"),
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
    import torch

    if "cuda:7" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert cli.main(argv + ["--results", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_set_overrides_reach_the_record_and_guard_it(tmp_path, capsys):
    argv = ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--steps", "256", "--eval-episodes", "2",
            "--backend", "sim", "--results", str(tmp_path)]
    assert cli.main(argv + ["--set", "lr=1e-3", "--set", "mappo.ppo_epoch=1", "--set", "recurrent=no"]) == 0
    config = json.loads((tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0/1/config.json").read_text())
    assert {k: config["algorithm_config"][k] for k in ("lr", "ppo_epoch", "recurrent")} == dict(
        lr=1e-3, ppo_epoch=1, recurrent=False)
    assert config["algorithm_config"]["critic_lr"] == 5e-4  # untouched fields keep the preset's value
    capsys.readouterr()
    # the same settings find the run done; other settings are refused instead of mixing two configs
    assert cli.main(argv + ["--set", "lr=1e-3", "--set", "mappo.ppo_epoch=1", "--set", "recurrent=no"]) == 0
    assert "done (skipped)" in capsys.readouterr().out
    assert cli.main(argv + ["--set", "lr=2e-3", "--set", "mappo.ppo_epoch=1", "--set", "recurrent=no"]) == 2
    err = capsys.readouterr().err
    assert "smac_3m/mappo/seed_0 was recorded with other settings (lr 0.001 recorded, 0.002 now)" in err
    assert "name these settings with --variant NAME" in err and "use another --results directory" in err
    assert cli.main(argv + ["--preset", "paper", "--dry-run"]) == 2
    assert "preset 'tiny' recorded, 'paper' now" in capsys.readouterr().err


def test_a_named_variant_is_recorded_beside_its_algorithm_and_analysed_as_its_own(tmp_path, capsys):
    from analysis import make_plots

    argv = ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--steps", "256", "--eval-episodes", "2",
            "--backend", "sim", "--results", str(tmp_path)]
    assert cli.main(argv) == 0
    base = (tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0/1/config.json").read_bytes()
    assert cli.main(argv + ["--set", "lr=2e-3", "--variant", "fast-lr"]) == 0
    config = json.loads((tmp_path / "runs" / "smoke/smac_3m/mappo+fast-lr/seed_0/1/config.json").read_text())
    assert (config["algorithm"], config["variant"], config["overrides"]) == ("mappo", "fast-lr", {"lr": 2e-3})
    assert config["algorithm_config"]["lr"] == 2e-3
    assert (tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0/1/config.json").read_bytes() == base  # untouched
    capsys.readouterr()
    assert cli.main(argv + ["--set", "lr=2e-3", "--variant", "fast-lr", "--dry-run"]) == 0
    assert "done     smoke/smac_3m/mappo+fast-lr/seed_0" in capsys.readouterr().out
    assert make_plots.main(["--results", str(tmp_path), "--reps", "50"]) == 0
    table = (tmp_path / "tables" / "smoke_smac_sim_absolute_win_rate.csv").read_text()
    assert ",mappo,IQM," in table and ",mappo+fast-lr,IQM," in table


@pytest.mark.parametrize("argv, message", [
    (["smoke", "--seeds", "0"], "--seeds must be >= 1"),
    (["smoke", "--steps", "-5"], "--steps must be >= 1"),
])
def test_bad_numbers_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


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


def test_each_sweep_point_is_recorded_as_its_own_variant_and_analysed_as_an_algorithm(tmp_path, capsys):
    from analysis.loading import load_records

    argv = ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--steps", "256", "--eval-episodes", "2", "--seeds", "1",
            "--backend", "sim", "--results", str(tmp_path), "--set", "lr=1e-3,2e-3"]
    assert cli.main(argv + ["--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "pending  smoke/smac_3m/mappo+lr-1e-3/seed_0" in listed and "pending  smoke/smac_3m/mappo+lr-2e-3/seed_0" in listed
    assert cli.main(argv) == 0
    for value, lr in (("1e-3", 1e-3), ("2e-3", 2e-3)):
        config = json.loads((tmp_path / f"runs/smoke/smac_3m/mappo+lr-{value}/seed_0/1/config.json").read_text())
        assert (config["variant"], config["overrides"], config["algorithm_config"]["lr"]) == (f"lr-{value}", {"lr": lr}, lr)
    frame, _ = load_records(tmp_path)
    assert set(frame.algorithm) == {"mappo+lr-1e-3", "mappo+lr-2e-3"}
