"""What a record says about the software that produced it: package versions, and the git commit when the
suite runs from a checkout (an installed package records its version instead)."""
from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # suites/launching/provenance.py -> the checkout
PACKAGE = "marl-wm-bench"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (PACKAGE, "torch", "numpy", "sacred", "flatland-rl", "smacv2"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git() -> dict[str, str | bool | None]:
    """The checkout's commit and whether its work tree had changes; ``commit`` None outside a checkout (a
    non-editable install), where ``versions()[PACKAGE]`` identifies the code."""
    if not (REPO / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": True}
