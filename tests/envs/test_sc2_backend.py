"""The StarCraft II backend without the game: smacv2's ``StarCraft2Env`` replaced by a stand-in (tests/stand_ins) at
the import where smacv2 is called. The adapter's translation, one game per process, each fault kind, the runner's
options, a whole suite through ``--backend sc2`` with its records and analysis, resume after kill -9, and the
install check's messages. The ``sc2`` test compares the real game's sizes with the simulator's."""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import envs
from envs.seeding import child_seed
from envs.smac import check_sc2
from envs.smac.family import SMAC
from envs.smac.games import RESTART_ATTEMPTS, GameError
from envs.smac.maps import MAPS
from envs.smac.sc2 import Sc2Env, sc2_available
from suites import run as cli
from tests.helpers import ROOT

STAND_INS = ROOT / "tests" / "stand_ins"
FAKE_SPEC = SMAC.describe("3m", "sc2", n_agents=2, obs_dim=4, state_dim=5, n_actions=3, episode_limit=3)


class TinyGame:
    """smacv2's StarCraft2Env API: 2 agents, 3 actions, episodes of 3 steps; every second episode is won at t=2."""

    def __init__(self, map_name, seed):
        self.t, self.episode = 0, 0

    def get_env_info(self):
        return {"n_agents": 2, "obs_shape": 4, "state_shape": 5, "n_actions": 3, "episode_limit": 3}

    def reset(self):
        self.t = 0
        self.episode += 1
        return self.get_obs(), self.get_state()

    def step(self, actions):
        assert len(actions) == 2
        self.t += 1
        won = self.episode % 2 == 0 and self.t == 2
        return 1.0, won or self.t >= 3, {"battle_won": won, "dead_allies": 0, "dead_enemies": 3 if won else 0}

    def get_obs(self):
        return [np.full(4, self.t, dtype=np.float32) for _ in range(2)]

    def get_state(self):
        return np.full(5, self.t, dtype=np.float32)

    def get_avail_actions(self):
        return [[0, 1, 1], [1, 0, 0] if self.t == 2 else [0, 1, 1]]  # agent 1 "dead" at t=2

    def close(self):
        pass


class NeverStarts(TinyGame):
    def reset(self):
        raise ConnectionError("SC2 did not come up")


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """smacv2 importable as the stand-in and a StarCraft II 4.10 folder with two SMAC maps; returns a function that
    sets the faults the games will play (``kind:seed:step``; forked workers inherit the environment)."""
    root = tmp_path / "StarCraftII"
    (root / "Versions" / "Base75689").mkdir(parents=True)
    (root / "Maps" / "SMAC_Maps").mkdir(parents=True)
    for name in ("3m", "2s3z"):
        (root / "Maps" / "SMAC_Maps" / f"{name}.SC2Map").write_bytes(name.encode())
    monkeypatch.setenv("SC2PATH", str(root))
    monkeypatch.syspath_prepend(str(STAND_INS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STAND_INS), os.environ.get("PYTHONPATH", "")]))
    for name in [m for m in sys.modules if m == "smacv2" or m.startswith("smacv2.")]:
        monkeypatch.delitem(sys.modules, name)
    (tmp_path / "faults").mkdir()
    monkeypatch.setenv("SC2_STAND_IN_FAULT_DIR", str(tmp_path / "faults"))

    def faults(*entries: str) -> None:
        monkeypatch.setenv("SC2_STAND_IN_FAULTS", ",".join(entries))

    faults()
    yield faults
    for name in [m for m in sys.modules if m == "smacv2" or m.startswith("smacv2.")]:
        del sys.modules[name]  # the stand-in leaves with its test


def _random(avail: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return torch.rand(avail.shape, generator=g).masked_fill(~avail, -1.0).argmax(-1)


def test_adapter_batches_resets_and_closes_its_processes():
    env = Sc2Env(FAKE_SPEC, num_envs=2, env_factory=TinyGame)
    assert env.spec.backend == "sc2" and env.spec.n_agents == 2
    step = env.reset()
    assert step.obs.shape == (2, 2, 4) and step.state.shape == (2, 5) and step.avail_actions.dtype == torch.bool
    acts = torch.ones(2, 2, dtype=torch.long)
    env.step(acts)
    step = env.step(acts)
    assert step.alive[:, 1].tolist() == [False, False] and step.alive[:, 0].all()
    step = env.step(torch.tensor([[1, 0], [1, 0]]))
    assert step.done.all() and step.info["episode_limit"].all() and not step.info["won"].any()
    assert not step.info["dropped"].any()
    assert step.final_obs[0, 0, 0].item() == 3 and step.obs[0, 0, 0].item() == 0  # auto-reset
    env.step(acts)
    step = env.step(acts)  # episode 2 is won at t=2
    assert step.done.all() and step.info["won"].all() and not step.info["episode_limit"].any()
    procs = list(env.games.procs)
    assert len({p.pid for p in procs}) == 2  # one process per game
    env.close()
    assert not any(p.is_alive() for p in procs)


def test_a_game_whose_sizes_differ_from_smacs_layout_is_refused_and_closed():
    with pytest.raises(RuntimeError, match=r"StarCraft II's 3m does not have SMAC's layout: n_agents 2 \(SMAC's layout: 3\)"):
        Sc2Env(envs.env_spec("smac/3m", "sim"), num_envs=2, env_factory=TinyGame)


def test_missing_starcraft_is_one_clear_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    assert not sc2_available()
    with pytest.raises(envs.UsageError, match="install smacv2.*check_sc2"):
        envs.make("smac/3m", backend="sc2")


def test_the_runners_options_reach_the_game(stand_in):
    """The suite's training loop and evaluation build environments with checked=False (this was a TypeError)."""
    env = envs.make("smac/3m", num_envs=2, backend="sc2", checked=False, one_episode_each=True)
    env.reset()
    env.step(torch.zeros(2, 3, dtype=torch.long))  # no-op is unavailable to living units: unchecked, it goes through
    env.close()
    env = envs.make("smac/3m", num_envs=2, backend="sc2")
    env.reset()
    with pytest.raises(ValueError, match=r"environment 0, agent 0: action 0 \(no-op\) is not available"):
        env.step(torch.zeros(2, 3, dtype=torch.long))
    env.close()


@pytest.mark.parametrize("kind, reason", [
    ("raise", "raised ConnectionError: Connection already closed"),
    ("relaunch", "lost its connection and smacv2 relaunched it"),
    ("hang", r"did not answer within 1 s \(hung\); restarted"),
    ("die", r"died \(its process exited with code 1\); restarted"),
])
def test_a_faulted_game_is_restarted_and_its_episode_dropped(stand_in, kind, reason):
    stand_in(f"{kind}:{child_seed(3, 1)}:4")  # game 1 faults on its 4th step
    env = envs.make("smac/3m", num_envs=2, backend="sc2", seed=3, timeout=1)
    step, g = env.reset(), torch.Generator().manual_seed(0)
    before = step
    for _ in range(4):
        before, step = step, env.step(_random(step.avail_actions, g))
    assert step.info["dropped"].tolist() == [False, True] and step.done[1] and step.info["episode_limit"][1]
    assert not step.info["won"][1] and step.reward[1] == 0
    assert torch.equal(step.final_obs[1], before.obs[1])  # the dropped episode ends where it was
    ((row, line),) = env.take_notices()
    assert row == 1 and "StarCraft II game 1 (3m)" in line and "its episode in flight (4 steps) is dropped" in line
    assert re.search(reason, line)
    for _ in range(30):  # the game plays on after its restart (and never faults again)
        step = env.step(_random(step.avail_actions, g))
        assert not step.info["dropped"].any()
    assert env.take_notices() == []
    env.close()


def test_a_game_that_cannot_be_restarted_stops_with_the_reason():
    env = Sc2Env(FAKE_SPEC, num_envs=1, env_factory=NeverStarts, timeout=5, start_timeout=5)
    with pytest.raises(GameError, match=rf"game 0 of 3m could not be started again \({RESTART_ATTEMPTS} attempts\) after it "
                                        r"raised ConnectionError: SC2 did not come up \(.*\)$"):
        env.reset()
    env.close()


def _suite(results: Path, *extra: str) -> list[str]:
    return ["smoke", "--tasks", "smac/3m", "--algorithms", "mappo", "--backend", "sc2", "--seeds", "2", "--steps", "1024",
            "--eval-episodes", "4", "--results", str(results), *extra]


def test_a_suite_runs_on_the_game_with_faults_and_is_recorded_and_analysed_by_game_version(stand_in, tmp_path, capsys):
    from analysis import make_plots

    # a game of each run faults once in training (at its 100th step: evaluations play one episode, 60 steps at most)
    stand_in(f"raise:{child_seed(0, 1)}:100", f"die:{child_seed(1, 0)}:100")
    results = tmp_path / "results"
    assert cli.main(_suite(results)) == 0
    for seed in (0, 1):
        attempt = results / "runs" / "smoke" / "smac_3m_sc2" / "mappo" / f"seed_{seed}" / "1"
        assert json.loads((attempt / "run.json").read_text())["status"] == "COMPLETED"
        metrics = json.loads((attempt / "metrics.json").read_text())
        assert sum(metrics["collect/dropped_episodes"]["values"]) == 1  # counted, and in no mean
        assert "dropped" in (attempt / "cout.txt").read_text()  # the run's log says which game and why
        game = json.loads((attempt / "info.json").read_text())["game"]
        assert game["game_version"] == "4.10.0.75689" and game["build_used"] == "Base75689"
        assert game["map"] == {"file": "Maps/SMAC_Maps/3m.SC2Map", "sha256": hashlib.sha256(b"3m").hexdigest()}
        assert game["smacv2"]["path"] == str(STAND_INS / "smacv2")
    # another game version's run of the same settings is analysed apart, never pooled
    other = results / "runs" / "smoke" / "smac_3m_sc2" / "mappo" / "seed_1" / "1" / "info.json"
    info = json.loads(other.read_text())
    info["game"]["game_version"] = "4.6.2.69232"
    other.write_text(json.dumps(info))
    capsys.readouterr()
    assert make_plots.main(["--results", str(results), "--reps", "20"]) == 0
    out = capsys.readouterr().out
    assert "SMAC (StarCraft II), game version 4.10.0.75689, suite smoke: 1 run(s)" in out
    assert "SMAC (StarCraft II), game version 4.6.2.69232, suite smoke: 1 run(s)" in out
    assert (results / "tables" / "smoke_smac_sc2_4_10_0_75689_absolute_win_rate.csv").is_file()


def test_a_run_on_the_game_killed_with_sigkill_resumes_and_completes(stand_in, tmp_path, monkeypatch):
    monkeypatch.setenv("SC2_STAND_IN_STEP_SECONDS", "0.01")  # slow enough to be killed mid-run
    results = tmp_path / "results"
    command = [sys.executable, "-m", "suites.run", *_suite(results, "--seeds", "1", "--steps", "5120")]
    log = results / "runs" / "smoke" / "smac_3m_sc2" / "mappo" / "seed_0" / "1" / "cout.txt"
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (log.is_file() and "step 1280:" in log.read_text()):  # a checkpoint past step 0 exists
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.2)
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)  # as a lost node; the game processes then exit by themselves
    proc.wait()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = log.parent.parent
    last = max(int(p.name) for p in run_dir.iterdir() if p.name.isdigit())
    assert last >= 2 and json.loads((run_dir / str(last) / "run.json").read_text())["status"] == "COMPLETED"
    steps = json.loads((run_dir / str(last) / "metrics.json").read_text())["eval/win_rate"]["steps"]
    assert steps == [0, 1280, 2560, 3840, 5120]


def test_the_install_check_names_what_is_missing(tmp_path, monkeypatch, capsys):
    root = tmp_path / "StarCraftII"
    monkeypatch.setenv("SC2PATH", str(root))
    monkeypatch.setattr(check_sc2, "smacv2_found", lambda: (False, "No module named 'smacv2'"))
    assert check_sc2.main([]) == 1
    out = capsys.readouterr().out
    assert "missing: smacv2" in out and "pip install -e '.[sc2]'" in out
    assert f"missing: StarCraft II at {root}" in out
    (root / "Versions" / "Base69232").mkdir(parents=True)
    (root / "Maps" / "SMAC_Maps").mkdir(parents=True)
    (root / "Maps" / "SMAC_Maps" / "3m.SC2Map").write_bytes(b"3m")
    monkeypatch.setattr(check_sc2, "smacv2_found", lambda: (True, "smacv2 1.0.0"))
    assert check_sc2.main([]) == 1
    out = capsys.readouterr().out
    assert "ok: smacv2 1.0.0" in out
    assert "missing: StarCraft II 4.10 (Versions/Base75689); found Base69232" in out
    assert f"missing: {len(MAPS) - 1} SMAC map(s) in" in out and "3s5z_vs_3s6z" in out and "3m," not in out
    (root / "Versions" / "Base75689").mkdir()
    for name in MAPS:
        (root / "Maps" / "SMAC_Maps" / f"{name}.SC2Map").write_bytes(b"map")
    assert check_sc2.main([]) == 0
    assert "StarCraft II backend ready" in capsys.readouterr().out


@pytest.mark.sc2
@pytest.mark.parametrize("map_name", sorted(MAPS))
def test_the_real_games_sizes_are_the_simulators(map_name):
    from smacv2.env import StarCraft2Env

    info = StarCraft2Env(map_name=map_name).get_env_info()  # sizes come from the map's parameters: no launch
    sim = envs.env_spec(f"smac/{map_name}", "sim")
    assert (info["n_agents"], info["obs_shape"], info["state_shape"], info["n_actions"], info["episode_limit"]) == \
        (sim.n_agents, sim.obs_dim, sim.state_dim, sim.n_actions, sim.episode_limit)
