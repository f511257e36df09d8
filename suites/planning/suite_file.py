"""Suites from TOML files: ``python -m suites.run path/to/suite.toml [options]``.

A file holds every field of a :class:`~suites.planning.definitions.Suite` (``name``, ``tasks``, ``budgets`` or
``steps`` with ``eval_interval``, ``algorithms``, ``preset``, ``algorithm_presets``, ``default_budget``,
``seeds``, ``eval_episodes``, ``description``, and the comparisons ``improvement`` and ``ablation``) and,
optionally, run options: the fields of
:class:`~suites.planning.options.RunOptions` that a file may set, under their command-line names (``set``,
``variant``, ``device``, ``backend``, ``launcher``, ...). They pass the same checks as the command line's,
which override them (a ``--set`` of the same field replaces the file's). ``suites/examples/`` has an
example.
"""
from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

from envs.errors import UsageError
from suites.planning.definitions import ALGORITHMS, Suite
from suites.planning.options import RunOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

SUITE_KEYS = ("name", "description", "tasks", "algorithms", "preset", "algorithm_presets", "budgets",
              "default_budget", "seeds", "eval_episodes", "steps", "eval_interval", "improvement", "ablation")


def is_suite_file(name: str) -> bool:
    return name.endswith(".toml")


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            content = tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"suite file {path} not found") from None
    except OSError as err:
        raise UsageError(f"suite file {path} cannot be read: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"suite file {path} is not valid TOML: {err}") from None
    valid = SUITE_KEYS + RunOptions.file_keys()
    unknown = sorted(set(content) - set(valid))
    if unknown:
        guesses = [f"{key!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(key, valid, 1)) else repr(key)
                   for key in unknown]
        raise UsageError(f"suite file {path}: unknown key(s) {', '.join(guesses)}; valid keys: {', '.join(valid)}")
    return content


def _positive(path: Path, key: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"suite file {path}: {key} must be an integer >= 1, got {value!r}")
    return value


def _strings(path: Path, key: str, value) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UsageError(f"suite file {path}: {key} must be a non-empty list of names, got {value!r}")
    return tuple(value)


def load(path: Path) -> tuple[Suite, dict]:
    """The file's suite, and its run options (field -> value, for ``RunOptions.merged``). The suite's names
    (tasks, algorithms, presets, budgets) are checked when it is planned, as a built-in suite's are."""
    content = _read(path)
    return _suite(path, content), RunOptions.from_file(path, content)


def _suite(path: Path, content: dict) -> Suite:
    for key in ("name", "tasks"):
        if key not in content:
            raise UsageError(f"suite file {path}: {key!r} is required")
    name = content["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise UsageError(f"suite file {path}: name {name!r} names the records' directory, so use up to 64 letters, "
                         "digits, '_', '.' or '-', starting with a letter or digit")
    budgets = _budgets(path, content)
    default_budget = content.get("default_budget", next(iter(budgets)))
    if default_budget not in budgets:
        raise UsageError(f"suite file {path}: default_budget {default_budget!r} is not one of its budgets "
                         f"({', '.join(budgets)})")
    presets = content.get("algorithm_presets", {})
    if not isinstance(presets, dict) or not all(isinstance(v, str) for v in presets.values()):
        raise UsageError(f"suite file {path}: algorithm_presets must be a table of algorithm = \"preset\"")
    return Suite(name=name, description=str(content.get("description", f"from {path}")),
                 tasks=_strings(path, "tasks", content["tasks"]),
                 algorithms=_strings(path, "algorithms", content.get("algorithms", list(ALGORITHMS))),
                 preset=str(content.get("preset", "paper")), algorithm_presets=dict(presets), budgets=budgets,
                 default_budget=default_budget, seeds=_positive(path, "seeds", content.get("seeds", 5)),
                 eval_episodes=_positive(path, "eval_episodes", content.get("eval_episodes", 32)),
                 improvement=_strings(path, "improvement", content.get("improvement", list(Suite.improvement))),
                 ablation=_ablation(path, content.get("ablation", list(Suite.ablation))))


def _ablation(path: Path, value) -> tuple[str, ...]:
    pair = _strings(path, "ablation", value) if value else ()
    if len(pair) not in (0, 2):
        raise UsageError(f"suite file {path}: ablation is a pair [\"algorithm\", \"its ablation\"] or [], got {value!r}")
    return pair


def _budgets(path: Path, content: dict) -> dict[str, tuple[int, int]]:
    """``budgets = {name = [steps, eval_interval]}``, or ``steps`` (and ``eval_interval``, default a tenth of
    the steps) as the one budget ``file``."""
    if ("budgets" in content) == ("steps" in content):
        raise UsageError(f"suite file {path}: give either budgets = {{name = [steps, eval_interval], ...}} or steps "
                         "(with eval_interval)")
    if "steps" in content:
        steps = _positive(path, "steps", content["steps"])
        return {"file": (steps, _positive(path, "eval_interval", content.get("eval_interval", max(1, steps // 10))))}
    budgets = content["budgets"]
    if not isinstance(budgets, dict) or not budgets:
        raise UsageError(f"suite file {path}: budgets must be a table of name = [steps, eval_interval]")
    out = {}
    for name, value in budgets.items():
        if not isinstance(value, list) or len(value) != 2:
            raise UsageError(f"suite file {path}: budget {name!r} must be [steps, eval_interval], got {value!r}")
        out[name] = (_positive(path, f"budget {name!r} steps", value[0]),
                     _positive(path, f"budget {name!r} eval_interval", value[1]))
    return out
