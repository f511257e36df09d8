"""One writer per run (``suites/launching/lease.py``): a run another process is training is left alone, a stale lease is
taken over, and two launchers on one results folder train every run exactly once."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from suites.launching import lease
from suites.launching.lease import LEASE, STALE_SECONDS, Heartbeat, RunLease, live_holder
from suites.launching.records import DONE, attempts, run_status
from tests.helpers import ROOT


def _plant(run_dir: Path, host: str, pid: int, age: float = 0.0, job: str = "", attempt: float = 0.0) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LEASE
    path.write_text(json.dumps({"host": host, "pid": pid, "since": time.time() - age, "token": "theirs", "job": job,
                                "attempt": attempt}))
    os.utime(path, (time.time() - age, time.time() - age))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_lease_is_respected_and_names_its_holder(tmp_path):
    _plant(tmp_path, "node7", 4242)
    holder = RunLease(tmp_path).acquire()
    assert holder is not None and (holder.host, holder.pid) == ("node7", 4242)
    assert "process 4242 on node7" in str(holder)
    assert json.loads((tmp_path / LEASE).read_text())["token"] == "theirs"  # untouched


@pytest.mark.parametrize("case", ["dead process on this host", "no heartbeat from another host"])
def test_a_stale_lease_is_taken_over(tmp_path, case):
    if case == "dead process on this host":
        _plant(tmp_path, socket.gethostname(), _dead_pid())  # a kill -9: taken over at once
    else:
        _plant(tmp_path, "node7", 4242, age=STALE_SECONDS + 5)  # a dead node: after the timeout
    mine = RunLease(tmp_path)
    assert mine.acquire() is None
    assert live_holder(tmp_path).token == mine.holder.token and mine.held()
    mine.release()
    assert not (tmp_path / LEASE).exists() and live_holder(tmp_path) is None


@pytest.mark.parametrize("planted, environment, taken", [
    (("slurm:77", 0), {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "1"}, True),  # requeued after a hard preemption
    (("slurm:77", 1), {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "1"}, False),  # a second process of the job
    (("slurm:76", 0), {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "1"}, False),  # another job
    (("ray:abc", time.time() - 60), {lease.RAY_TASK_VARIABLE: "abc"}, True),  # a Ray task retried
    (("ray:abc", time.time() - 60), {lease.RAY_TASK_VARIABLE: "abd"}, False),
])
def test_a_later_attempt_of_the_holders_own_job_takes_its_lease_over_at_once(tmp_path, monkeypatch, planted,
                                                                            environment, taken):
    """The earlier attempt's heartbeat is fresh (it died moments ago, on another node), yet a later attempt of
    the same cluster job resumes its runs at once instead of waiting 10 minutes for the lease to go stale."""
    for name in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", lease.RAY_TASK_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    _plant(tmp_path, "node7", 4242, job=planted[0], attempt=planted[1])
    holder = RunLease(tmp_path).acquire()
    assert (holder is None) == taken
    assert (live_holder(tmp_path).host != "node7") == taken


def test_only_the_holder_releases_and_a_second_process_here_is_refused(tmp_path):
    first, second = RunLease(tmp_path), RunLease(tmp_path)
    assert first.acquire() is None
    assert second.acquire().token == first.holder.token  # same host, live pid: held
    second.release()
    assert (tmp_path / LEASE).exists()
    first.release()
    assert not (tmp_path / LEASE).exists()


def test_a_holder_whose_lease_was_taken_over_stops_without_writing(tmp_path, monkeypatch):
    """The heartbeat finds the lease taken over; the training loop stops at its next step, as interrupted, and
    writes no checkpoint beside the new holder."""
    from suites.launching.experiment import execute
    from suites.planning.spec import RunSpec
    from tests.helpers import TINY

    spec = RunSpec(seed=0, **{**TINY, "steps": 20_000, "eval_interval": 20_000})
    run_dir = tmp_path / "runs" / spec.run_id
    real_init = lease.Heartbeat.__init__

    def quick(self, leases, on_lost, every=0.2):
        real_init(self, leases, on_lost, every)
    monkeypatch.setattr(lease.Heartbeat, "__init__", quick)

    def take_over():  # once training is under way (step 0's checkpoint written), another node takes the run over
        while not (run_dir / "checkpoint.pt").exists():
            time.sleep(0.05)
        _plant(run_dir, "node7", 4242)
    threading.Thread(target=take_over, daemon=True).start()
    with pytest.raises(KeyboardInterrupt, match="another process took over this run"):
        execute(spec, tmp_path)
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert checkpoint["steps"] == 0  # the step-0 evaluation's; nothing written when it stopped
    assert json.loads((run_dir / LEASE).read_text())["token"] == "theirs"  # the new holder's lease left alone
    (number, record), = attempts(run_dir)
    assert record["status"] == "INTERRUPTED"


def test_the_heartbeat_calls_back_once_when_the_lease_is_gone(tmp_path):
    mine, calls = RunLease(tmp_path), []
    assert mine.acquire() is None
    with Heartbeat([mine], on_lost=lambda: calls.append(1), every=0.05) as heartbeat:
        _plant(tmp_path, "node7", 4242)
        time.sleep(0.5)
    assert calls == [1] and heartbeat.lost == [mine]


def test_the_heartbeat_keeps_a_lease_fresh(tmp_path, monkeypatch):
    mine = RunLease(tmp_path)
    assert mine.acquire() is None
    os.utime(tmp_path / LEASE, (time.time() - 100, time.time() - 100))
    with Heartbeat([mine], on_lost=lambda: None, every=0.05):
        time.sleep(0.5)
    assert time.time() - (tmp_path / LEASE).stat().st_mtime < 5
    mine.release()


def test_two_launchers_on_one_results_folder_train_every_run_once(tmp_path):
    """Started together, as a command typed twice: every run has one attempt, every run is done, and each
    launcher, having waited for the runs the other trained, reports every run completed."""
    argv = [sys.executable, "-m", "suites.run", "smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "3",
            "--steps", "256", "--eval-episodes", "2", "--backend", "sim", "--results", str(tmp_path)]
    launchers = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [proc.communicate(timeout=600) for proc in launchers]
    assert [proc.returncode for proc in launchers] == [0, 0], outputs
    for seed in range(3):
        run_dir = tmp_path / "runs" / f"smoke/smac_3m/mappo/seed_{seed}"
        assert run_status(run_dir) == DONE
        assert [number for number, _ in attempts(run_dir)] == [1], f"seed {seed} trained more than once"
        assert not (run_dir / LEASE).exists()
    for out, _ in outputs:  # each launcher reports every run: trained, waited for, or found done
        for seed in range(3):
            summary = out[out.rindex("absolute metric / reason"):]
            line = next(x for x in summary.splitlines() if x.startswith(f"smoke/smac_3m/mappo/seed_{seed} "))
            assert line.split()[1] in ("COMPLETED", "done"), line


def test_the_status_view_reads_every_run_from_the_results_folder(tmp_path, capsys):
    from suites import run as cli
    from suites.launching.experiment import execute
    from suites.planning.plan import plan
    from tests.helpers import InterruptedAt

    command = ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--seeds", "5", "--steps", "768",
               "--eval-episodes", "2", "--backend", "sim", "--results", str(tmp_path)]
    specs = plan(*cli.read_command(command))
    dirs = [tmp_path / "runs" / spec.run_id for spec in specs]
    execute(specs[0], tmp_path)
    with pytest.raises(KeyboardInterrupt):
        execute(specs[1], tmp_path, progress=InterruptedAt(300))
    dirs[2].mkdir(parents=True)
    (dirs[2] / "checkpoint.pt").write_text("not a checkpoint")
    with pytest.raises(RuntimeError):
        execute(specs[2], tmp_path)
    _plant(dirs[3], "node7", 4242)  # trained right now by another node, which reports its progress
    (dirs[3] / "progress.json").write_text(json.dumps({"steps": 300, "total": 768, "steps_per_second": 10.0}))
    dirs[4].mkdir(parents=True)  # given to a SLURM job still in the queue
    (dirs[4] / "submitted.json").write_text(json.dumps({"job_id": "8812_4", "cluster": "slurm", "host": "login1",
                                                        "folder": str(tmp_path / "submitit")}))

    assert cli.main([*command, "--status"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in out if line.startswith("smoke/")}
    assert rows[specs[0].run_id][1:3] == ["done", "768/768"]
    assert rows[specs[1].run_id][1] == "interrupted"
    assert rows[specs[2].run_id][1] == "failed"
    running = " ".join(rows[specs[3].run_id])
    assert "running 300/768 10 steps/s 0 min 46 s by process 4242 on node7" in running
    assert rows[specs[4].run_id][1:3] == ["pending", "0/768"]
    assert " ".join(rows[specs[4].run_id]).endswith("given to submitit job 8812_4 (slurm)")
    assert out[-1].startswith("1 done, 1 interrupted, 1 failed, 1 running, 1 pending")
