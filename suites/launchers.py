"""Launchers: where a suite's runs execute. Every launcher isolates failures: a run that raises, or whose
process dies, is reported FAILED and the others go on.

- ``local`` with ``jobs=1`` runs in this process under a suite bar (runs done, ETA) and a bar per run.
- ``local`` with ``jobs>1`` starts one ``python -m suites.worker`` process per run, at most ``jobs`` at a
  time, each with ``cpus // jobs`` torch threads; runs on ``--device cuda`` are spread round-robin over
  the visible GPUs. Each run's output goes to ``<run dir>/launcher.log``; every 30 s one line sums up the
  suite (runs done, each run in flight with its share and rate, an ETA), from the runs' progress files.
- ``ray`` submits each run as a Ray task (``num_gpus`` may be a fraction) to a local instance or to the
  cluster at ``address``; every node needs this package installed and the results directory shared (the
  driver's 30-second summary lines read the runs' progress files there). A local instance listens on the
  loopback interface only.
- ``submitit`` submits each run as one job of a job array to SLURM (``cluster="slurm"``), or runs the same
  jobs as local processes (``cluster="local"``); the results directory must be shared with the nodes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from envs.errors import UsageError
from suites import progress
from suites.records import attempts
from suites.spec import RunSpec

COMPLETED, FAILED = "COMPLETED", "FAILED"
LAUNCHERS = ("local", "ray", "submitit")
CLUSTERS = ("slurm", "local")  # submitit's executors
RAY_HINT = "Ray is not installed: pip install -e '.[ray]' (every node of a cluster needs it and this package)."
SUBMITIT_HINT = "submitit is not installed: pip install -e '.[submitit]' (the nodes need this package too)."


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str  # COMPLETED or FAILED
    detail: str  # absolute metric, or why it failed


def completed(spec: RunSpec, absolute: dict) -> Outcome:
    return Outcome(spec.run_id, COMPLETED, ", ".join(f"{k}={v:.3f}" for k, v in absolute.items()))


def failed(spec: RunSpec, err: BaseException) -> Outcome:
    return Outcome(spec.run_id, FAILED, f"{type(err).__name__}: {err}")


def execute_safely(spec: RunSpec, results: Path, progress=None) -> Outcome:
    """One run in this process; any exception becomes a FAILED outcome (Sacred has recorded it)."""
    from suites import experiment

    try:
        return completed(spec, experiment.execute(spec, results, progress=progress)["absolute"])
    except KeyboardInterrupt:
        raise
    except Exception as err:  # one failing run never stops the others
        return failed(spec, err)


class _SuiteAndRun:
    """The tqdm interface the runner uses, moving the suite's bar along with the run's."""

    def __init__(self, suite, run):
        self.suite, self.run = suite, run

    @property
    def n(self) -> int:
        return self.run.n

    def update(self, steps: int) -> None:
        self.run.update(steps)
        self.suite.update(steps)

    def set_postfix_str(self, text: str) -> None:
        self.run.set_postfix_str(text)


def run_sequential(specs: list[RunSpec], results: Path) -> list[Outcome]:
    """In this process, one run after another: a suite bar (runs done of all, the ETA of the whole suite
    from its measured steps per second) above the running run's own bar."""
    from tqdm import tqdm

    outcomes = []
    suite = tqdm(total=sum(s.steps for s in specs), unit="step", dynamic_ncols=True, position=0,
                 bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}<{remaining}]")
    try:
        for done, spec in enumerate(specs):
            failures = sum(o.status == FAILED for o in outcomes)
            suite.set_description_str(f"suite: {done}/{len(specs)} runs done" + (f", {failures} failed" if failures else ""))
            bar = tqdm(total=spec.steps, desc=spec.run_id, unit="step", dynamic_ncols=True, position=1, leave=False)
            try:
                outcomes.append(execute_safely(spec, results, progress=_SuiteAndRun(suite, bar)))
            finally:
                bar.close()
            suite.update(spec.steps - bar.n)  # a run that failed early leaves the rest of its budget to the bar
            tqdm.write(f"{outcomes[-1].status.lower():10s}{spec.run_id}  {outcomes[-1].detail}")
        suite.set_description_str(f"suite: {len(specs)}/{len(specs)} runs done")
    finally:
        suite.close()
    return outcomes


def spread_devices(specs: list[RunSpec], gpu_count: int) -> list[RunSpec]:
    """Runs on a bare ``cuda`` device go round-robin to ``cuda:0 .. cuda:<gpu_count-1>``."""
    if gpu_count < 2:
        return specs
    return [dataclasses.replace(s, device=f"cuda:{i % gpu_count}") if s.device == "cuda" else s
            for i, s in enumerate(specs)]


def _outcome_from_record(spec: RunSpec, results: Path, returncode: int, log: Path) -> Outcome:
    runs = attempts(results / "runs" / spec.run_id)
    last = runs[-1][1] if runs else {}
    if returncode == 0 and last.get("status") == COMPLETED:
        info_path = results / "runs" / spec.run_id / str(runs[-1][0]) / "info.json"
        try:
            return completed(spec, json.loads(info_path.read_text())["absolute"])
        except (OSError, ValueError, KeyError):
            return Outcome(spec.run_id, COMPLETED, "")
    trace = last.get("fail_trace") or []
    reason = trace[-1].strip() if trace else f"worker exited with code {returncode}; see {log}"
    return Outcome(spec.run_id, FAILED, reason)


SUMMARY_EVERY = 30.0  # seconds between the process and Ray launchers' summary lines


def print_summary(specs: list[RunSpec], outcomes: dict, results: Path) -> None:
    """The suite's progress in one line, from the progress files of the runs not yet finished."""
    unfinished = [s for s in specs if s.run_id not in outcomes]
    failures = sum(o.status == FAILED for o in outcomes.values())
    print(progress.summary([(s.run_id, results / "runs" / s.run_id) for s in unfinished], len(outcomes), failures,
                           len(specs), sum(s.steps for s in unfinished)), flush=True)


def run_parallel(specs: list[RunSpec], results: Path, jobs: int, gpu_count: int = 0,
                 poll_interval: float = 0.2) -> list[Outcome]:
    """At most ``jobs`` worker processes at once; outcomes in the order of ``specs``."""
    specs = spread_devices(specs, gpu_count)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running, outcomes = list(specs), {}, {}
    try:
        _schedule(pending, running, outcomes, results, jobs, env, poll_interval, specs)
    except KeyboardInterrupt:  # the workers keep their checkpoints; a rerun resumes them
        stop_all(running)
        raise
    return [outcomes[s.run_id] for s in specs]


def _schedule(pending, running, outcomes, results, jobs, env, poll_interval, specs) -> None:
    summarised = time.monotonic()
    while pending or running:
        if time.monotonic() - summarised >= SUMMARY_EVERY:
            print_summary(specs, outcomes, results)
            summarised = time.monotonic()
        while pending and len(running) < jobs:
            spec = pending.pop(0)
            log = results / "runs" / spec.run_id / "launcher.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as handle:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "suites.worker", str(results), json.dumps(dataclasses.asdict(spec))],
                    stdout=handle, stderr=subprocess.STDOUT, env=env)
            running[proc] = (spec, log)
            print(f"started  {spec.run_id} on {spec.device} (log: {log})", flush=True)
        time.sleep(poll_interval)
        for proc in [p for p in running if p.poll() is not None]:
            spec, log = running.pop(proc)
            outcomes[spec.run_id] = _outcome_from_record(spec, results, proc.returncode, log)
            print(f"{outcomes[spec.run_id].status.lower():10s}{spec.run_id}", flush=True)


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
    one from ``ray_constants``) keeps the node on the loopback address instead."""
    from ray._private import ray_constants

    environment, cluster_mode = os.environ.get(SINGLE_MACHINE), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        ray.init(_node_ip_address="127.0.0.1", **options)
        yield
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
        if environment is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = environment


def run_ray(specs: list[RunSpec], results: Path, address: str | None, gpus_per_run: float,
            cpus_per_run: float = 1.0) -> list[Outcome]:
    """Each run is a Ray task; a task whose worker dies is reported FAILED like one that raises."""
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
        task = ray.remote(execute_safely).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=0)
        futures = {task.remote(spec, results): spec for spec in specs}
        outcomes = {}
        waiting = list(futures)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=SUMMARY_EVERY)
            if not ready:  # workers' output stays on their nodes; their progress files reach us
                print_summary(specs, outcomes, results)
                continue
            spec = futures[ready[0]]
            try:
                outcomes[spec.run_id] = ray.get(ready[0])
            except Exception as err:  # the worker process died (or Ray could not run the task)
                outcomes[spec.run_id] = failed(spec, err)
            print(f"{outcomes[spec.run_id].status.lower():10s}{spec.run_id}", flush=True)
        return [outcomes[s.run_id] for s in specs]


def run_submitit(specs: list[RunSpec], results: Path, cluster: str, parameters: dict,
                 poll_interval: float = 1.0) -> list[Outcome]:
    """Each run one job (a SLURM job array, or local processes); a job that dies, times out or is cancelled
    is reported FAILED like a run that raises. Ctrl-C cancels the unfinished jobs (rerun to resume them).
    ``parameters`` are submitit's (``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``slurm_partition``,
    ``slurm_array_parallelism``); job logs go to ``<results>/submitit/<job id>_*``."""
    try:
        import submitit
    except ImportError:
        raise UsageError(SUBMITIT_HINT) from None
    results = results.resolve()  # jobs may start elsewhere
    executor = submitit.AutoExecutor(folder=str(results / "submitit" / "%j"), cluster=cluster)
    executor.update_parameters(name="marl-wm-bench", **parameters)
    jobs = executor.map_array(execute_safely, specs, [results] * len(specs))
    print(f"submitted {len(jobs)} job(s) to {cluster} (logs: {results / 'submitit'})", flush=True)
    pending, outcomes, summarised = dict(zip(jobs, specs)), {}, time.monotonic()
    try:
        while pending:
            for job in [j for j in pending if j.done()]:
                spec = pending.pop(job)
                try:
                    outcomes[spec.run_id] = job.result()
                except Exception as err:  # the job died, timed out or was cancelled
                    outcomes[spec.run_id] = failed(spec, err)
                print(f"{outcomes[spec.run_id].status.lower():10s}{spec.run_id}", flush=True)
            if pending and time.monotonic() - summarised >= SUMMARY_EVERY:
                print_summary(specs, outcomes, results)
                summarised = time.monotonic()
            time.sleep(poll_interval if pending else 0)
    except KeyboardInterrupt:
        for job in pending:
            job.cancel(check=False)
        raise
    return [outcomes[s.run_id] for s in specs]
