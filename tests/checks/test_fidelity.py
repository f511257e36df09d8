"""The fidelity harness (suites/checks/fidelity.py): the decoded observation matches the reference adapters'
view, our side of the comparison with SMAClite and SMAX, and the references through their side environment."""
import importlib
import importlib.util
import os
import sys

import pytest
import torch

from algorithms.scripted.policies import POLICIES
from envs.smac.tactical_view import ObservationDecoder
from tests.helpers import ROOT, simulator


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

SCRIPTS = ROOT / "scripts"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
