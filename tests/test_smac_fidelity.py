"""The simulator against SC2 behaviour that SMAClite and SMAX made us check: stuck melee targeting,
enemies that never re-target, unmirrored spawns, passive agent units; and the scripted baselines."""
import importlib
import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest
import torch

import envs
from algorithms import make_algorithm, make_config
from algorithms.scripted.policies import POLICIES
from envs import UsageError
from envs.flatland.tasks import TASKS
from envs.smac.maps import MAPS
from envs.smac.tactical_view import ObservationDecoder
from tests.helpers import place, simulator

STOP = 1
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_stopped_army_on_3s_vs_5z_is_destroyed_well_before_the_time_limit():
    """Zealots that cannot reach the stalker they picked used to press against the others until the limit
    (91% of battles); SMAClite and SMAX kill every stalker in about 30 steps."""
    env = simulator("3s_vs_5z", num_envs=32, seed=0)
    step, running, lengths = env.reset(), torch.ones(32, dtype=torch.bool), torch.zeros(32)
    for t in range(1, env.map.limit + 1):
        step = env.step(step.avail_actions[..., STOP].long())  # stop while alive, no-op once dead
        ended = running & step.done
        assert not step.info["won"][ended].any() and not step.info["episode_limit"][ended].any()
        lengths[ended] = t
        running &= ~step.done
        if not running.any():
            break
    assert not running.any()
    assert lengths.max() < env.map.limit / 3


def _sealed_zealot(env):
    """corridor: zealot 0 in the lower-left corner of the room, walled in by zealots 1-3 on an arc of radius
    1.31 (gaps of 0 between them, 0.1 to the walls); zergling 0 (unit 6) starts with zealot 0 as target."""
    corner = (1.6, 1.6)
    ring = {1 + k: (corner[0] + 1.31 * math.cos(a), corner[1] + 1.31 * math.sin(a))
            for k, a in enumerate((0.0, math.pi / 4, math.pi / 2))}
    place(env, {0: corner, **ring, 6: (5.0, 5.0)}, alive={0, 1, 2, 3, 6})
    env.s.target[0, 6] = 0
    return ring


def test_an_enemy_gives_up_a_target_it_cannot_reach_for_one_it_can():
    env = simulator("corridor", seed=0)
    env.reset()
    ring = _sealed_zealot(env)
    hp = lambda u: float(env.s.hp[0, u] + env.s.shield[0, u])  # noqa: E731
    for _ in range(20):
        env.step(torch.tensor([[STOP, STOP, STOP, STOP, 0, 0]]))
    assert hp(0) == 150.0  # the sealed zealot was never reached
    assert int(env.s.target[0, 6]) in ring and sum(150.0 - hp(u) for u in ring) > 0


def test_enemies_prefer_a_unit_that_attacks_them():
    """Two marines within scan range of an enemy marine: it takes the one shooting at it, though farther."""
    env = simulator("3m", seed=0)
    env.reset()
    place(env, {0: (15.0, 16.0), 1: (14.0, 16.0), 3: (19.0, 16.0)}, alive={0, 1, 3})
    step = env.step(torch.tensor([[STOP, 6 + 0, 0]]))  # ally 1 (farther) attacks enemy 0 (unit 3)
    assert step.done.sum() == 0 and int(env.s.target[0, 3]) == 1


@pytest.mark.parametrize("name", [m for m, v in MAPS.items() if v.terrain in ("flat_band", "open")])
def test_the_armies_spawn_as_mirror_images(name):
    """Each army's offsets from its spawn point, in units of its spacing (the widest unit's diameter), are the
    other army's reflected across the line midway between the spawn points."""
    env = simulator(name)
    m, N, k = env.map, env.n_agents, min(env.n_agents, env.n_enemies)
    allies = (env.spawn[:N] - torch.tensor(m.ally_spawn)) / (2 * env.radius[:N].max())
    enemies = (env.spawn[N:] - torch.tensor(m.enemy_spawn)) / (2 * env.radius[N:].max())
    axis = torch.tensor(m.enemy_spawn) - torch.tensor(m.ally_spawn)
    axis = axis / axis.norm()
    reflected = allies - 2 * (allies * axis).sum(-1, keepdim=True) * axis
    torch.testing.assert_close(reflected[:k], enemies[:k], atol=1e-4, rtol=0)


def test_on_3m_each_marine_faces_its_mirror_image():
    env = simulator("3m")
    allies, enemies = env.spawn[:3], env.spawn[3:]
    assert torch.equal(allies[:, 1].sort().values, enemies[:, 1].sort().values)  # same rows across the field
    assert (allies[:, 0] < 16).all() and (enemies[:, 0] > 16).all()


def test_agent_units_stay_passive_when_idle():
    """SMAC's *_RL units are Passive with Response Nothing (each map's UnitData.xml): a stopped marine
    under fire never shoots back; the stock enemy marine does shoot."""
    env = simulator("3m", seed=0)
    env.reset()
    place(env, {0: (14.0, 16.0), 3: (16.0, 16.0)}, alive={0, 3})
    for _ in range(4):
        env.step(torch.tensor([[STOP, 0, 0]]))
    assert float(env.s.hp[0, 3]) == 45.0 and float(env.s.hp[0, 0]) < 45.0


# ------------------------------------------------------------------------------------ scripted baselines
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_scripted_baselines_act_from_each_agents_own_observation(name):
    env = simulator("3s5z_vs_3s6z", num_envs=4, seed=1)
    algo = make_algorithm(name, env.spec, make_config(name, env.spec, "paper"))
    step = env.reset()
    for _ in range(10):  # into contact, so attacks are available
        step = env.step(algo.act(step.obs, step.avail_actions, algo.initial_memory(4), step.done)[0])
    actions = algo.act(step.obs, step.avail_actions, algo.initial_memory(4), step.done)[0]
    others_obs, others_avail = step.obs.clone(), step.avail_actions.clone()
    others_obs[:, 1:] = torch.rand_like(others_obs[:, 1:])
    others_avail[:, 1:] = torch.rand(others_avail[:, 1:].shape) < 0.5
    changed = algo.act(others_obs, others_avail, algo.initial_memory(4), step.done)[0]
    assert torch.equal(actions[:, 0], changed[:, 0])
    assert step.avail_actions.gather(2, actions.unsqueeze(-1)).all()


def _episode_returns(name, seed):
    env = simulator("2s3z", num_envs=8, seed=seed)
    algo = make_algorithm(name, env.spec, make_config(name, env.spec, "tiny"))
    step, total = env.reset(), torch.zeros(8)
    for _ in range(60):
        step = env.step(algo.act(step.obs, step.avail_actions, algo.initial_memory(8), step.done)[0])
        total += step.reward
    return total


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_scripted_baselines_are_deterministic_per_seed(name):
    assert torch.equal(_episode_returns(name, 3), _episode_returns(name, 3))
    assert not torch.equal(_episode_returns(name, 3), _episode_returns(name, 4))


def test_focus_fire_attacks_the_weakest_and_attack_nearest_the_closest():
    env = simulator("3m", seed=0)
    env.reset()
    place(env, {0: (10.0, 16.0), 3: (13.0, 16.0), 4: (15.0, 16.0)}, alive={0, 3, 4})
    env.s.hp[0, 4] = 10.0  # the farther enemy is nearly dead
    step = env._observe(env.s)
    view = ObservationDecoder("3m")(step[0], step[2])
    assert int(POLICIES["attack_nearest"](view)[0, 0]) == 6 + 0
    assert int(POLICIES["focus_fire"](view)[0, 0]) == 6 + 1


def test_a_medivac_heals_the_most_damaged_ally_in_reach():
    env = simulator("MMM2", seed=0)
    env.reset()
    N = env.n_agents
    place(env, {9: (10.0, 16.0), 2: (11.0, 16.0), 3: (10.0, 17.0), N: (30.0, 23.0)}, alive={2, 3, 9, N})
    env.s.hp[0, 2], env.s.hp[0, 3] = 40.0, 20.0
    obs, _, avail, _ = env._observe(env.s)
    action = POLICIES["focus_fire"](ObservationDecoder("MMM2")(obs, avail))
    assert int(action[0, 9]) == 6 + 3


def test_a_scripted_baseline_runs_as_a_suite_run(tmp_path):
    import json

    from suites.launching.experiment import execute
    from suites.planning.spec import RunSpec

    spec = RunSpec(suite="test", task="smac/3m", algorithm="focus_fire", preset="tiny", seed=0, steps=256,
                   eval_interval=128, eval_episodes=4, backend="sim")
    execute(spec, tmp_path)
    metrics = json.loads((tmp_path / "runs" / spec.run_id / "1" / "metrics.json").read_text())
    assert metrics["eval/win_rate"]["steps"] == [0, 128, 256] and "absolute/win_rate" in metrics


def test_a_scripted_baseline_on_flatland_is_refused_with_the_tasks_it_supports():
    spec = envs.env_spec(f"flatland/{next(iter(TASKS))}")
    with pytest.raises(UsageError, match=r"attack_nearest is a scripted SMAC policy.*smac/3m"):
        make_config("attack_nearest", spec, "paper")


# ------------------------------------------------------------------------------------ fidelity harness
def test_the_decoded_observation_matches_the_units_as_the_reference_adapters_see_them():
    """Our policies read the SMAC observation; in SMAClite and SMAX they read views built from unit arrays.
    Both must describe the same battle identically."""
    reference = _script("fidelity_reference")
    env = simulator("MMM2", num_envs=3, seed=2)
    step = env.reset()
    for _ in range(8):
        step = env.step(POLICIES["attack_nearest"](ObservationDecoder("MMM2")(step.obs, step.avail_actions)))
    s, N = env.s, env.n_agents
    from_units = reference.tactical_view(
        s.pos.numpy(), s.alive.numpy(), ((s.hp + s.shield) * s.alive).numpy(),
        ((env.hp_max - s.hp) * s.alive).numpy(), env.healer[:N].numpy(), N, step.avail_actions.numpy())
    decoded = ObservationDecoder("MMM2")(step.obs, step.avail_actions)
    for field, value in from_units.items():
        torch.testing.assert_close(getattr(decoded, field), torch.from_numpy(value), atol=1e-4, rtol=1e-4,
                                   msg=field)


def test_the_fidelity_harness_reports_our_side_and_names_missing_references(monkeypatch, capsys, tmp_path):
    fidelity = importlib.import_module("suites.checks.fidelity")
    for name in ("SMACLITE_PYTHON", "SMAX_PYTHON"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "table.md"
    monkeypatch.setattr(sys, "argv", ["fidelity.py", "--maps", "3m", "3s_vs_5z", "--episodes", "8",
                                      "--markdown", str(out)])
    assert fidelity.main() == 0
    captured = capsys.readouterr()
    assert "smaclite skipped" in captured.err and "pip install jaxmarl==0.2.0" in captured.err
    rows = [line.strip("| ").split(" | ") for line in out.read_text().splitlines() if line.startswith("| 3")]
    assert [row[:2] for row in rows] == [["3m", "attack_nearest"], ["3m", "focus_fire"],
                                         ["3s_vs_5z", "attack_nearest"], ["3s_vs_5z", "focus_fire"]]
    assert all(len(row) == 7 and all(cell.endswith(" / – / –") for cell in row[2:]) for row in rows)  # ours only
    assert all(row[6] == "0.00 / – / –" for row in rows)  # no battle reached the time limit


@pytest.mark.parametrize("reference", ["smaclite", "smax"])
def test_the_references_play_through_their_side_environment(reference):
    python = os.environ.get(f"{reference.upper()}_PYTHON")
    if not python:
        pytest.skip(f"{reference} not installed: set {reference.upper()}_PYTHON to a side environment's python "
                    "(python -m suites.checks.fidelity --help says how to make one)")
    fidelity = importlib.import_module("suites.checks.fidelity")
    records = fidelity.play_reference(python, reference, "3s_vs_5z", "attack_nearest", 2, 0)
    assert len(records) == 2 and all(0 < r["length"] <= 250 for r in records)
