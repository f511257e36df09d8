"""MAPPO and rMAPPO, faithful to marlbenchmark/on-policy."""
from algorithms.mappo.agent import MAPPO
from algorithms.mappo.config import MAPPOConfig

__all__ = ["MAPPO", "MAPPOConfig"]
