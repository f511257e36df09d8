"""SMAC tasks: shared map data, the batched torch simulator and the StarCraft II backend."""
from envs.smac.maps import MAPS, SUPER_HARD, get_map

__all__ = ["MAPS", "SUPER_HARD", "get_map"]
