"""Each run's record (suites/launching/experiment.py, records.py, metrics.py): a complete Sacred record, TensorBoard
and W&B streams, attempts left running by a killed process, and a full disk."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from suites.launching.experiment import execute
from suites.launching.records import DONE, FAILED, run_status
from suites.planning.plan import check_wandb
from suites.planning.spec import RunSpec
from tests.helpers import TINY, InterruptedAt, learning, run_metrics


def test_run_produces_a_complete_sacred_record(tmp_path):
    spec = RunSpec(seed=3, **TINY)
    execute(spec, tmp_path)
    run_dir = tmp_path / "runs" / "test/smac_3m/mappo/seed_3"
    assert run_status(run_dir) == DONE
    config = json.loads((run_dir / "1" / "config.json").read_text())
    for key in ("algorithm_config", "task", "backend", "seed", "budget_steps", "device", "versions", "git", "preset"):
        assert key in config
    assert config["backend"] == "sim" and config["algorithm_config"]["clip_param"] == 0.2
    metrics = run_metrics(tmp_path, spec)
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
    metrics = run_metrics(tmp_path, spec)
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
    assert run_metrics(tmp_path, spec)["eval/win_rate"]["steps"] == [0, 256, 512, 768]  # the latest attempt's


def test_a_full_disk_fails_the_run_with_a_plain_message_and_the_run_resumes(tmp_path, monkeypatch):
    """torch reports a full disk as "unexpected pos"; the run must say what happened, keep its last good
    checkpoint (the partial one never replaces it) and resume to the uninterrupted history."""

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
    assert learning(run_metrics(tmp_path / "cut", spec)) == learning(run_metrics(tmp_path / "whole", spec))
