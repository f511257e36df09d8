"""Where runs execute (suites/launching/launchers.py): skip/resume decisions from record states, the
sequential, parallel, Ray and submitit launchers, progress lines and ETAs, and GPU placement."""
import dataclasses
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suites import run as cli
from suites.launching.launchers import Outcome
from suites.launching.records import DONE, FAILED, PARTIAL, PENDING, attempts, run_status
from tests.helpers import ROOT, SMALL, expand

FAST = ["--tasks", "smac/3m", "--algorithms", "mappo", "--steps", "256", "--eval-episodes", "2", "--backend", "sim"]


def _record(results: Path, run_id: str, *statuses: str, checkpoint: bool = False) -> None:
    run_dir = results / "runs" / run_id
    for attempt, status in enumerate(statuses, 1):
        (run_dir / str(attempt)).mkdir(parents=True)
        (run_dir / str(attempt) / "run.json").write_text(json.dumps({"status": status}))
    if checkpoint:
        (run_dir / "checkpoint.pt").write_bytes(b"")


def test_record_states_decide_skip_and_resume(tmp_path, capsys, monkeypatch):
    ids = [f"smoke/smac_3m/mappo/seed_{k}" for k in range(5)]
    _record(tmp_path, ids[0], "FAILED", "COMPLETED")                      # done after a retry
    _record(tmp_path, ids[1], "COMPLETED", "FAILED")                      # an earlier completion still counts
    _record(tmp_path, ids[2], "INTERRUPTED", "FAILED", checkpoint=True)   # the last attempt failed
    _record(tmp_path, ids[3], "RUNNING", checkpoint=True)                 # killed mid-run: resumable
    expected = [DONE, DONE, FAILED, PARTIAL, PENDING]
    assert [run_status(tmp_path / "runs" / i) for i in ids] == expected
    argv = ["smoke", "--seeds", "5", "--results", str(tmp_path), *FAST]
    assert cli.main(argv + ["--dry-run"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listing] == [[s, i] for s, i in zip(expected, ids)]
    # a real rerun launches only the three unfinished runs and lists the done ones as skipped
    launched = []

    def launch(runs, args):
        launched.extend(r.run_id for r in runs)
        return [Outcome(r.run_id, "COMPLETED", "") for r in runs]

    monkeypatch.setattr(cli, "launch", launch)
    assert cli.main(argv) == 0
    assert launched == ids[2:]
    assert capsys.readouterr().out.count("done (skipped)") == 2


def _break_checkpoint(results: Path, seed: int) -> None:
    """A garbage checkpoint makes that run fail when it tries to resume, as a real corrupt file would."""
    run_dir = results / "runs" / f"smoke/smac_3m/mappo/seed_{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_text("not a checkpoint")


def test_parallel_launcher_isolates_a_failing_run(tmp_path, capsys):
    _break_checkpoint(tmp_path, 0)
    code = cli.main(["smoke", "--seeds", "3", "--jobs", "2", "--results", str(tmp_path), *FAST])
    out = capsys.readouterr()
    assert code == 1
    assert "1 run(s) failed: smoke/smac_3m/mappo/seed_0" in out.err
    assert "is unreadable" in out.out and "delete it to restart this run from scratch" in out.out
    assert [run_status(tmp_path / "runs" / f"smoke/smac_3m/mappo/seed_{k}") for k in range(3)] == [FAILED, DONE, DONE]
    assert (tmp_path / "runs" / "smoke/smac_3m/mappo/seed_1" / "launcher.log").exists()


def test_the_sequential_launcher_shows_suite_progress_and_each_run_keeps_its_progress_file(tmp_path, capsys):
    assert cli.main(["smoke", "--seeds", "2", "--results", str(tmp_path), *FAST]) == 0
    err = capsys.readouterr().err
    assert "suite: 1/2 runs done" in err and "suite: 2/2 runs done" in err
    for k in range(2):
        run_dir = tmp_path / "runs" / f"smoke/smac_3m/mappo/seed_{k}"
        state = json.loads((run_dir / "progress.json").read_text())
        assert (state["steps"], state["total"]) == (256, 256) and state["steps_per_second"] > 0
        cout = (run_dir / "1" / "cout.txt").read_text()  # each evaluation's line lands in Sacred's record
        assert f"smoke/smac_3m/mappo/seed_{k} step 256: eval/return_mean=" in cout and "eval/win_rate=" in cout


def test_the_summary_line_shows_the_runs_in_flight_and_an_eta_from_each_kinds_own_rate(tmp_path):
    """The parallel, Ray and submitit launchers' line: a fast kind (MAPPO, 1,000 steps/s) and a slow one (MAMBA,
    10 steps/s) in flight, one more of each kind not started: each kind's steps at its own rate, shared between
    the two runs in flight (one rate summed over the runs in flight would make it 1,010 steps/s for all)."""
    from suites.launching import progress

    runs = []
    for name, kind, steps, rate in (("fast", "mappo", 500, 1000.0), ("slow", "mamba", 250, 10.0),
                                    ("fast_next", "mappo", None, None), ("slow_next", "mamba", None, None),
                                    ("done", "mappo", 1000, 1000.0)):
        (tmp_path / name).mkdir()
        if steps is not None:
            (tmp_path / name / "progress.json").write_text(json.dumps({"steps": steps, "total": 1000,
                                                                       "steps_per_second": rate}))
        runs.append((name, tmp_path / name, 1000, kind, (name,)))
    line = progress.summary(progress.SuiteEta(runs), finished={"done"}, failed=1)
    # (500 + 1000) / 1000 + (750 + 1000) / 10 = 176.5 s of work, two runs at a time: 88 s
    assert line == "[1/5 runs done, 1 failed; ETA 1 min 28 s] running: fast 50% (1,000 steps/s); slow 25% (10 steps/s)"


def test_parallel_runs_record_what_a_sequential_run_records(tmp_path):
    argv = ["smoke", "--seeds", "2", *FAST]
    assert cli.main(argv + ["--results", str(tmp_path / "seq")]) == 0
    assert cli.main(argv + ["--results", str(tmp_path / "par"), "--jobs", "2"]) == 0
    for k in range(2):
        seq, par = (json.loads((tmp_path / d / "runs" / f"smoke/smac_3m/mappo/seed_{k}/1/metrics.json").read_text())
                    for d in ("seq", "par"))
        assert seq["eval/return_mean"]["values"] == par["eval/return_mean"]["values"]
        assert seq["train/value_loss"]["values"] == pytest.approx(par["train/value_loss"]["values"], rel=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray not installed (pip install -e '.[ray]')")
def test_ray_launcher_runs_a_suite_on_a_local_instance(tmp_path, capsys):
    _break_checkpoint(tmp_path, 1)
    code = cli.main(["smoke", "--seeds", "2", "--launcher", "ray", "--results", str(tmp_path), *FAST])
    out = capsys.readouterr()
    assert code == 1 and "1 run(s) failed: smoke/smac_3m/mappo/seed_1" in out.err
    assert run_status(tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0") == DONE
    assert "win_rate=" in out.out


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray not installed (pip install -e '.[ray]')")
def test_a_ray_task_whose_worker_dies_is_retried_and_resumes_its_run(tmp_path):
    """The worker training a run is killed (kill -9, as a lost node): Ray retries the task, whose new attempt takes
    over the lease the dead one left (its heartbeat still fresh) and completes the run."""
    import signal
    import threading

    from suites.launching import launchers
    from suites.launching.lease import LEASE
    from suites.planning.spec import RunSpec

    spec = RunSpec(suite="t", task="smac/3m", algorithm="mappo", preset="tiny", seed=0, steps=4096,
                   eval_interval=1024, eval_episodes=2, backend="sim")
    lease_file = tmp_path / "runs" / spec.run_id / LEASE
    killed = []

    def kill_the_first_holder():
        while not lease_file.exists():
            time.sleep(0.05)
        time.sleep(1.0)
        pid = json.loads(lease_file.read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_first_holder, daemon=True)
    killer.start()
    outcomes = launchers.run_ray([(spec,)], tmp_path, None, 0.0, 1.0, retries=1)
    killer.join(timeout=1)
    assert killed and outcomes[0].status == "COMPLETED"
    assert run_status(tmp_path / "runs" / spec.run_id) == DONE


def test_a_plain_progress_line_shows_the_suites_eta_as_it_is_when_printed(capsys):
    """In a log file a group's progress lines carry the suite's ETA as it is refreshed, not as it was when the
    group started (a suite of one group used to say "ETA unknown" to the end)."""
    from suites.launching.progress import PlainBar

    state = {"eta": "ETA unknown"}
    bar = PlainBar(100, "smoke/smac_3m/mamba/seed_0,1", every=0.0, heading=lambda: f"suite: 0/2 runs done, {state['eta']}")
    bar.update(10)
    state["eta"] = "ETA 5 min 00 s"
    bar.update(10)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("suite: 0/2 runs done, ETA unknown; smoke/smac_3m/mamba/seed_0,1: 10/100 steps")
    assert lines[1].startswith("suite: 0/2 runs done, ETA 5 min 00 s; smoke/smac_3m/mamba/seed_0,1: 20/100 steps")


def _listening() -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening on this machine, from /proc/net/tcp and tcp6."""
    import socket

    found = set()
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in open(path).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is little-endian
            found.add((socket.inet_ntop(family, raw), int(port, 16)))
    return found


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray not installed (pip install -e '.[ray]')")
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc/net")
def test_a_local_ray_instance_listens_on_the_loopback_interface_only():
    import ray

    from suites.launching.launchers import local_ray

    before = _listening()
    with local_ray(ray, include_dashboard=False, log_to_driver=False, configure_logging=False, num_cpus=1):
        assert ray.get(ray.remote(lambda: 1 + 1).remote()) == 2  # the instance works
        # its workers run at the caller's priority (Ray's default niceness 15 starves them beside busy processes)
        assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == os.nice(0)
        opened = _listening() - before
    assert opened, "Ray opened no listening socket"
    assert {address for address, _ in opened} <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, opened


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="submitit not installed (pip install -e '.[submitit]')")
def test_submitit_local_executor_runs_a_suite_with_failures_isolated_and_resumable(tmp_path):
    """As a user runs it, in a process of its own (submitit's job watching disturbs pytest's capture of the
    test process's output)."""
    import subprocess
    import sys

    _break_checkpoint(tmp_path, 1)
    argv = [sys.executable, "-m", "suites.run", "smoke", "--seeds", "2", "--launcher", "submitit", "--cluster", "local",
            "--results", str(tmp_path), *FAST]
    first = subprocess.run(argv, capture_output=True, text=True)
    assert first.returncode == 1, first.stderr
    assert "1 run(s) failed: smoke/smac_3m/mappo/seed_1" in first.stderr and "checkpoint" in first.stdout
    assert run_status(tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0") == DONE
    assert run_status(tmp_path / "runs" / "smoke/smac_3m/mappo/seed_1") == FAILED
    (tmp_path / "runs" / "smoke/smac_3m/mappo/seed_1" / "checkpoint.pt").unlink()  # what the message says to do
    second = subprocess.run(argv, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "smoke/smac_3m/mappo/seed_0 done (skipped)" in second.stdout
    assert run_status(tmp_path / "runs" / "smoke/smac_3m/mappo/seed_1") == DONE
    assert any((tmp_path / "submitit").iterdir())  # the jobs' logs
    assert not (tmp_path / "submitit" / "%j").exists()  # named by job id, no literal placeholder folder


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="submitit not installed (pip install -e '.[submitit]')")
def test_rerunning_the_command_while_its_job_is_queued_or_running_attaches_instead_of_submitting_again(tmp_path):
    """Two drivers of one suite command on one results folder, the second started once the first has submitted
    its job: one job only, and both drivers report the run COMPLETED."""
    argv = [sys.executable, "-m", "suites.run", "smoke", "--seeds", "1", "--launcher", "submitit", "--cluster", "local",
            "--results", str(tmp_path), *FAST, "--steps", "4096"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marker = tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0" / "submitted.json"
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.1)
    second = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, err + second.stderr
    assert "attaching to them, not submitting them again" in second.stdout and "submitted 1 job" not in second.stdout
    assert len(list((tmp_path / "submitit").glob("*_submitted.pkl"))) == 1  # one job in all
    for output in (out, second.stdout):
        assert re.search(r"smoke/smac_3m/mappo/seed_0 +COMPLETED", output), output
    assert len(attempts(tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0")) == 1  # trained once


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="submitit not installed (pip install -e '.[submitit]')")
def test_a_submitit_job_cancelled_with_sigterm_is_reported_interrupted_at_its_step_not_failed(tmp_path):
    """``scancel`` sends the job SIGTERM (submitit's local controller passes it on to the job, as SLURM does): the
    run checkpoints and stops, and the driver says so, with the step to resume from."""
    argv = [sys.executable, "-m", "suites.run", "smoke", "--seeds", "1", "--launcher", "submitit", "--cluster", "local",
            "--results", str(tmp_path), *FAST, "--steps", "400000"]
    driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "smoke/smac_3m/mappo/seed_0"
    deadline = time.monotonic() + 120
    while not ((run_dir / "progress.json").exists() and json.loads((run_dir / "progress.json").read_text())["steps"]):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.1)
    os.kill(int(json.loads((run_dir / "submitted.json").read_text())["job_id"]), signal.SIGTERM)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 1, err
    assert re.search(r"seed_0 +UNFINISHED +interrupted by SIGTERM at step [\d,]+; rerun to resume it from there", out), out
    assert "failed" not in err and "rerun to resume them" in err
    assert run_status(run_dir) == PARTIAL and attempts(run_dir)[-1][1]["status"] == "INTERRUPTED"


def test_ray_missing_says_how_to_install(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert cli.main(["smoke", "--launcher", "ray", "--results", str(tmp_path)]) == 2
    assert "Ray is not installed: pip install -e '.[ray]'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--launcher", "slurm"], "unknown launcher 'slurm'; valid launchers: local, ray, submitit"),
    (["--address", "auto"], "--address needs --launcher ray"),
    (["--gpus-per-run", "1"], "--gpus-per-run and --cpus-per-run need --launcher ray or submitit"),
    (["--launcher", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be >= 0"),
    (["--launcher", "submitit"], "--launcher submitit needs --cluster, one of: slurm, local"),
    (["--launcher", "submitit", "--cluster", "pbs"], "--launcher submitit needs --cluster, one of: slurm, local (got 'pbs')"),
    (["--partition", "gpu"], "--cluster, --partition, --time and --array-parallelism need --launcher submitit"),
    (["--requeues", "2"], "--requeues needs --launcher submitit or ray"),
    (["--launcher", "submitit", "--cluster", "local", "--partition", "gpu"], "--partition applies only to --cluster slurm"),
    (["--launcher", "submitit", "--cluster", "slurm", "--gpus-per-run", "0.5"],
     "--gpus-per-run with submitit is a whole number of GPUs, got 0.5"),
])
def test_bad_launcher_options_exit_2(argv, message, tmp_path, capsys):
    assert cli.main(["smoke", "--results", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cuda_groups_are_spread_round_robin_over_the_visible_gpus():
    from suites.launching.launchers import spread_devices

    runs = expand("smoke", "--seeds", "3", "--tasks", "smac/3m", "--algorithms", "mappo", "--backend", "sim")

    def devices(groups):
        return [[r.device for r in group] for group in groups]

    cuda = [(dataclasses.replace(r, device="cuda"),) for r in runs]
    assert devices(spread_devices(cuda, gpu_count=2)) == [["cuda:0"], ["cuda:1"], ["cuda:0"]]
    assert devices(spread_devices(cuda, gpu_count=1)) == [["cuda"]] * 3  # one GPU: nothing to spread
    pinned = [(dataclasses.replace(r, device="cuda:1"),) for r in runs]
    assert devices(spread_devices(pinned, gpu_count=4)) == [["cuda:1"]] * 3  # an explicit index is kept
    assert devices(spread_devices([tuple(runs)], gpu_count=2)) == [["cpu"] * 3]
    pair = [tuple(dataclasses.replace(r, device="cuda") for r in runs[:2]), (dataclasses.replace(runs[2], device="cuda"),)]
    assert devices(spread_devices(pair, gpu_count=2)) == [["cuda:0", "cuda:0"], ["cuda:1"]]  # a group stays on one GPU


def test_a_worker_that_dies_without_a_record_is_reported_failed(tmp_path):
    from suites.launching.launchers import FAILED as FAILED_STATUS
    from suites.launching.launchers import _outcome_from_record

    spec = expand("smoke", "--seeds", "1", *FAST)[0]
    _record(tmp_path, spec.run_id, "RUNNING", checkpoint=True)  # killed (e.g. out of memory) mid-run
    outcome = _outcome_from_record(spec, tmp_path, -9, tmp_path / "launcher.log")
    assert outcome.status == FAILED_STATUS and "worker exited with code -9" in outcome.detail
    assert run_status(tmp_path / "runs" / spec.run_id) == PARTIAL  # and a rerun resumes it


def test_the_suite_eta_comes_from_each_kind_of_runs_own_rate(tmp_path):
    """A fast kind of run (1,000 steps/s) and a slow one (10 steps/s): the slow runs' remaining steps set the
    ETA, and a kind not yet seen borrows the slowest rate so far (tqdm's one smoothed rate would mix them)."""
    from suites.launching.progress import SuiteEta

    def run(name, kind, steps=None, rate=None):
        record = tmp_path / name
        record.mkdir()
        if steps is not None:
            (record / "progress.json").write_text(json.dumps({"steps": steps, "total": 1000, "steps_per_second": rate}))
        return (name, record, 1000, kind, (name,))

    runs = [run("fast_0", "mappo", 1000, 1000.0), run("slow_0", "mamba", 500, 10.0), run("slow_1", "mamba"),
            run("new_0", "mabl")]
    eta = SuiteEta(runs)
    # slow_0: 500 left at 10/s; slow_1: 1000 at its kind's 10/s; new_0: 1000 at the slowest seen, 10/s
    assert eta.left({"fast_0"}) == "ETA 4 min 10 s"
    assert SuiteEta(runs[:1]).left(set()) == "ETA 0 min 00 s" and SuiteEta([run("x", "y")]).left(set()) == "ETA unknown"


def test_a_group_of_seed_members_takes_as_long_as_its_slowest_member(tmp_path):
    """Members of one group (``--seed-batch``) train at once: a group in flight of three members at 10 steps/s
    each, 500, 600 and 700 steps left, needs 70 s, not their 180 s summed; a planned group not started needs
    its kind's 100 s; and the summary shares the rest among the groups in flight, not their members. Where a
    run's progress file names its group (another process launched it), that grouping counts."""
    from suites.launching import progress

    def member(name, group, steps=None):
        (tmp_path / name).mkdir()
        if steps is not None:
            (tmp_path / name / "progress.json").write_text(json.dumps(
                {"steps": steps, "total": 1000, "steps_per_second": 10.0, "group": list(group)}))
        return (name, tmp_path / name, 1000, "mamba", group)

    flying, planned = ("a0", "a1", "a2"), ("b0", "b1")
    runs = [member(name, flying, steps) for name, steps in zip(flying, (500, 400, 300))]
    runs += [member(name, planned) for name in planned]
    assert progress.SuiteEta(runs).left(set()) == "ETA 2 min 50 s"  # 70 s + 100 s
    line = progress.summary(progress.SuiteEta(runs), finished=set(), failed=0)
    assert line.startswith("[0/5 runs done; ETA 2 min 50 s] running: a0 50% (10 steps/s); a1 40%")
    # the same runs as another launcher sees them, each planned alone: the files still group a0-a2
    alone = [(name, record, total, kind, (name,)) for name, record, total, kind, _ in runs]
    assert progress.SuiteEta(alone).left(set()) == "ETA 4 min 30 s"  # 70 s + 100 s + 100 s


def test_an_unwritable_results_folder_is_refused_with_the_path_and_what_to_do(tmp_path, capsys):
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    assert cli.main([*SMALL, "--results", str(blocked / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write to {blocked / 'results'} (")
    assert "choose another directory with --results or make this one writable" in err and "Traceback" not in err


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


def test_the_status_table_counts_a_group_of_seed_members_once(tmp_path):
    """``--status``: two members of one group, 500 and 700 steps left at 10 steps/s, need 70 s between
    them (they train at once), and a solo run beside them its own 50 s."""
    from suites.launching import progress

    runs = []
    for name, steps, group in (("m0", 500, ["m0", "m1"]), ("m1", 300, ["m0", "m1"]), ("solo", 500, ["solo"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "progress.json").write_text(json.dumps(
            {"steps": steps, "total": 1000, "steps_per_second": 10.0, "group": group}))
        runs.append((name, tmp_path / name, 1000))
    table = progress.status_table(runs)
    assert table.splitlines()[-1].endswith("the unfinished runs that have started need 2 min 00 s more at their own rates")
