"""Launchers: where a suite's runs execute. Their unit is a *group*: up to ``--seed-batch`` seed members of
one task, algorithm and config trained in one process (a solo run is a group of one). Every launcher
isolates failures: a run that raises, or whose process dies, is reported FAILED and the others go on.

- ``local`` with ``jobs=1`` runs in this process under a suite bar (runs done, ETA) and a bar per run.
- ``local`` with ``jobs>1`` starts one ``python -m suites.launching.worker`` process per group, at most ``jobs`` at a
  time, each with ``cpus // jobs`` torch threads; groups on ``--device cuda`` are spread round-robin over
  the visible GPUs. Each group's output goes to its first run's ``launcher.log``; every 30 s one line sums up the
  suite (runs done, each run in flight with its share and rate, an ETA), from the runs' progress files.
- ``ray`` submits each group as a Ray task (``num_gpus`` may be a fraction) to a local instance or to the
  cluster at ``address``; every node needs this package installed and the results directory shared (the
  driver's 30-second summary lines read the runs' progress files there). A local instance listens on the
  loopback interface only.
- ``submitit`` submits each group as one job of a job array to SLURM (``cluster="slurm"``), or runs the same
  jobs as local processes (``cluster="local"``); the results directory must be shared with the nodes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from envs.errors import UsageError
from suites.launching import progress
from suites.launching.lease import RAY_TASK_VARIABLE, HeldElsewhere, live_holder
from suites.launching.records import SUBMITTED, attempts, completed_summary, submission
from suites.planning.spec import RunSpec

COMPLETED, FAILED, HELD = "COMPLETED", "FAILED", "HELD"  # HELD: another process is training the run
LAUNCHERS = ("local", "ray", "submitit")
CLUSTERS = ("slurm", "local")  # submitit's executors
RAY_HINT = "Ray is not installed: pip install -e '.[ray]' (every node of a cluster needs it and this package)."
SUBMITIT_HINT = "submitit is not installed: pip install -e '.[submitit]' (the nodes need this package too)."


Group = tuple[RunSpec, ...]  # seed members trained in one process


def group_label(group: Group) -> str:
    """How progress lines name a group: its run, or its runs' common part and their seeds."""
    if len(group) == 1:
        return group[0].run_id
    return f"{group[0].run_id.rsplit('/', 1)[0]}/seed_{','.join(str(s.seed) for s in group)}"


def runs_of(groups: list[Group]) -> list[RunSpec]:
    return [run_spec for group in groups for run_spec in group]


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str  # COMPLETED, FAILED or HELD
    detail: str  # absolute metric, why it failed, or who holds it


def completed(run_spec: RunSpec, absolute: dict) -> Outcome:
    return Outcome(run_spec.run_id, COMPLETED, ", ".join(f"{k}={v:.3f}" for k, v in absolute.items()))


def failed(run_spec: RunSpec, err: BaseException) -> Outcome:
    if isinstance(err, HeldElsewhere):
        return Outcome(run_spec.run_id, HELD, str(err))
    return Outcome(run_spec.run_id, FAILED, f"{type(err).__name__}: {err}")


def execute_safely(group: Group, results: Path, progress=None) -> list[Outcome]:
    """One group in this process; any exception becomes a FAILED outcome (Sacred has recorded it), of its
    member alone where it was the member's own."""
    from suites.launching import experiment

    try:
        summaries = experiment.execute_group(list(group), results, progress=progress)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # one failing group never stops the others
        return [failed(run_spec, err) for run_spec in group]
    return [failed(run_spec, summary) if isinstance(summary, BaseException) else completed(run_spec, summary["absolute"])
            for run_spec, summary in zip(group, summaries)]


class _SuiteAndRun:
    """The tqdm interface the runner uses, moving the suite's bar along with the run's, and refreshing the
    suite's ETA (each run's own rate: ``progress.SuiteEta``) every ``ETA_EVERY`` seconds."""

    ETA_EVERY = 10.0

    def __init__(self, suite, run, eta=None):
        self.suite, self.run, self.eta = suite, run, eta
        self.refreshed = time.monotonic()

    @property
    def n(self) -> int:
        return self.run.n

    def update(self, steps: int) -> None:
        self.run.update(steps)
        self.suite.update(steps)
        if self.eta is not None and time.monotonic() - self.refreshed > self.ETA_EVERY:
            self.refreshed = time.monotonic()
            self.suite.set_postfix_str(self.eta())

    def set_postfix_str(self, text: str) -> None:
        self.run.set_postfix_str(text)


def run_sequential(groups: list[Group], results: Path) -> list[Outcome]:
    """In this process, one group after another: a suite bar (runs done of all, the ETA of the whole suite
    from each run's own measured rate) above the running group's own bar."""
    from tqdm import tqdm

    terminal = sys.stderr.isatty()  # else plain lines every 30 s, for log files
    outcomes: list[Outcome] = []
    total = len(runs_of(groups))
    budget = sum(s.steps for s in runs_of(groups))
    suite = tqdm(total=budget, unit="step", dynamic_ncols=True, position=0,
                 bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}, {postfix}]"
                 ) if terminal else progress.PlainBar(budget, every=float("inf"))
    write = tqdm.write if terminal else progress.PlainBar.write
    estimate = suite_eta(groups, results)
    try:
        for group in groups:
            failures = sum(o.status == FAILED for o in outcomes)
            finished = frozenset(o.run_id for o in outcomes)
            suite.set_postfix_str(estimate.left(finished))
            suite.set_description_str(f"suite: {len(outcomes)}/{total} runs done" + (f", {failures} failed" if failures else ""))
            steps = sum(s.steps for s in group)
            bar = (tqdm(total=steps, desc=group_label(group), unit="step", dynamic_ncols=True, position=1, leave=False)
                   if terminal else progress.PlainBar(steps, group_label(group),
                                                      heading=lambda: f"{suite.desc}, {suite.postfix}"))
            try:
                outcomes += execute_safely(group, results, progress=_SuiteAndRun(
                    suite, bar, lambda finished=finished: estimate.left(finished)))
            finally:
                bar.close()
            suite.update(steps - bar.n)  # a run that failed early leaves the rest of its budget to the bar
            for outcome in outcomes[-len(group):]:
                write(f"{outcome.status.lower():10s}{outcome.run_id}  {outcome.detail}")
        suite.set_postfix_str("")
        suite.set_description_str(f"suite: {total}/{total} runs done")
    finally:
        suite.close()
    return outcomes


def attach(held: list[RunSpec], results: Path, elsewhere: Callable[[Path], object] = live_holder,
           unfinished: str = "stopped in the other process; rerun to resume it", poll_interval: float = 2.0
           ) -> list[Outcome]:
    """Wait for runs trained elsewhere to finish there (while ``elsewhere(run_dir)`` names who has them: by
    default the process holding its lease); their outcomes then, from their records: COMPLETED, FAILED, or
    UNFINISHED with ``unfinished`` (INTERRUPTED there, or its process gone)."""
    summarised = time.monotonic()
    while any(elsewhere(results / "runs" / s.run_id) is not None for s in held):
        if time.monotonic() - summarised >= SUMMARY_EVERY:
            print_summary([(s,) for s in held], {}, results)  # their groups: as their progress files say
            summarised = time.monotonic()
        time.sleep(poll_interval)
    return [recorded_outcome(run_spec, results, Outcome(run_spec.run_id, "UNFINISHED", unfinished)) for run_spec in held]


def spread_devices(groups: list[Group], gpu_count: int) -> list[Group]:
    """Groups on a bare ``cuda`` device go round-robin to ``cuda:0 .. cuda:<gpu_count-1>``."""
    if gpu_count < 2:
        return groups
    return [tuple(dataclasses.replace(s, device=f"cuda:{i % gpu_count}") if s.device == "cuda" else s for s in group)
            for i, group in enumerate(groups)]


def recorded_outcome(run_spec: RunSpec, results: Path, unfinished: Outcome) -> Outcome:
    """A run's outcome from its record, as another process left it: COMPLETED with its absolute metric, FAILED
    with the last line of its trace, else ``unfinished``."""
    run_dir = results / "runs" / run_spec.run_id
    runs = attempts(run_dir)
    last = runs[-1][1] if runs else {}
    if last.get("status") == COMPLETED:
        return completed(run_spec, completed_summary(run_dir)["absolute"])
    trace = last.get("fail_trace")
    return Outcome(run_spec.run_id, FAILED, trace[-1].strip()) if trace else unfinished


def interrupted_outcome(run_spec: RunSpec, results: Path) -> Outcome | None:
    """UNFINISHED, with the signal and step, where the run's latest attempt stopped on a signal (a job cancelled
    with ``scancel``: its runs checkpointed and are resumable, not failed); None otherwise."""
    run_dir = results / "runs" / run_spec.run_id
    runs = attempts(run_dir)
    if not runs or runs[-1][1].get("status") != "INTERRUPTED":
        return None
    try:
        info = json.loads((run_dir / str(runs[-1][0]) / "info.json").read_text())
    except (OSError, ValueError):
        info = {}
    where = f" by {info['interrupted_by']} at step {info['interrupted_at_step']:,}" if "interrupted_by" in info else ""
    return Outcome(run_spec.run_id, "UNFINISHED", f"interrupted{where}; rerun to resume it from there")


def _outcome_from_record(run_spec: RunSpec, results: Path, returncode: int, log: Path) -> Outcome:
    holder = live_holder(results / "runs" / run_spec.run_id)  # the worker has exited: a live holder is another process
    if holder is not None:
        return Outcome(run_spec.run_id, HELD, f"being trained by {holder}; left alone")
    # a group's process exits 1 when any member failed: each member's record says how it ended
    return recorded_outcome(run_spec, results, Outcome(run_spec.run_id, FAILED,
                                                   f"worker exited with code {returncode}; see {log}"))


SUMMARY_EVERY = 30.0  # seconds between the process and Ray launchers' summary lines


def suite_eta(groups: list[Group], results: Path) -> progress.SuiteEta:
    """The suite's ETA from each kind of run's own rate (a kind: one algorithm and variant on one task), a group
    of seed members taking as long as its slowest member."""
    return progress.SuiteEta([(s.run_id, results / "runs" / s.run_id, s.steps, (s.algorithm, s.variant, s.task),
                               tuple(member.run_id for member in group)) for group in groups for s in group])


def print_summary(groups: list[Group], outcomes: dict, results: Path) -> None:
    """The suite's progress in one line, from the progress files of the runs not yet finished."""
    failures = sum(o.status == FAILED for o in outcomes.values())
    print(progress.summary(suite_eta(groups, results), set(outcomes), failures), flush=True)


def run_parallel(groups: list[Group], results: Path, jobs: int, gpu_count: int = 0,
                 poll_interval: float = 0.2) -> list[Outcome]:
    """At most ``jobs`` worker processes (one per group) at once; outcomes in the order of the runs."""
    groups = spread_devices(groups, gpu_count)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running, outcomes = list(groups), {}, {}
    try:
        _schedule(pending, running, outcomes, results, jobs, env, poll_interval, groups)
    except KeyboardInterrupt:  # the workers keep their checkpoints; a rerun resumes them
        stop_all(running)
        raise
    return [outcomes[s.run_id] for s in runs_of(groups)]


def _schedule(pending, running, outcomes, results, jobs, env, poll_interval, groups) -> None:
    summarised = time.monotonic()
    while pending or running:
        if time.monotonic() - summarised >= SUMMARY_EVERY:
            print_summary(groups, outcomes, results)
            summarised = time.monotonic()
        while pending and len(running) < jobs:
            group = pending.pop(0)
            log = results / "runs" / group[0].run_id / "launcher.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as handle:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "suites.launching.worker", str(results),
                     json.dumps([dataclasses.asdict(run_spec) for run_spec in group])],
                    stdout=handle, stderr=subprocess.STDOUT, env=env)
            running[proc] = (group, log)
            print(f"started  {group_label(group)} on {group[0].device} (log: {log})", flush=True)
        time.sleep(poll_interval)
        for proc in [p for p in running if p.poll() is not None]:
            group, log = running.pop(proc)
            for run_spec in group:
                outcomes[run_spec.run_id] = _outcome_from_record(run_spec, results, proc.returncode, log)
                print(f"{outcomes[run_spec.run_id].status.lower():10s}{run_spec.run_id}", flush=True)


def stop_all(processes) -> None:
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.wait()


SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def local_ray(ray, **options):
    """A Ray instance on this machine that listens on the loopback interface only, shut down on exit.

    Ray binds its ports to the node's address, on Linux the machine's network interface, and resolves a
    given "127.0.0.1" back to it; exposed Ray ports are a known way in ("ShadowRay"). Its single-machine
    mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read by Ray's processes from the environment and by this
    one from ``ray_constants``) keeps the node on the loopback address instead.

    Ray starts its workers at niceness 15, for the sake of its own services; here the workers do all the
    work, and beside any ordinary process they starve (measured: a worker got 2% of a core beside two busy
    processes on 2 cores), so they run at normal priority."""
    from ray._private import ray_constants

    environment, cluster_mode = os.environ.get(SINGLE_MACHINE), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        ray.init(_node_ip_address="127.0.0.1", _system_config={"worker_niceness": 0}, **options)
        yield
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
        if environment is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = environment


def ray_task(group: Group, results: Path) -> list[Outcome]:
    """A group as a Ray task: a retry of it (after its worker died) takes over the leases its earlier attempt
    left (``suites/launching/lease.py``) and resumes the runs from their checkpoints."""
    import ray

    os.environ[RAY_TASK_VARIABLE] = ray.get_runtime_context().get_task_id()
    return execute_safely(group, results)


def run_ray(groups: list[Group], results: Path, address: str | None, gpus_per_run: float,
            cpus_per_run: float = 1.0, retries: int = 3) -> list[Outcome]:
    """Each group is a Ray task, retried up to ``retries`` times when its worker dies (a node lost, the
    process killed); a task whose last attempt dies is reported FAILED like one that raises."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_HINT) from None
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    with ExitStack() as stack:
        if not ray.is_initialized():  # else the caller's instance
            if address:
                ray.init(address=address, **options)
                stack.callback(ray.shutdown)
            else:
                stack.enter_context(local_ray(ray, **options))
        task = ray.remote(ray_task).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries)
        futures = {task.remote(group, results): group for group in groups}
        outcomes = {}
        waiting = list(futures)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=SUMMARY_EVERY)
            if not ready:  # workers' output stays on their nodes; their progress files reach us
                print_summary(groups, outcomes, results)
                continue
            group = futures[ready[0]]
            try:
                finished = ray.get(ready[0])
            except Exception as err:  # the worker process died (or Ray could not run the task)
                finished = [failed(run_spec, err) for run_spec in group]
            _report(finished, outcomes)
        return [outcomes[s.run_id] for s in runs_of(groups)]


def _report(finished: list[Outcome], outcomes: dict) -> None:
    for outcome in finished:
        outcomes[outcome.run_id] = outcome
        print(f"{outcome.status.lower():10s}{outcome.run_id}", flush=True)


class SubmititJob:
    """A group as a submitit job that requeues itself. Before its time limit, or when preempted, submitit
    sends the job SIGUSR2: the runs stop at their next safe point with a checkpoint (``suites/launching/stopping.py``),
    then submitit's own handler, which the loop had put aside, requeues the job with the same call
    (``checkpoint``: submitit's Checkpointable protocol), which resumes the runs from those checkpoints."""

    def __call__(self, group: Group, results: Path) -> list[Outcome]:
        from suites.launching.stopping import StopRequested

        try:
            return execute_safely(group, results)
        except StopRequested as stop:
            if callable(stop.previous_handler):  # submitit's: requeue, then exit
                stop.previous_handler(signal.Signals[stop.signal_name], None)
            raise

    def checkpoint(self, group: Group, results: Path):
        import submitit

        return submitit.helpers.DelayedSubmission(self, group, results)


def submitted_job(run_dir: Path) -> dict | None:
    """The submitit job a run was given to, while that job may still train it (queued, running or requeued);
    None when it was given to none, or its job has ended. A SLURM job's state comes from SLURM (sacct); a local
    job is a process of the driver's host."""
    job = submission(run_dir)
    if job is None:
        return None
    if job["cluster"] == "local":
        alive = job["host"] == socket.gethostname() and _process_alive(int(job["job_id"]))
        return job if alive and not (Path(job["folder"]) / f"{job['job_id']}_0_result.pkl").exists() else None
    import submitit

    return None if submitit.SlurmJob(folder=job["folder"], job_id=job["job_id"]).done(force_check=True) else job


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _note_submitted(groups: list[Group], jobs: list, results: Path, cluster: str) -> None:
    for job, group in zip(jobs, groups):
        for run_spec in group:
            run_dir = results / "runs" / run_spec.run_id
            run_dir.mkdir(parents=True, exist_ok=True)
            draft = run_dir / f".{SUBMITTED}.{os.getpid()}"
            draft.write_text(json.dumps({"job_id": job.job_id, "cluster": cluster, "host": socket.gethostname(),
                                         "folder": str(results / "submitit")}))
            os.replace(draft, run_dir / SUBMITTED)  # never read half written


def run_submitit(groups: list[Group], results: Path, cluster: str, parameters: dict, requeues: int = 3,
                 poll_interval: float = 1.0) -> list[Outcome]:
    """Each group one job (a SLURM job array, or local processes); a job that reaches its time limit or is
    preempted checkpoints and is requeued (at most ``requeues`` times for the time limit; preemptions do not
    count); a job that dies, times out for good or is cancelled is reported FAILED like a run that raises.
    Ctrl-C cancels the unfinished jobs (rerun to resume them). ``parameters`` are submitit's
    (``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``slurm_partition``, ``slurm_array_parallelism``);
    job logs go to ``<results>/submitit/<job id>_*``. Each run's directory names its job (``submitted.json``),
    so a rerun of the command while that job is queued or running (this driver gone, or still waiting) attaches
    to it instead of submitting the run again."""
    try:
        import submitit
    except ImportError:
        raise UsageError(SUBMITIT_HINT) from None
    results = results.resolve()  # jobs may start elsewhere
    queued = {s.run_id: job for s in runs_of(groups) if (job := submitted_job(results / "runs" / s.run_id))}
    mine = [g for g in groups if not any(s.run_id in queued for s in g)]
    if queued:
        print(f"{len(queued)} run(s) already given to submitit jobs that are queued or running (e.g. job "
              f"{next(iter(queued.values()))['job_id']}): attaching to them, not submitting them again", flush=True)
    executor = submitit.AutoExecutor(folder=str(results / "submitit"), cluster=cluster,  # files named by job id
                                     slurm_max_num_timeout=requeues, local_max_num_timeout=requeues)
    executor.update_parameters(name="marl-wm-bench", **parameters)
    jobs = executor.map_array(SubmititJob(), mine, [results] * len(mine)) if mine else []
    _note_submitted(mine, jobs, results, cluster)
    if jobs:
        print(f"submitted {len(jobs)} job(s) to {cluster} (logs: {results / 'submitit'})", flush=True)
    pending, outcomes, summarised = dict(zip(jobs, mine)), {}, time.monotonic()
    try:
        while pending:
            for job in [j for j in pending if j.done()]:
                group = pending.pop(job)
                try:
                    finished = job.result()
                except Exception as err:  # the job died, timed out or was cancelled (scancel: the runs stopped)
                    finished = [interrupted_outcome(run_spec, results) or failed(run_spec, err) for run_spec in group]
                _report(finished, outcomes)
            if pending and time.monotonic() - summarised >= SUMMARY_EVERY:
                print_summary(groups, outcomes, results)
                summarised = time.monotonic()
            time.sleep(poll_interval if pending else 0)
    except KeyboardInterrupt:
        for job in pending:
            job.cancel(check=False)
        raise
    attached = [s for g in groups for s in g if s.run_id in queued]
    if attached:  # given to jobs another driver submitted (queued or running): their outcomes once they end
        outcomes.update({o.run_id: o for o in attach(attached, results, submitted_job,
                                                     "its job ended without finishing it; rerun to resume it")})
    return [outcomes[s.run_id] for s in runs_of(groups)]
