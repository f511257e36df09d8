"""StarCraft II games, one per worker process, as on-policy's SubprocVecEnv and the official MAMBA's Ray workers
run them: a batched step sends every game its actions, then collects the answers, so N games cost about one
game step rather than N (measured in docs/performance.md).

Observations, states and available actions come back through shared memory: each worker writes its own rows,
and the pipe carries only the reward, the end flag and smacv2's info dict. A worker resets its game as soon as
an episode ends (slot 0 of its rows keeps the episode's last observation, slot 1 the new episode's first).

A game *faults* when it raises, when it does not answer within its timeout (a hung game), or when its process
dies. ``Games.step`` reports a fault instead of raising; ``Games.restart`` then kills that process and starts the
game again with the same seed (as smacv2's own ``full_restart`` does). Workers whose parent died exit by
themselves.
"""
from __future__ import annotations

import os
import signal
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from envs.processes import receive_while_parent_lives, worker_context

POLL_SECONDS = 0.2  # how often a waiting parent looks whether a silent game's process is still alive
RESTART_ATTEMPTS = 3  # a game that cannot be started this many times in a row stops the run
SLOTS = 2  # 0: after the step; 1: what to act on next (the new episode's start where the step ended one)


class GameError(RuntimeError):
    """A StarCraft II game could not be (re)started: the run cannot go on."""


@dataclass(frozen=True)
class Answer:
    """One game's step, as smacv2's ``StarCraft2Env.step`` returned it."""

    reward: float
    terminated: bool
    info: dict


@dataclass(frozen=True)
class Layout:
    """The sizes the shared rows are made for (the task's spec)."""

    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int

    def shapes(self, games: int) -> dict[str, tuple[tuple[int, ...], str]]:
        n = self.n_agents
        return {"obs": ((games, SLOTS, n, self.obs_dim), "f"), "state": ((games, SLOTS, self.state_dim), "f"),
                "avail": ((games, SLOTS, n, self.n_actions), "b")}


def shared_views(buffers: dict, layout: Layout, games: int) -> dict[str, np.ndarray]:
    """numpy arrays over the shared buffers: obs and state float32, available actions int8."""
    return {k: np.frombuffer(buffers[k], dtype=np.float32 if code == "f" else np.int8).reshape(shape)
            for k, (shape, code) in layout.shapes(games).items()}


def _write(views: dict[str, np.ndarray], row: int, slot: int, game) -> None:
    views["obs"][row, slot] = np.asarray(game.get_obs(), dtype=np.float32)
    views["state"][row, slot] = np.asarray(game.get_state(), dtype=np.float32)
    views["avail"][row, slot] = np.asarray(game.get_avail_actions(), dtype=np.int8)


def describe_game(game) -> dict:
    """The build the running game reports (pysc2's ``ping``: game version and base build), where it can."""
    try:
        ping = game._controller.ping()
    except Exception as err:  # noqa: BLE001 - a record without it is still a record; say why
        return {"reported": f"unavailable ({type(err).__name__}: {err})"}
    return {"game_version": str(ping.game_version), "base_build": int(ping.base_build),
            "data_build": int(ping.data_build)}


def _play(conn, factory: Callable, map_name: str, seed: int, row: int, buffers: dict, layout: Layout, games: int,
          parent: int) -> None:
    """Worker main loop: build the game, answer ("info",), ("describe",), ("reset",) and ("step", actions)
    until ("close",). smacv2's game resets only when asked, so an ended episode is reset here at once."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # the game's own processes (StarCraft II itself) go with this one when it is killed
    game = None
    try:
        views = shared_views(buffers, layout, games)
        game = factory(map_name, seed)
        while True:
            command, *args = receive_while_parent_lives(conn, parent)
            if command == "close":
                break
            answer = None
            if command == "info":
                answer = game.get_env_info()
            elif command == "describe":
                answer = describe_game(game)
            elif command == "reset":
                game.reset()
                _write(views, row, 1, game)
            else:
                reward, terminated, info = game.step(args[0])
                if info:  # empty: smacv2 lost the game's connection and relaunched it; no last observation
                    _write(views, row, 0, game)
                if terminated:
                    game.reset()
                    _write(views, row, 1, game)
                answer = Answer(float(reward), bool(terminated), dict(info))
            conn.send(("ok", answer))
    except (EOFError, KeyboardInterrupt):
        pass
    except BaseException as err:  # noqa: B902 - the parent decides; it gets the cause and where it arose
        where = traceback.extract_tb(err.__traceback__)[-1]
        conn.send(("error", f"{type(err).__name__}: {err} ({where.filename}:{where.lineno})"))
    finally:
        if game is not None:
            try:
                game.close()
            except Exception:  # noqa: BLE001 - a game that breaks on closing is closed as far as it goes
                pass
        conn.close()


class Games:
    """``len(seeds)`` games of one map, one worker process each, with shared rows for what they observe."""

    def __init__(self, factory: Callable, map_name: str, seeds: list[int], layout: Layout, timeout: float,
                 start_timeout: float):
        """``timeout``: seconds a step or a reset may take; ``start_timeout``: a launch (the first reset)."""
        self.factory, self.map_name, self.seeds, self.layout = factory, map_name, seeds, layout
        self.timeout, self.start_timeout = timeout, start_timeout
        self.ctx = worker_context()
        games = len(seeds)
        self.buffers = {k: self.ctx.RawArray(code, int(np.prod(shape))) for k, (shape, code) in layout.shapes(games).items()}
        self.views = shared_views(self.buffers, layout, games)
        self.procs: list = [None] * games
        self.conns: list = [None] * games
        for b in range(games):
            self._start(b)
        self._finalizer = weakref.finalize(self, _shutdown, self.procs, self.conns)

    def __len__(self) -> int:
        return len(self.seeds)

    def _start(self, b: int) -> None:
        conn, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_play, name=f"sc2-game-{b}", daemon=True,
                                args=(child, self.factory, self.map_name, self.seeds[b], b, self.buffers, self.layout,
                                      len(self.seeds), os.getpid()))
        proc.start()
        child.close()
        self.procs[b], self.conns[b] = proc, conn

    # ----- asking and answering ------------------------------------------------------------------------
    def ask(self, command: str, payloads: list | None = None, timeout: float | None = None) -> list:
        """Send ``command`` (with ``payloads[b]`` for game ``b``) to every game, then collect: each game's answer,
        or a :class:`str` saying how it faulted."""
        faults = {}
        for b, conn in enumerate(self.conns):
            try:
                conn.send((command,) if payloads is None else (command, payloads[b]))
            except (BrokenPipeError, ConnectionResetError, OSError):
                faults[b] = self._died(b)
        seconds = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        return [faults[b] if b in faults else self._collect(b, deadline, seconds) for b in range(len(self))]

    def _collect(self, b: int, deadline: float, seconds: float):
        conn, proc = self.conns[b], self.procs[b]
        try:
            while not conn.poll(max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))):
                if not proc.is_alive():
                    return self._died(b)
                if time.monotonic() >= deadline:
                    return f"did not answer within {seconds:g} s (hung)"
            status, payload = conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            return self._died(b)
        return payload if status == "ok" else f"raised {payload}"

    def _died(self, b: int) -> str:
        """How a game whose process is gone faulted: what it raised, if it said so before it exited."""
        try:
            if self.conns[b].poll(0):
                status, payload = self.conns[b].recv()
                if status == "error":
                    return f"raised {payload}"
        except (EOFError, ConnectionResetError, OSError):
            pass
        self.procs[b].join(timeout=POLL_SECONDS)
        return f"died (its process exited with code {self.procs[b].exitcode})"

    # ----- restarts ------------------------------------------------------------------------------------
    def restart(self, b: int, reason: str) -> None:
        """Kill game ``b``'s process and start the game again, reset (slot 1 of its rows); a game that fails to
        start :data:`RESTART_ATTEMPTS` times in a row raises :class:`GameError`."""
        for _attempt in range(RESTART_ATTEMPTS):
            _stop(self.procs[b], self.conns[b])
            self._start(b)
            answer = self.ask_one(b, "reset", self.start_timeout)
            if not isinstance(answer, str):
                return
        last = "" if answer == reason else f"; the last attempt {answer}"
        raise GameError(f"StarCraft II game {b} of {self.map_name} could not be started again ({RESTART_ATTEMPTS} "
                        f"attempts) after it {reason}{last}")

    def ask_one(self, b: int, command: str, timeout: float | None = None):
        """Game ``b``'s answer to ``command`` alone, or how it faulted."""
        timeout = self.timeout if timeout is None else timeout
        try:
            self.conns[b].send((command,))
        except (BrokenPipeError, ConnectionResetError, OSError):
            return self._died(b)
        return self._collect(b, time.monotonic() + timeout, timeout)

    def close(self) -> None:
        self._finalizer()


def _stop(proc, conn) -> None:
    """Ask a game's worker to close its game, then make sure the process is gone."""
    try:
        conn.send(("close",))
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass
    proc.join(timeout=2)
    # A hung game does not read its pipe, and a worker that died leaves the game processes it started: kill its
    # process group (the worker made one of its own), whatever is left of it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError, PermissionError):
        if proc.is_alive():
            proc.kill()
    proc.join(timeout=2)
    conn.close()


def _shutdown(procs: list, conns: list) -> None:
    for proc, conn in zip(procs, conns):
        if proc is not None:
            _stop(proc, conn)
