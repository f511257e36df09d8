"""B Flatland environments behind the batched interface, stepped in parallel worker processes.

A Flatland step is nearly all Python (docs/performance.md has its cost), so the batch is split into
``workers`` contiguous shards stepped in parallel: this process steps the first while worker processes
step the others (so W workers keep W cores busy, none idles waiting), each resetting its own finished
episodes; the shards are stacked into torch tensors on the requested device.
``workers=1`` steps everything in this process (no IPC).

Episodes are built ahead (``build_ahead``, on by default): a new episode's rail, line and distance-map
generation is slow, and in a synchronous batch one shard's reset stalls all the others. So
each shard has a helper process at idle CPU priority (``SCHED_IDLE``: it only runs on a core nothing
else wants, e.g. while the other shards catch up or while the learner works on a GPU) that builds the
next episode of each of the shard's environments and leaves it, pickled, in a temporary directory. A
shard that finds its next episode there loads it in a few milliseconds; otherwise it builds the same
episode itself (episodes are seeded by environment and episode number, so where an episode was built
never changes what it is).

Workers are forked where the platform can (Linux): they run numpy and flatland only, never torch, and
flatland is imported before the fork; elsewhere they are spawned (the calling script then needs the usual
``if __name__ == "__main__":`` guard). A worker that raises sends its traceback, a worker that dies is
noticed by polling, and either way every worker is shut down and a :class:`WorkerError` names the
cause: never a hang. ``close()`` (also on garbage collection and at exit) stops and joins every worker
and helper and removes the directory; workers and helpers whose parent died exit by themselves.
"""
from __future__ import annotations

import gc
import os
import pickle
import shutil
import tempfile
import traceback
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch

from envs.base import MultiAgentEnv, Step, first_unavailable
from envs.errors import UsageError
from envs.flatland.rail import RailTask
from envs.flatland.tasks import FlatlandTask, build_episode
from envs.processes import receive_while_parent_lives, worker_context
from envs.seeding import child_seed
from envs.spec import EnvSpec

PER_STEP = ("obs", "state", "avail", "alive", "neighbours")
INFO = ("episode_limit", "completion", "deadlocked", "score")
POLL_SECONDS = 0.2


ENV_OPTIONS = ("workers", "build_ahead")  # FlatlandEnv's own; tree_depth and state also shape the spec; the rest set the task


class WorkerError(RuntimeError):
    """A Flatland worker process raised or died; all workers have been shut down."""


class Shard:
    """A contiguous slice of the batch, stepped one environment after another (in a worker or in-process).

    ``helper`` is the pipe to the process that builds this shard's next episodes into ``directory``
    (module docstring); without it every episode is built here."""

    def __init__(self, task: FlatlandTask, seeds: list[int], tree_depth: int, state: str, helper=None,
                 directory: Path | None = None):
        self.envs = [RailTask(task, s, tree_depth, state) for s in seeds]
        self.helper, self.directory = helper, directory

    def warnings(self) -> list[str]:
        """Warnings from the resets since the last call."""
        out = [w for env in self.envs for w in env.new_warnings]
        for env in self.envs:
            env.new_warnings = []
        return out

    def reset(self) -> dict[str, np.ndarray]:
        return _stack([self._next_episode(i) for i in range(len(self.envs))], PER_STEP)

    def _next_episode(self, i: int) -> dict[str, np.ndarray]:
        """Start environment ``i``'s next episode (built ahead if the helper has it) and order the one after."""
        env = self.envs[i]
        out = env.reset(self._built(i, env.episode))
        if self.helper is not None:
            try:
                self.helper.send((i, env.episode))
            except OSError:
                self.helper = None  # the helper is gone: build every episode here from now on
        return out

    def _built(self, i: int, episode: int) -> tuple | None:
        if self.helper is None:
            return None
        try:
            with open(self.directory / built_name(i, episode), "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Step every environment; returns the step's data (``final``) and the data to act on next
        (``fresh``: the new episode where one ended)."""
        final, fresh = [], []
        for i, (env, act) in enumerate(zip(self.envs, actions)):
            out = env.step(act)
            final.append(out)
            fresh.append(self._next_episode(i) if out["done"] else out)
        return _stack(final, PER_STEP + INFO + ("agent_reward", "done")), _stack(fresh, PER_STEP)


def _stack(rows: list[dict[str, np.ndarray]], keys) -> dict[str, np.ndarray]:
    """One environment's arrays per row -> the shard's arrays, environments first."""
    return {k: np.stack([r[k] for r in rows]) for k in keys}


def built_name(i: int, episode: int) -> str:
    return f"{i}_{episode}.pkl"


def _build_ahead(conn, task: FlatlandTask, seeds: list[int], directory: Path, parent: int) -> None:
    """Helper main loop: build the episodes the shard orders, ``(env, episode)``, into ``directory`` at
    idle CPU priority, newest order per environment, until ``None``. Any error ends the helper quietly:
    the shard then builds its episodes itself and reports the error if it happens there too."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        try:
            os.nice(19)
        except OSError:
            pass
    gc.freeze()
    orders, written = {}, {}  # env -> episode to build; env -> file built for it
    try:
        while True:
            while not orders or conn.poll(0):
                message = receive_while_parent_lives(conn, parent)
                if message is None:
                    return
                i, episode = message
                if i in written:  # the shard has moved past it: loaded, or built there
                    written.pop(i).unlink(missing_ok=True)
                orders[i] = episode
            i, episode = next(iter(orders.items()))
            del orders[i]
            path = directory / built_name(i, episode)
            with open(path.with_suffix(".tmp"), "wb") as f:
                pickle.dump(build_episode(task, seeds[i], episode), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(path.with_suffix(".tmp"), path)  # never seen half written
            written[i] = path
    except BaseException:  # noqa: B902 - EOF, interrupt or failure: the shard carries on without help
        return
    finally:
        conn.close()


def _serve(conn, task: FlatlandTask, seeds: list[int], tree_depth: int, state: str, helper, directory,
           parent: int) -> None:
    """Worker main loop: build a shard, answer ("reset",) and ("step", actions) until ("close",)."""
    gc.freeze()  # the parent's heap, inherited by fork: never traversed (nor copied) by this process's gc
    try:
        shard = Shard(task, seeds, tree_depth, state, helper, directory)
        while True:
            command, *args = receive_while_parent_lives(conn, parent)
            if command == "close":
                break
            result = shard.reset() if command == "reset" else shard.step(*args)
            conn.send(("ok", result, shard.warnings()))
    except (EOFError, KeyboardInterrupt):
        pass
    except BaseException:  # noqa: B902 - report anything, the parent decides
        conn.send(("error", traceback.format_exc(), []))
    finally:
        conn.close()


class FlatlandEnv(MultiAgentEnv):
    """``num_envs`` Flatland environments of one task (see module docstring for workers)."""

    def __init__(self, spec: EnvSpec, task: FlatlandTask, tree_depth: int, state: str, num_envs: int = 1,
                 device: str | torch.device = "cpu", seed: int = 0, workers: int | None = None, checked: bool = True,
                 build_ahead: bool = True):
        """``task`` and its ``spec`` (for this ``tree_depth`` and ``state``) from the Flatland family:
        ``envs.make("flatland/5_agents", ...)`` builds one."""
        if num_envs < 1:
            raise UsageError(f"num_envs must be >= 1, got {num_envs}")
        workers = min(num_envs, os.cpu_count() or 1) if workers is None else workers
        if not 1 <= workers <= num_envs:
            raise UsageError(f"workers (processes stepping environments, this one included) must be between 1 "
                             f"and num_envs={num_envs}, got {workers}")
        self.num_envs, self.device, self.checked = num_envs, torch.device(device), checked
        seeds = [child_seed(seed, b) for b in range(num_envs)]  # independent streams, no overlap
        bounds = np.linspace(0, num_envs, workers + 1).round().astype(int)
        self._slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self._procs, self._conns, self._helpers, self._seen_warnings = [], [], [], set()
        root = Path(tempfile.mkdtemp(prefix="flatland-episodes-")) if build_ahead else None
        ctx = worker_context()
        me = os.getpid()
        for k, part in enumerate(self._slices):
            helper, directory = None, None
            if build_ahead:
                directory = root / f"shard_{k}"
                directory.mkdir()
                helper, helper_end = ctx.Pipe()
                self._helpers.append(ctx.Process(target=_build_ahead, args=(helper_end, task, seeds[part], directory, me),
                                                 daemon=True, name=f"flatland-builder-{part.start}"))
                self._helpers[-1].start()
                helper_end.close()
            if k == 0:
                self._local = Shard(task, seeds[part], tree_depth, state, helper, directory)  # stepped here
                continue
            conn, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, task, seeds[part], tree_depth, state, helper, directory, me),
                               daemon=True, name=f"flatland-worker-{part.start}")
            proc.start()
            child.close()
            if helper is not None:
                helper.close()  # the worker talks to its helper
            self._procs.append(proc)
            self._conns.append(conn)
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns, self._helpers, self._local, root)
        self.spec = spec
        self._avail = None

    # ----- talking to the shards -----------------------------------------------------------------------
    def _call(self, command: str, actions: np.ndarray | None = None):
        """Start the worker shards, step this process's shard meanwhile, then collect, in batch order."""
        for conn, part in zip(self._conns, self._slices[1:]):
            self._send(conn, (command,) if actions is None else (command, actions[part]))
        try:
            mine = self._local.reset() if command == "reset" else self._local.step(actions[self._slices[0]])
        except BaseException:
            self.close()  # the workers' answers would otherwise be read as the next call's
            raise
        self._surface(self._local.warnings())
        return [mine] + [self._receive(i) for i in range(len(self._conns))]

    def _send(self, conn, message) -> None:
        try:
            conn.send(message)
        except (BrokenPipeError, ConnectionResetError, OSError) as err:
            self.close()
            raise WorkerError(f"a Flatland worker is gone ({err}); all workers were shut down") from err

    def _receive(self, i: int):
        conn, proc = self._conns[i], self._procs[i]
        try:
            while not conn.poll(POLL_SECONDS):
                if not proc.is_alive():
                    raise EOFError
            status, payload, messages = conn.recv()
        except (EOFError, ConnectionResetError, OSError) as err:
            code = proc.exitcode
            self.close()
            raise WorkerError(f"Flatland worker {proc.name} died (exit code {code}); all workers were shut down") from err
        if status == "error":
            self.close()
            raise WorkerError(f"Flatland worker {proc.name} failed; all workers were shut down:\n{payload}")
        self._surface(messages)
        return payload

    def _surface(self, messages: list[str]) -> None:
        """flatland's generator warnings (e.g. cities that could not be placed), once per distinct text."""
        for text in messages:
            if text not in self._seen_warnings:
                self._seen_warnings.add(text)
                warnings.warn(f"flatland: {text} (shown once)", stacklevel=3)

    def _tensor(self, parts: list[np.ndarray]) -> torch.Tensor:
        return torch.as_tensor(np.concatenate(parts)).to(self.device)

    def _gather(self, rows: list[dict], keys=PER_STEP) -> dict[str, torch.Tensor]:
        return {k: self._tensor([r[k] for r in rows]) for k in keys}

    # ----- the interface -------------------------------------------------------------------------------
    # info: episode_limit, completion, deadlocked, score [B] and agent_reward [B,N] describe the step just
    # taken; neighbours [B,N,N] goes with ``obs`` (the observation to act on next).
    def reset(self) -> Step:
        now = self._gather(self._call("reset"))
        self._avail = now["avail"]
        zeros = torch.zeros(self.num_envs, device=self.device)
        no = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        info = {"episode_limit": no, "completion": zeros, "deadlocked": zeros, "score": zeros,
                "agent_reward": torch.zeros(self.num_envs, self.spec.n_agents, device=self.device),
                "neighbours": now["neighbours"]}
        seen = (now["obs"], now["state"], now["avail"], now["alive"])
        return Step(*seen, zeros, no, info, *seen)

    def step(self, actions: torch.Tensor) -> Step:
        if self.checked:
            self._check(actions)
        results = self._call("step", actions.detach().cpu().numpy())
        final = self._gather([r[0] for r in results], PER_STEP + INFO + ("agent_reward", "done"))
        now = self._gather([r[1] for r in results])
        self._avail = now["avail"]
        info = {k: final[k] for k in INFO + ("agent_reward",)}
        info["neighbours"] = now["neighbours"]
        return Step(now["obs"], now["state"], now["avail"], now["alive"], final["agent_reward"].sum(-1), final["done"],
                    info, final["obs"], final["state"], final["avail"], final["alive"])

    def _check(self, actions: torch.Tensor) -> None:
        if actions.shape != (self.num_envs, self.spec.n_agents):
            raise ValueError(f"actions must have shape {(self.num_envs, self.spec.n_agents)}, got {tuple(actions.shape)}")
        bad = first_unavailable(self._avail, actions)
        if bad is not None:
            b, n, a = bad
            allowed = self._avail[b, n].nonzero().flatten().tolist()
            raise ValueError(f"{self.spec.task}: environment {b}, agent {n} chose unavailable action "
                             f"{a} (available: {allowed}; 0 = left-most way, 1 = other way, 2 = stop)")

    def close(self) -> None:
        self._finalizer()


def _shutdown(procs, conns, helpers, local: Shard, root: Path | None) -> None:
    for helper in helpers:  # nothing to finish: a built episode is written whole or not at all
        helper.terminate()
    if local.helper is not None:
        local.helper.close()
    for conn in conns:
        try:
            conn.send(("close",))
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
    for proc in procs:
        proc.join(timeout=2)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=2)
    for conn in conns:
        conn.close()
    for child in (*procs, *helpers):  # on a busy machine a child may not get to exit in time: make sure
        child.join(timeout=2)
        if child.is_alive():
            child.kill()
            child.join()
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
