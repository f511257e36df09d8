"""The training loop, identical for every algorithm: act, step, observe, learn; evaluate on schedule
(``suites/training/evaluation.py``) and checkpoint after every evaluation, so a resumed run replays exactly what an
uninterrupted one does.

The loop trains a *group* of seed members: runs that differ only in their seed, stepping one batch of
environments (``envs.members.make_members``) in one process. A solo run is a group of one. Each member keeps its
own algorithm, generators (swapped in whenever it draws: :class:`MemberGenerators`), counters, evaluations,
checkpoint and record, so its series is the one it would have alone, bit for bit on the CPU; a member that
fails stops alone and its environments idle while the others go on.
"""
from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from algorithms import Divergence, Transition, make_algorithm
from algorithms.members import WAITING, Waiting
from envs.members import make_members, step_holding
from suites.errors import DiskFull
from suites.launching.metrics import MetricLog
from suites.launching.progress import RunProgress
from suites.launching.stopping import LeaseLost, StopRequested, StopSignals
from suites.planning.spec import RunSpec
from suites.training.checkpoint import atomic_save, rng_state, seed_everything, set_rng_state
from suites.training.evaluation import ABSOLUTE_FACTOR, EpisodeStats, evaluate, evaluation_rank

CHECKPOINT_FORMAT = 4  # written into every checkpoint; another number is refused with a clear message


class MemberGenerators:
    """A member's Python, NumPy and torch generator states. The algorithms draw from the process-wide
    generators (sampling, replay, initialisation), so in a group each member's states are swapped in around
    whatever it does and saved back after: its draws are those of a process that runs it alone. A member
    alone in its process simply owns the process-wide generators (no swapping, no cost)."""

    def __init__(self, seed: int, alone: bool):
        self.alone = alone
        saved = None if alone else rng_state()
        seed_everything(seed)
        if not alone:
            self._state = rng_state()
            set_rng_state(saved)

    @property
    def state(self) -> dict:
        return rng_state() if self.alone else self._state

    @state.setter
    def state(self, value: dict) -> None:
        if self.alone:
            set_rng_state(value)
        else:
            self._state = value

    @contextmanager
    def active(self):
        if self.alone:
            yield
            return
        saved = rng_state()
        set_rng_state(self._state)
        try:
            yield
        finally:
            self._state = rng_state()
            set_rng_state(saved)


@dataclass
class MemberIO:
    """Where one member reports: its record directory, its metric log, an optional tqdm bar (shared by the
    group), what to do the moment it fails (mark its record FAILED) while the group goes on, where its
    lines go besides the terminal (its record's captured output), and where its environment's provenance goes."""

    run_spec: RunSpec
    record_dir: Path
    log: MetricLog
    progress: object = None
    on_failure: Callable[[BaseException], None] | None = None
    say: Callable[[str], None] | None = None
    describe: Callable[[dict], None] | None = None  # takes what produced its episodes besides us (StarCraft II's build)


class Member:
    """One seed member's run inside the group's loop; environments ``rows`` of the batch are its own."""

    def __init__(self, io: MemberIO, config, rows: slice, group: tuple[str, ...]):
        self.io, self.run_spec, self.config, self.log, self.rows = io, io.run_spec, config, io.log, rows
        io.record_dir.mkdir(parents=True, exist_ok=True)
        self.report = RunProgress(io.record_dir, io.run_spec.steps, group, io.progress, io.say)
        self.ckpt_path, self.best_path = io.record_dir / "checkpoint.pt", io.record_dir / "best_policy.pt"
        self.generators = MemberGenerators(io.run_spec.seed, alone=len(group) == 1)
        with self.generators.active():
            self.algo = make_algorithm(io.run_spec.algorithm, io.run_spec.env_spec, config, io.run_spec.device)
        self.steps, self.evals, self.best = 0, 0, (-float("inf"), -float("inf"))
        self.evaluated_at = self.saved_at = self.started_steps = 0  # steps at the latest evaluation and checkpoint
        self.error: BaseException | None = None
        self.waiting = False  # its update is due and waits for the other members' (algorithms/members.py)
        self.elapsed = 0.0
        # wall seconds of this attempt: acting, its share of the batched environment step, observing and learning
        self.seconds = {"act": 0.0, "env": 0.0, "learn": 0.0}

    @property
    def unfinished(self) -> bool:
        return self.error is None and (self.steps < self.run_spec.steps or self.evaluated_at < self.steps)

    def start(self, env, member: int, step) -> None:
        """Fresh episodes from ``step`` (this member's rows of the reset), or continue from the checkpoint."""
        num_envs = self.rows.stop - self.rows.start
        self.step, self.first = step, torch.ones(num_envs, dtype=torch.bool, device=env.device)
        self.memory = self.algo.initial_memory(num_envs)
        self.collected = EpisodeStats(num_envs, env.device, self.run_spec.env_spec.outcomes)
        if self.ckpt_path.exists():
            self._resume(env, member)
        self.started_steps = self.steps
        self.report.start(self.steps)

    def _resume(self, env, member: int) -> None:
        try:
            saved = torch.load(self.ckpt_path, weights_only=False, map_location=self.run_spec.device)
        except Exception as err:
            raise RuntimeError(f"checkpoint {self.ckpt_path} is unreadable ({type(err).__name__}: {err}); "
                               "delete it to restart this run from scratch") from err
        if saved.get("format") != CHECKPOINT_FORMAT:
            raise RuntimeError(f"checkpoint {self.ckpt_path} has format {saved.get('format')!r}, this version reads "
                               f"format {CHECKPOINT_FORMAT}; delete it to restart this run from scratch")
        self.algo.load_state_dict(saved["algorithm"])
        if saved["env"] is not None:
            env.load_member_state(member, saved["env"])
            self.step, self.memory, self.first = saved["step"], saved["memory"], saved["first"]
        self.steps, self.evals, self.best = saved["steps"], saved["evals"], saved["best"]
        self.evaluated_at, self.saved_at = saved["evaluated_at"], self.steps
        self.collected.load_state_dict(saved["collect"])
        self.generators.state = saved["rng"]
        self.log.replay(saved["log"])

    def checkpoint(self, env, member: int) -> None:
        atomic_save({"format": CHECKPOINT_FORMAT, "algorithm": self.algo.state_dict(), "env": env.member_state(member),
                     "step": self.step, "memory": self.memory, "first": self.first, "steps": self.steps,
                     "evals": self.evals, "evaluated_at": self.evaluated_at, "best": self.best,
                     "rng": self.generators.state,
                     "collect": self.collected.state_dict(), "log": list(self.log.history)}, self.ckpt_path)
        self.saved_at = self.steps

    def due(self) -> bool:
        """On schedule, and always at the end, so the final policy is a candidate for the absolute metric."""
        run_spec = self.run_spec
        return (self.steps >= self.evals * run_spec.eval_interval
                or (self.steps >= run_spec.steps and self.evaluated_at < self.steps))

    def evaluate_and_checkpoint(self, env, member: int) -> None:
        run_spec = self.run_spec
        self.evaluated_at = self.steps
        for k, v in self.collected.report().items():
            self.log.log(f"collect/{k}", v, self.steps)
        with self.generators.active():
            result = evaluate(self.algo, run_spec, run_spec.eval_episodes, seed=run_spec.seed * 100_003 + self.evals,
                              say=self.report.say)
        for k, v in result.items():
            self.log.log(f"eval/{k}", v, self.steps)
        self.report.say(f"{run_spec.run_id} step {self.steps}: " + ", ".join(f"eval/{k}={v:.3f}" for k, v in result.items()))
        rank = evaluation_rank(result, run_spec.env_spec.metric)
        try:
            if rank > self.best:
                self.best = rank
                atomic_save(self.algo.state_dict(), self.best_path)
            self.evals += 1
            self.report.note(f"eval {run_spec.env_spec.metric}={rank[0]:.2f}")
            self.checkpoint(env, member)
        except DiskFull as err:
            raise DiskFull(f"{err}; free space and rerun to resume from step {self.saved_at}") from None

    def act(self):
        started = time.perf_counter()
        with self.generators.active():
            out = self.algo.act(self.step.obs, self.step.avail_actions, self.memory, self.first, explore=True,
                                neighbours=self.step.info.get("neighbours"))
        self.seconds["act"] += time.perf_counter() - started
        return out

    def advance(self, actions, next_memory, extras, next_step) -> Transition:
        """Take this member's share of the step: count it, and move on; returns the transition to observe."""
        self.collected.add(next_step)
        transition = Transition.between(self.step, self.first, actions, next_step, extras)
        self.step, self.memory, self.first = next_step, next_memory, next_step.done
        self.steps += next_step.done.shape[0]
        return transition

    def learn(self, actions, next_memory, extras, next_step) -> None:
        """Observe this member's share of the step and learn on the algorithm's own schedule."""
        started = time.perf_counter()
        transition = self.advance(actions, next_memory, extras, next_step)
        with self.generators.active():
            self.algo.observe(transition)
            try:
                metrics = self.algo.update()
            except Divergence as err:
                metrics = err
        self.seconds["learn"] += time.perf_counter() - started
        self.record(metrics)

    def record(self, metrics: dict[str, float] | Divergence | Waiting, advance: bool = True) -> None:
        """Log what the algorithm reported after a step (``advance``: count the step; a waiting member's update
        reports later, at the same step); a Divergence stops this member (raised, with where)."""
        if isinstance(metrics, Divergence):
            raise Divergence(f"{metrics} at {self.steps} environment steps; last good checkpoint: "
                             f"{self.ckpt_path}") from metrics
        self.waiting = metrics is WAITING
        for name, value in ({} if self.waiting else metrics).items():
            self.log.log(name, value, self.steps)
        if advance:
            self.report.advance(self.step.done.shape[0])

    def fail(self, err: BaseException) -> None:
        """Stop this member alone: its record says why; its environments idle from now on."""
        self.error = err
        self.report.write()
        if self.io.on_failure is not None:
            self.io.on_failure(err)

    def finish(self, elapsed: float) -> dict:
        """The absolute metric of the best evaluated policy, and the run's throughput and where its time went
        (``time/act_seconds``, ``time/env_seconds``, ``time/learn_seconds``; host time, so on a GPU they
        count launches more than kernels)."""
        run_spec = self.run_spec
        self.report.write()
        if elapsed > 0 and self.steps > self.started_steps:
            self.log.log("time/steps_per_second", (self.steps - self.started_steps) / elapsed, self.steps)
            for phase, seconds in self.seconds.items():
                self.log.log(f"time/{phase}_seconds", seconds, self.steps)
        with self.generators.active():
            best_algo = make_algorithm(run_spec.algorithm, run_spec.env_spec, self.config, run_spec.device)
            best_algo.load_state_dict(torch.load(self.best_path, weights_only=False, map_location=run_spec.device))
            absolute = evaluate(best_algo, run_spec, ABSOLUTE_FACTOR * run_spec.eval_episodes, seed=run_spec.seed * 100_003 - 1,
                                say=self.report.say)
        for k, v in absolute.items():
            self.log.log(f"absolute/{k}", v, self.steps)
        return {"steps": self.steps, "absolute": absolute}


def idle_actions(step) -> torch.Tensor:
    """Actions for the environments of a member that stopped: each agent's first available action."""
    return step.avail_actions.int().argmax(-1)


def train_members(ios: list[MemberIO], config, stop: StopSignals | None = None) -> list[dict | BaseException]:
    """Train a group of seed members (same task, algorithm, config and budget; one seed each) to their budgets,
    each resuming from its own checkpoint. Returns, per member, its summary or the error that stopped it.
    An error outside every member's own work (the environments, a full disk) stops the group and propagates;
    a stop signal (``stop``, ``suites/launching/stopping.py``) checkpoints every member and raises StopRequested."""
    stop = stop or StopSignals()
    run_spec = ios[0].run_spec
    num_envs = config.num_envs
    env = make_members(run_spec.task, [io.run_spec.seed for io in ios], num_envs=num_envs, device=run_spec.device,
                            backend=run_spec.backend, checked=False, compile=run_spec.compile_env)
    group = tuple(io.run_spec.run_id for io in ios)
    members = [Member(io, config, slice(k * num_envs, (k + 1) * num_envs), group) for k, io in enumerate(ios)]
    reset = env.reset()
    for k, io in enumerate(ios):
        provenance = env.provenance(k)
        if io.describe is not None and provenance:
            io.describe(provenance)
    started = time.perf_counter()
    for k, m in enumerate(members):  # an unreadable checkpoint stops its member alone
        _guarded(m, started, m.start, env, k, reset.rows(m.rows.start, m.rows.stop))

    # Everything alive now (modules, models, optimisers, replay, environments) lives for the whole loop: the
    # cyclic GC need not re-scan it (with torch loaded, full collections cost the process that steps a
    # Flatland shard several percent of its time; the workers freeze likewise).
    gc.freeze()
    batched, batch = (), None
    try:
        while True:
            if stop.lost:
                raise LeaseLost("another process took over this run; stopped without writing more")
            if stop.requested:  # the safe point: every member checkpoints at the step it reached
                _release(batch, batched, started)  # after the updates it owes, as alone
                for k, m in enumerate(members):
                    if m.error is None:
                        m.checkpoint(env, k)
                raise StopRequested(stop.requested, [m.steps for m in members])
            for k, m in enumerate(members):
                if m.unfinished and not m.waiting and m.due():
                    _guarded(m, started, m.evaluate_and_checkpoint, env, k)
            running = [m for m in members if m.unfinished and (m.steps < m.run_spec.steps or m.waiting)]
            if not running:
                break
            if tuple(running) != batched:  # who computes as one changes only when a member stops
                _release(batch, batched, started)
                batched, batch = tuple(running), None if len(members) == 1 else _member_batch(running)
            if batch is not None and all(m.waiting for m in running):
                _release(batch, batched, started)
                continue
            if batch is not None:
                moves = _act_together(batch, running)
            else:
                moves = {id(m): _guarded(m, started, m.act) for m in running}
            actions = torch.cat([moves[id(m)][0] if moves.get(id(m)) else idle_actions(m.step) for m in members])
            stepping = time.perf_counter()
            next_step = step_holding(env, actions, [k for k, m in enumerate(members) if m.waiting])
            for row, line in env.take_notices():  # e.g. a StarCraft II game restarted: in its member's log
                members[row // num_envs].report.say(line)
            stepped = [m for m in running if not m.waiting]
            for m in stepped:
                m.seconds["env"] += (time.perf_counter() - stepping) / len(stepped)
            if batch is not None:
                _learn_together(batch, running, moves, next_step, started)
                continue
            for m in running:
                if moves[id(m)]:
                    _guarded(m, started, m.learn, *moves[id(m)], next_step.rows(m.rows.start, m.rows.stop))
    finally:
        gc.unfreeze()  # what the run leaves behind is collectable again
        env.close()
    summaries = [_guarded(m, started, m.finish, m.elapsed or time.perf_counter() - started) if m.error is None
                 else None for m in members]
    return [m.error if m.error is not None else summary for m, summary in zip(members, summaries)]


def _member_batch(members: list[Member]):
    """The running members' algorithm computed as one, where it can be (``Algorithm.member_batch``); also when
    one member is left running, so that its numbers do not depend on when the others stopped."""
    return type(members[0].algo).member_batch([m.algo for m in members], [m.generators.active for m in members])


def _act_together(batch, members: list[Member]) -> dict:
    """The exploring action of every member that is not waiting, in one call; the time is shared out equally."""
    started = time.perf_counter()
    acting = [m for m in members if not m.waiting]

    def stacked(get) -> torch.Tensor:
        return torch.stack([get(m) for m in members])

    neighbours = stacked(lambda m: m.step.info["neighbours"]) if "neighbours" in members[0].step.info else None
    moves = _together(acting, batch.act, stacked(lambda m: m.step.obs), stacked(lambda m: m.step.avail_actions),
                      stacked(lambda m: m.memory), stacked(lambda m: m.first), neighbours,
                      frozenset(k for k, m in enumerate(members) if m.waiting))
    for m in acting:
        m.seconds["act"] += (time.perf_counter() - started) / len(acting)
    return {id(m): move for m, move in zip(members, moves or []) if move is not None}


def _learn_together(batch, members: list[Member], moves: dict, next_step, started: float) -> None:
    """Every member that acted observes its share of the step and learns, in one call; each records its own
    outcome (a member that diverged stops alone; one whose update waits records it later, ``_release``)."""
    began = time.perf_counter()
    transitions = [m.advance(*moves[id(m)], next_step.rows(m.rows.start, m.rows.stop)) if id(m) in moves else None
                   for m in members]
    learning = [m for m, transition in zip(members, transitions) if transition is not None]
    if not learning:  # acting failed for all of them
        return
    outcomes = _together(learning, batch.observe_and_update, transitions)
    for m, outcome in zip(members, outcomes or []):
        if outcome is not None:
            m.seconds["learn"] += (time.perf_counter() - began) / len(learning)
            _guarded(m, started, m.record, outcome)


def _release(batch, members: tuple[Member, ...], started: float) -> None:
    """The updates of the waiting members among ``members`` (those ``batch`` computes for), computed together
    (``MemberBatch.update_waiting``); each records its outcome at the step it waited at."""
    waiting = [m for m in members if m.waiting]
    if batch is None or not waiting:
        return
    began = time.perf_counter()
    outcomes = _together(waiting, batch.update_waiting)
    for m in waiting:
        m.waiting = False
    for m, outcome in zip(members, outcomes or []):
        if outcome is not None:
            m.seconds["learn"] += (time.perf_counter() - began) / len(waiting)
            _guarded(m, started, m.record, outcome, False)


def _together(members: list[Member], work, *args):
    """``work(*args)`` done for all ``members`` at once: a fault in it is all of theirs, and stops them all
    (None returned). A full disk and Ctrl-C propagate, as in ``_guarded``."""
    try:
        return work(*args)
    except (DiskFull, KeyboardInterrupt):
        raise
    except Exception as err:
        for m in members:
            m.fail(err)
        return None


def _guarded(member: Member, started: float, work, *args):
    """``work(*args)`` for one member; a fault of its own stops that member alone (None returned). A full disk
    and Ctrl-C concern the whole group and propagate."""
    try:
        out = work(*args)
    except (DiskFull, KeyboardInterrupt):
        raise
    except Exception as err:
        member.fail(err)
        return None
    if not member.unfinished and not member.elapsed:
        member.elapsed = time.perf_counter() - started
    return out

