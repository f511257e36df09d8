"""MAPPO and rMAPPO, faithful to marlbenchmark/on-policy."""
from algorithms.mappo.config import MAPPOConfig
from algorithms.mappo.mappo import MAPPO

__all__ = ["MAPPO", "MAPPOConfig"]
