"""Suites from TOML files: ``python -m suites.run path/to/suite.toml [options]``.

A file holds every field of a :class:`~suites.definitions.Suite` (``name``, ``tasks``, ``budgets`` or
``steps`` with ``eval_interval``, ``algorithms``, ``preset``, ``algorithm_presets``, ``default_budget``,
``seeds``, ``eval_episodes``, ``description``) and, optionally, the run options of the command line under
their option names (``set``, ``variant``, ``device``, ``backend``, ``launcher``, ...). The options are
read as if typed before the command's own, so they get the same checks and messages, and a flag on the
command line overrides the file (a ``--set`` of the same field replaces the file's). ``suites/examples/``
has an example.
"""
from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

from envs.errors import UsageError
from suites.definitions import ALGORITHMS, Suite

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

SUITE_KEYS = ("name", "description", "tasks", "algorithms", "preset", "algorithm_presets", "budgets",
              "default_budget", "seeds", "eval_episodes", "steps", "eval_interval")
FLAGS = ("device", "backend", "compile_env", "seed_batch", "threads", "jobs", "launcher", "address", "gpus_per_run",
         "cpus_per_run", "wandb", "cluster", "partition", "time", "array_parallelism")  # run options, besides set and variant


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
    valid = SUITE_KEYS + ("set", "variant") + FLAGS
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


def load_suite(path: Path) -> Suite:
    """The file's suite; its names (tasks, algorithms, presets, budgets) are checked when it expands, as a
    built-in suite's are."""
    content = _read(path)
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
                 eval_episodes=_positive(path, "eval_episodes", content.get("eval_episodes", 32)))


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


def option_arguments(path: Path, command_line: list[str]) -> list[str]:
    """The file's run options as command-line arguments, to be parsed before ``command_line``'s own (which
    therefore override them); the file's ``set`` entries whose field the command line sets too are dropped."""
    content = _read(path)
    typed = {text.partition("=")[0].strip() for flag, text in zip(command_line, command_line[1:]) if flag == "--set"}
    assignments = content.get("set", [])
    if isinstance(assignments, str):
        assignments = [assignments]
    if not isinstance(assignments, list) or not all(isinstance(a, str) for a in assignments):
        raise UsageError(f"suite file {path}: set must be a list of \"[ALGORITHM.]FIELD=VALUE\" texts")
    arguments = [part for text in assignments if text.partition("=")[0].strip() not in typed for part in ("--set", text)]
    if "variant" in content:
        arguments += ["--variant", str(content["variant"])]
    for key in FLAGS:
        if key not in content:
            continue
        flag, value = "--" + key.replace("_", "-"), content[key]
        if isinstance(value, bool):
            arguments += [flag] if value else []
        else:
            arguments += [flag, str(value)]
    return arguments

