"""Suites in three layers: ``planning`` (a command becomes checked run specs), ``launching`` (where runs execute,
and their records) and ``training`` (the loop); ``run.py`` is the command line, ``checks/`` the checks and
measurements behind the docs."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def _check_not_shadowed() -> None:
    """Our top-level package names (fixed: envs, algorithms, suites, analysis) are common ones: run from a
    folder with its own ``envs/`` (EPyMARL's and pymarl's ``src/``), Python would import that folder instead.
    Say so, rather than fail later on a name that folder lacks."""
    home = Path(__file__).resolve().parent.parent
    for name in ("envs", "algorithms", "analysis"):
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is not None and origin.parent.parent != home:
            raise ImportError(
                f"the package {name!r} that Python finds is {origin.parent}, not this suite's {home / name}: a folder "
                f"named {name} in the working directory or on PYTHONPATH shadows it. Run from a directory without "
                "folders named envs, algorithms, suites or analysis (for example not from EPyMARL's or pymarl's "
                "src/), or take that directory off PYTHONPATH.")


_check_not_shadowed()
