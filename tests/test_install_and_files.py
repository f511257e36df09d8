"""Installing and running from anywhere: where results go, what records say about the code, the Python
versions the package admits, and the message when another package shadows ours."""
from __future__ import annotations

import os
import subprocess
import sys

from suites.launching.records import DONE, run_status
from tests.helpers import ROOT


def test_results_go_to_the_working_directory_by_default(tmp_path):
    argv = ["smoke", "--tasks", "smac/3m", "--algorithms", "attack_nearest", "--seeds", "1", "--steps", "64",
            "--eval-episodes", "1", "--backend", "sim"]
    done = subprocess.run([sys.executable, "-m", "suites.run", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert run_status(tmp_path / "results" / "runs" / "smoke/smac_3m/attack_nearest/seed_0") == DONE


def test_records_name_the_commit_in_a_checkout_and_the_package_version_otherwise(monkeypatch, tmp_path):
    from suites.launching import provenance

    assert provenance.versions()[provenance.PACKAGE] != "not installed"
    if (ROOT / ".git").exists():
        assert len(provenance.git()["commit"]) == 40
    monkeypatch.setattr(provenance, "REPO", tmp_path)  # as installed into site-packages: no .git beside it
    assert provenance.git() == {"commit": None, "dirty": None}


def test_the_package_admits_python_3_10_to_3_13():
    from packaging.specifiers import SpecifierSet

    from suites.planning.suite_file import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    admitted = SpecifierSet(project["requires-python"])
    assert all(f"3.{minor}.0" in admitted for minor in (10, 11, 12, 13))
    assert "3.9.0" not in admitted and "3.14.0" not in admitted
    assert not [d for d in project["dependencies"] if "==" in d]  # ranges, not pins


def test_another_envs_package_on_the_path_is_named_instead_of_a_confusing_import_error(tmp_path):
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "__init__.py").write_text("")  # as in EPyMARL's and pymarl's src/
    done = subprocess.run([sys.executable, "-m", "suites.run", "smoke", "--dry-run"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert done.returncode != 0
    assert f"the package 'envs' that Python finds is {tmp_path / 'envs'}, not this suite's" in done.stderr
    assert "shadows it" in done.stderr
