"""The world-model core shared by MAMBA, MABL and MABL's single-level ablation."""
from algorithms.world_model.agent import WorldModelAgent
from algorithms.world_model.config import WorldModelConfig

__all__ = ["WorldModelAgent", "WorldModelConfig"]
