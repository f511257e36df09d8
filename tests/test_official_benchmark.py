"""The official-learner timing harness (``scripts/official_learner_benchmark.py``).

The official code is not shipped; the run test needs a checkout named by OFFICIAL_MAMBA_DIR (a clone of
jbr-ai-labs/mamba) or OFFICIAL_MABL_DIR (the ``mabl/`` folder of aravindvenu7/MABL)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.official_learner_benchmark import main

ROOT = Path(__file__).resolve().parent.parent


def test_a_folder_that_is_not_an_official_checkout_is_named(tmp_path):
    with pytest.raises(SystemExit, match=r"not an official mamba checkout: agent/learners/DreamerLearner.py is missing"):
        main(["--official", str(tmp_path), "--algorithm", "mamba", "--task", "smac/3m"])


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["mamba", "mabl"])
def test_the_official_learner_runs_one_short_update(algorithm):
    checkout = os.environ.get(f"OFFICIAL_{algorithm.upper()}_DIR")
    if not checkout:
        pytest.skip(f"OFFICIAL_{algorithm.upper()}_DIR does not name an official {algorithm} checkout")
    # a fresh process: the harness puts the official packages (agent, configs, networks) on sys.path
    out = subprocess.run([sys.executable, "scripts/official_learner_benchmark.py", "--official", checkout,
                          "--algorithm", algorithm, "--task", "smac/3m", "--model-epochs", "1", "--epochs", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"official {algorithm} on smac/3m" in out.stdout and "s per learner update" in out.stdout
