"""Stopping on a signal (``suites/launching/stopping.py``): a checkpoint at the next safe point, the record INTERRUPTED at
the step reached, and a rerun that resumes it to the uninterrupted run's series, bit for bit."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import envs
from suites.launching.experiment import execute
from suites.launching.records import DONE, attempts, run_status
from suites.planning.spec import RunSpec
from tests.helpers import ROOT, learning, run_metrics

RUN = "smoke/smac_3m/mappo/seed_0"


def _argv(results: Path) -> list[str]:
    return [sys.executable, "-m", "suites.run", "smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "1",
            "--steps", "3840", "--eval-episodes", "2", "--backend", "sim", "--results", str(results)]


def test_a_signal_checkpoints_the_run_where_it_is_and_a_rerun_resumes_it_exactly(tmp_path):
    name = "SIGTERM"
    whole = subprocess.run(_argv(tmp_path / "whole"), cwd=ROOT, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen(_argv(tmp_path / "cut"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:  # past the second evaluation, so the signal lands between two checkpoints
        if f"{RUN} step 1280:" in line:
            proc.send_signal(getattr(signal, name))
            break
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert f"interrupted ({name}: stopped at step(s)" in err and "checkpointed)" in err

    run_dir = tmp_path / "cut" / "runs" / RUN
    (number, record), = attempts(run_dir)
    assert record["status"] == "INTERRUPTED"
    info = json.loads((run_dir / str(number) / "info.json").read_text())
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert info["interrupted_by"] == name and info["interrupted_at_step"] == checkpoint["steps"]
    assert 1280 < checkpoint["steps"] < 2560 and checkpoint["evaluated_at"] == 1280  # not an evaluation's checkpoint

    again = subprocess.run(_argv(tmp_path / "cut"), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert run_status(run_dir) == DONE

    def metrics(results):
        last = max(n for n, _ in attempts(results / "runs" / RUN))
        return learning(json.loads((results / "runs" / RUN / str(last) / "metrics.json").read_text()))

    assert metrics(tmp_path / "cut") == metrics(tmp_path / "whole")


def test_a_checkpoint_of_another_format_is_refused_with_what_to_do(tmp_path):
    from suites.launching.experiment import execute
    from suites.planning.spec import RunSpec
    from suites.training.loop import CHECKPOINT_FORMAT
    from tests.helpers import TINY, InterruptedAt

    spec = RunSpec(seed=0, **TINY)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, tmp_path, progress=InterruptedAt(300))
    path = tmp_path / "runs" / spec.run_id / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=False)
    torch.save({**checkpoint, "format": CHECKPOINT_FORMAT - 1}, path)
    with pytest.raises(RuntimeError, match=f"has format {CHECKPOINT_FORMAT - 1}, this version reads format "
                                           f"{CHECKPOINT_FORMAT}; delete it to restart this run from scratch"):
        execute(spec, tmp_path)


def test_the_first_stop_signal_is_noted_a_second_ctrl_c_stops_at_once_and_others_change_nothing():
    from suites.launching.stopping import StopSignals

    stop = StopSignals()
    with stop.active():
        os.kill(os.getpid(), signal.SIGUSR1)  # SLURM's warning before the time limit
        assert stop.requested == "SIGUSR1"
        os.kill(os.getpid(), signal.SIGTERM)  # a launcher passing the stop on
        assert stop.requested == "SIGUSR1"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # put back


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="submitit not installed (pip install -e '.[submitit]')")
def test_a_submitit_job_that_reaches_its_time_limit_checkpoints_is_requeued_and_completes(tmp_path):
    """submitit's local executor, 1 minute per job with its warning signal 50 s early: every 10 s (start-up
    included) the run checkpoints at the step reached and the job is requeued, until the run completes, with the
    series of a run never interrupted. The budget
    must outlast one slice on this machine, whatever its speed: 40,000 MAPPO `tiny` steps, or three times as many
    where a machine trains 40,000 within one slice (not more: submitit's local controller starts a job at most 6
    times, ``Controller.run(max_retry=6)``, whatever ``local_max_num_timeout`` says)."""
    for steps in (40_000, 120_000):
        driver = (
            "import json, sys; from pathlib import Path; import envs; from suites.launching.launchers import run_submitit; "
            "from suites.planning.spec import RunSpec; "
            f"spec = RunSpec(suite='req', task='smac/3m', algorithm='mappo', preset='tiny', seed=0, steps={steps}, "
            f"eval_interval={steps}, eval_episodes=1, backend='sim', env_spec=envs.env_spec('smac/3m', 'sim')); "
            "out = run_submitit([(spec,)], Path(sys.argv[1]), 'local', {'timeout_min': 1, 'signal_delay_s': 50}, "
            "requeues=20); print(json.dumps([o.status for o in out]))")
        results = tmp_path / str(steps)
        done = subprocess.run([sys.executable, "-c", driver, str(results)], cwd=ROOT, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0 and done.stdout.strip().endswith('["COMPLETED"]'), done.stdout + done.stderr
        run_dir = results / "runs" / "req/smac_3m/mappo/seed_0"
        statuses = [record["status"] for _, record in attempts(run_dir)]
        if len(statuses) > 1:
            break
    assert len(statuses) >= 2 and statuses[-1] == "COMPLETED" and set(statuses[:-1]) == {"INTERRUPTED"}, statuses
    first = json.loads((run_dir / "1" / "info.json").read_text())
    assert first["interrupted_by"] == "SIGUSR2" and 0 < first["interrupted_at_step"] < steps
    whole = RunSpec(suite="req", task="smac/3m", algorithm="mappo", preset="tiny", seed=0, steps=steps, eval_interval=steps,
                    eval_episodes=1, backend="sim", env_spec=envs.env_spec("smac/3m", "sim"))
    execute(whole, tmp_path / "whole")
    assert learning(run_metrics(results, whole)) == learning(run_metrics(tmp_path / "whole", whole))
