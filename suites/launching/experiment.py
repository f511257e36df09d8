"""One run = one Sacred record, written by a FileStorageObserver in the run's own directory.

A group of seed members trains in one process (``suites/training/loop.py``), yet each member is a run of its own:
its own Sacred run, started, beating, logging and ending (COMPLETED, FAILED the moment it fails, or
INTERRUPTED) on its own, with its own captured output, TensorBoard file and W&B run. A solo run is a group
of one and is recorded the same way.
"""
from __future__ import annotations

import dataclasses
import gc
import sys
from pathlib import Path

from algorithms import display_name
from suites.launching import threads
from suites.launching.lease import STALE_SECONDS, Heartbeat, HeldElsewhere, RunLease
from suites.launching.metrics import MetricLog, tensorboard_writer, wandb_run
from suites.launching.provenance import git, versions
from suites.launching.records import DONE, RECORD_FORMAT, algorithm_label, completed_summary, mark_interrupted, run_status
from suites.launching.stopping import StopRequested, StopSignals
from suites.planning.spec import RunSpec
from suites.training.loop import MemberIO, train_members


def run_config(run_spec: RunSpec, group: tuple[int, ...] = (), thread_settings: dict | None = None
               ) -> tuple[dict, object]:
    """Everything that lands in the record's config.json, and the algorithm config it describes.
    ``group``: the seeds trained together in this attempt's process (this one's included), or () alone;
    ``thread_settings``: this process's (``suites/launching/threads.py``)."""
    algo_config, env_spec = run_spec.algorithm_config(), run_spec.env_spec
    return {
        "record_format": RECORD_FORMAT, "suite": run_spec.suite, "task": run_spec.task, "family": env_spec.family,
        "algorithm": run_spec.algorithm, "display_name": display_name(run_spec.algorithm),
        "comparisons": {"improvement": list(run_spec.improvement), "ablation": list(run_spec.ablation)},
        "variant": run_spec.variant, "preset": run_spec.preset, "overrides": dict(run_spec.overrides),
        "algorithm_config": dataclasses.asdict(algo_config),
        "backend": run_spec.backend, "seed": run_spec.seed, "seed_group": list(group or (run_spec.seed,)),
        "budget_steps": run_spec.steps, "eval_interval": run_spec.eval_interval, "eval_episodes": run_spec.eval_episodes,
        "eval_greedy": run_spec.eval_greedy, "device": run_spec.device, "compile_env": run_spec.compile_env,
        **(thread_settings or {}), "env_spec": dataclasses.asdict(env_spec),
        "versions": versions(), "git": git(),
    }, algo_config


class _Captured:
    """The run's captured output as Sacred's heartbeat reads it (``get`` returns what is new): the lines this
    run says, so members of one process never mix their output."""

    closed = False

    def __init__(self):
        self.pending: list[str] = []

    def write(self, line: str) -> None:
        self.pending.append(line + "\n")

    def get(self) -> str:
        text, self.pending = "".join(self.pending), []
        return text


class RunRecord:
    """A run's Sacred record, opened (status RUNNING, config.json written) when made. It emits the events
    Sacred's ``Run.__call__`` emits, from its parts (sacred 0.8.x, pinned), because several members of one
    process train in one loop rather than inside one ``main`` each."""

    def __init__(self, run_spec: RunSpec, results_dir: Path, group: tuple[int, ...], thread_settings: dict):
        import warnings

        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # sacred/dependencies.py:11
        from sacred import Experiment
        from sacred.observers import FileStorageObserver

        self.run_spec, self.record_dir = run_spec, results_dir / "runs" / run_spec.run_id
        mark_interrupted(self.record_dir)
        config, self.algo_config = run_config(run_spec, group, thread_settings)
        ex = Experiment(f"{algorithm_label(run_spec.algorithm, run_spec.variant)}:{run_spec.task}", interactive=True,
                        save_git_info=False)
        ex.observers.append(FileStorageObserver(str(self.record_dir), copy_sources=False))
        ex.add_config(config)
        ex.main(lambda: None)
        self.run = ex._create_run(options={"--loglevel": "ERROR"})
        self.run._output_file = self.output = _Captured()
        self.run._emit_started()
        self.run._start_heartbeat()
        self.writer, self.mirror = tensorboard_writer(self.record_dir), wandb_run(run_spec, self.record_dir, config)
        self.log = MetricLog(self.scalar)

    def scalar(self, name: str, value: float, step: int) -> None:
        """Every metric to Sacred, TensorBoard and W&B alike."""
        self.run.log_scalar(name, value, step)
        self.writer.add_scalar(name, value, step)
        if self.mirror is not None:
            self.mirror.log({name: value}, step=step)

    def say(self, line: str) -> None:
        self.output.write(line)

    def describe(self, provenance: dict) -> None:
        """What produced the run's episodes besides this package (StarCraft II's build, smacv2, the map file), in
        the record's info.json; the analysis labels results by it."""
        self.run.info.update(provenance)

    def completed(self, summary: dict) -> None:
        self.run.info["absolute"] = summary["absolute"]
        self.run.result = summary
        self._end(lambda: self.run._emit_completed(summary))

    def failed(self, err: BaseException) -> None:
        self._end(lambda: self.run._emit_failed(type(err), err, err.__traceback__))

    def interrupted(self, steps: int | None = None, signal_name: str = "") -> None:
        """INTERRUPTED; after a stop signal, with the step reached (checkpointed there) and the signal."""
        if steps is not None:
            self.run.info.update(interrupted_at_step=steps, interrupted_by=signal_name)
        self._end(lambda: self.run._emit_interrupted("INTERRUPTED"))

    def _end(self, emit) -> None:
        if self.run.status != "RUNNING":
            return
        self.run._stop_time()
        self.run._get_captured_output()
        self.run._stop_heartbeat()
        emit()
        self.run._wait_for_observers()
        self.writer.close()
        if self.mirror is not None:
            self.mirror.finish()


def execute_group(run_specs: list[RunSpec], results_dir: Path, progress=None) -> list[dict | BaseException]:
    """Train ``run_specs`` (seed members of one task, algorithm and config) in this process, each resuming from its
    checkpoint; per member its summary or the error that stopped it (:class:`HeldElsewhere` for a run another
    process is training: it is left alone). Ctrl-C marks every unfinished member INTERRUPTED and propagates; an
    error of the whole group marks them FAILED and propagates."""
    leases, elsewhere = {}, {}
    for run_spec in run_specs:  # before any record is made: a run held elsewhere gets no attempt of ours
        run_dir = results_dir / "runs" / run_spec.run_id
        lease = RunLease(run_dir)
        holder = lease.acquire()
        if holder is not None:
            elsewhere[run_spec.run_id] = HeldElsewhere(f"being trained by {holder}; left alone")
        elif run_status(run_dir) == DONE:  # finished by another process since this one made its plan
            lease.release()
            elsewhere[run_spec.run_id] = completed_summary(run_dir)
        else:
            leases[run_spec.run_id] = lease
    mine = [s for s in run_specs if s.run_id in leases]
    try:
        trained = dict(zip((s.run_id for s in mine), _train(mine, results_dir, progress, list(leases.values())))) \
            if mine else {}
    finally:
        for lease in leases.values():
            lease.release()
    return [elsewhere[s.run_id] if s.run_id in elsewhere else trained[s.run_id] for s in run_specs]


def _train(run_specs: list[RunSpec], results_dir: Path, progress, leases: list[RunLease]) -> list[dict | BaseException]:
    group = tuple(s.seed for s in run_specs) if len(run_specs) > 1 else ()
    thread_settings = threads.apply(run_specs[0].threads)
    records = [RunRecord(run_spec, results_dir, group, thread_settings) for run_spec in run_specs]
    ios = [MemberIO(run_spec, r.record_dir, r.log, progress, on_failure=r.failed, say=r.say, describe=r.describe)
           for run_spec, r in zip(run_specs, records)]
    stop = StopSignals()
    heartbeat = Heartbeat(leases, on_lost=stop.abandon)
    try:
        with heartbeat, stop.active():
            results = train_members(ios, records[0].algo_config, stop)
    except StopRequested as err:
        for r, steps in zip(records, err.steps):
            r.interrupted(steps, err.signal_name)
        raise
    except KeyboardInterrupt:
        for r in records:
            r.interrupted()
        if heartbeat.lost:
            print(f"stopped: another process took over {', '.join(str(lease.path.parent) for lease in heartbeat.lost)} "
                  f"(this one's heartbeat had stalled for {STALE_SECONDS:.0f} s)", file=sys.stderr)
        raise
    except BaseException:
        err = sys.exc_info()[1]
        for r in records:
            r.failed(err)
        raise
    finally:
        # A finished run's networks, optimisers and replay sit in reference cycles (the learner steps'
        # closures hold their agent) that only a full collection frees: collect now, so that the runs of one
        # process (the sequential launcher's suite) do not pile up memory until the cyclic GC gets to them.
        gc.collect()
    for r, result in zip(records, results):
        if isinstance(result, BaseException):
            r.failed(result)  # already recorded when it happened, unless it failed while finishing
        else:
            r.completed(result)
    return results


def execute(run_spec: RunSpec, results_dir: Path, progress=None) -> dict:
    """Run (or resume) one run alone; its error propagates after the record says FAILED."""
    (result,) = execute_group([run_spec], results_dir, progress)
    if isinstance(result, BaseException):
        raise result
    return result
