"""Adding a task family takes its folder, a registry entry and (for algorithms that need them) presets:
a toy family registered here runs through a suite and the analysis without any other change."""
from __future__ import annotations

import json

import pytest
import torch

import envs
from analysis import make_plots
from envs.base import MultiAgentEnv, Step
from envs.spec import Family, Score
from suites import run


class MatchingGame(MultiAgentEnv):
    """Two agents earn 1 for each step on which they pick the same of two actions; 4 steps an episode."""

    LIMIT = 4

    def __init__(self, spec, num_envs: int, device, seed: int):
        self.spec, self.num_envs, self.device = spec, num_envs, torch.device(device)
        self.t = torch.zeros(num_envs, dtype=torch.long)
        self.matched = torch.zeros(num_envs)

    def _observe(self, reward, done, info) -> Step:
        obs = torch.stack([torch.nn.functional.one_hot(self.t, self.LIMIT).float()] * 2, 1)
        return Step(obs=obs, state=obs.flatten(1), avail_actions=torch.ones(self.num_envs, 2, 2, dtype=torch.bool),
                    alive=torch.ones(self.num_envs, 2, dtype=torch.bool), reward=reward, done=done, info=info)

    def reset(self) -> Step:
        self.t.zero_()
        self.matched.zero_()
        no = torch.zeros(self.num_envs, dtype=torch.bool)
        return self._observe(torch.zeros(self.num_envs), no, {"episode_limit": no, "matched": self.matched.clone()})

    def step(self, actions: torch.Tensor) -> Step:
        reward = (actions[:, 0] == actions[:, 1]).float()
        self.matched += reward / self.LIMIT
        self.t += 1
        done = self.t >= self.LIMIT
        info = {"episode_limit": done.clone(), "matched": self.matched.clone()}
        self.t = torch.where(done, 0, self.t).clamp(max=self.LIMIT - 1)
        final = self._observe(reward, done, info)
        self.matched = torch.where(done, 0.0, self.matched)
        out = self._observe(reward, done, info)
        out.final_obs, out.final_state = final.obs, final.state
        out.final_avail_actions, out.final_alive = final.avail_actions, final.alive
        return out


class Toy(Family):
    name, title = "toy", "Toy"
    backends = {"toy": "toy"}
    metric = "matched"
    scores = (Score("matched", 1.0, "steps matched"), Score("return_mean", 4.0, "return / 4"))
    outcomes = (("matched", "matched"),)
    action_masks = False

    def tasks(self):
        return ["match"]

    def spec(self, name, backend):
        return self.describe(name, backend, n_agents=2, obs_dim=4, state_dim=8, n_actions=2, episode_limit=4)

    def make(self, name, backend, num_envs, device, seed, *, compile=False, one_episode_each=False, **options):
        return MatchingGame(self.spec(name, backend), num_envs, device, seed)


@pytest.fixture
def toy_family(monkeypatch):
    monkeypatch.setitem(envs.FAMILIES, "toy", Toy())


def test_a_registered_family_runs_through_a_suite_and_the_analysis(toy_family, tmp_path, capsys):
    assert "toy/match" in envs.list_tasks()
    args = ["smoke", "--tasks", "toy/match", "--algorithms", "mappo", "--seeds", "2", "--steps", "256",
            "--results", str(tmp_path), "--backend", "sim"]  # another family's backend leaves toy on its own
    assert run.main(args) == 0
    config = json.loads((tmp_path / "runs/smoke/toy_match/mappo/seed_0/1/config.json").read_text())
    assert config["family"] == "toy" and config["backend"] == "toy"
    assert config["env_spec"]["scores"][0] == {"metric": "matched", "scale": 1.0, "label": "steps matched"}
    metrics = json.loads((tmp_path / "runs/smoke/toy_match/mappo/seed_0/1/metrics.json").read_text())
    assert {"eval/matched", "collect/matched", "absolute/matched"} <= set(metrics)  # the family's outcome, logged

    assert make_plots.main(["--results", str(tmp_path), "--reps", "20"]) == 0
    assert "Toy, suite smoke: 2 run(s)" in capsys.readouterr().out
    assert (tmp_path / "tables" / "smoke_toy_absolute_matched.csv").exists()
    assert make_plots.main(["--results", str(tmp_path), "--reps", "20", "--metric", "return_mean"]) == 0
    assert (tmp_path / "figures" / "smoke_toy_return_mean_profiles.png").exists()


def test_a_family_without_presets_is_refused_by_the_world_models_with_the_supported_families(toy_family):
    from algorithms import make_config

    with pytest.raises(envs.UsageError, match="mabl has no settings for the toy family; supported: smac, flatland"):
        make_config("mabl", envs.env_spec("toy/match"), "tiny")
