"""Algorithm registry: names, config classes and presets."""
from __future__ import annotations

import dataclasses

import torch

from algorithms.base import Algorithm, Divergence, Transition
from envs.base import EnvSpec

__all__ = [
    "REGISTRY", "Algorithm", "Divergence", "Transition",
    "check_algorithm", "list_algorithms", "make_algorithm", "make_config",
]


def _mappo():
    from algorithms.mappo import MAPPO, MAPPOConfig

    return MAPPO, MAPPOConfig


def _mamba():
    from algorithms.mamba import MAMBA, MAMBAConfig

    return MAMBA, MAMBAConfig


def _mabl():
    from algorithms.mabl import MABL, MABLConfig

    return MABL, MABLConfig


def _mabl_single_level():
    from algorithms.mabl import MABLSingleLevel, MABLSingleLevelConfig

    return MABLSingleLevel, MABLSingleLevelConfig


REGISTRY = {"mappo": _mappo, "mamba": _mamba, "mabl": _mabl, "mabl_single_level": _mabl_single_level}


def list_algorithms() -> list[str]:
    return sorted(REGISTRY)


def check_algorithm(name: str) -> None:
    from envs import UsageError

    if name not in REGISTRY:
        raise UsageError(f"unknown algorithm {name!r}; valid algorithms: {', '.join(list_algorithms())}")


def make_config(name: str, spec: EnvSpec, preset: str = "paper", overrides: dict | None = None):
    """The frozen config of ``preset`` for ``spec``'s task, with ``overrides`` applied."""
    from envs import UsageError

    check_algorithm(name)
    _, config_cls = REGISTRY[name]()
    config = config_cls.preset(preset, spec)
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(config)}
        if unknown:
            raise UsageError(f"unknown {name} config fields: {', '.join(sorted(unknown))}")
        config = dataclasses.replace(config, **overrides)
    return config


def make_algorithm(name: str, spec: EnvSpec, config, device: str | torch.device = "cpu") -> Algorithm:
    algo_cls, _ = REGISTRY[name]()
    return algo_cls(spec, config, device)
