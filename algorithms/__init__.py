"""Algorithm registry: names, config classes and presets."""
from __future__ import annotations

import dataclasses

import torch

from algorithms.base import Algorithm, Divergence, Transition
from envs.errors import UsageError
from envs.spec import EnvSpec

__all__ = [
    "REGISTRY", "Algorithm", "Divergence", "Transition",
    "check_algorithm", "config_defaults", "display_name", "list_algorithms", "make_algorithm", "make_config",
]


# name -> (algorithm class, config class) as "module:attribute", imported on first use, so that naming one
# algorithm never loads the others. MAMBA, MABL and the ablation are one agent with different configs.
REGISTRY = {
    "mappo": ("algorithms.mappo:MAPPO", "algorithms.mappo:MAPPOConfig"),
    "mamba": ("algorithms.world_model:WorldModelAgent", "algorithms.world_model.presets.mamba:MAMBAConfig"),
    "mabl": ("algorithms.world_model:WorldModelAgent", "algorithms.world_model.presets.mabl:MABLConfig"),
    "mabl_single_level": ("algorithms.world_model:WorldModelAgent", "algorithms.world_model.presets.mabl:MABLSingleLevelConfig"),
    "attack_nearest": ("algorithms.scripted:ScriptedPolicy", "algorithms.scripted:AttackNearestConfig"),
    "focus_fire": ("algorithms.scripted:ScriptedPolicy", "algorithms.scripted:FocusFireConfig"),
}


def _load(name: str) -> tuple[type, type]:
    """``name``'s algorithm and config classes."""
    import importlib

    def resolve(path: str):
        module, attribute = path.split(":")
        return getattr(importlib.import_module(module), attribute)

    return tuple(resolve(path) for path in REGISTRY[name])


def list_algorithms() -> list[str]:
    return sorted(REGISTRY)


def check_algorithm(name: str) -> None:
    if name not in REGISTRY:
        raise UsageError(f"unknown algorithm {name!r}; valid algorithms: {', '.join(list_algorithms())}")


def make_config(name: str, spec: EnvSpec, preset: str = "paper", overrides: dict | None = None):
    """The frozen config of ``preset`` for ``spec``'s task, with ``overrides`` applied."""
    check_algorithm(name)
    _, config_cls = _load(name)
    config = config_cls.preset(preset, spec)
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(config)}
        if unknown:
            raise UsageError(f"unknown {name} config fields: {', '.join(sorted(unknown))}")
        config = dataclasses.replace(config, **overrides)
    return config


def display_name(name: str) -> str:
    """How papers and our figures name ``name`` (its config's ``DISPLAY_NAME``)."""
    check_algorithm(name)
    return _load(name)[1].DISPLAY_NAME or name


def config_defaults(name: str) -> dict:
    """``name``'s config fields and their defaults (every field has one; its type is the default's)."""
    check_algorithm(name)
    _, config_cls = _load(name)
    return {f.name: f.default for f in dataclasses.fields(config_cls)}


def make_algorithm(name: str, spec: EnvSpec, config, device: str | torch.device = "cpu") -> Algorithm:
    algo_cls, _ = _load(name)
    return algo_cls(spec, config, device)
