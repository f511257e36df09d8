"""MABL (Venugopal et al., AAMAS 2024), after aravindvenu7/MABL@9327343, and its single-level ablation.

For each agent a global latent (upper level, driven by the joint action; its posterior sees the encoded
global state and the agent's posterior sample) conditions the prior of the agent latent (lower level).
Agents act on their own agent latent only: no global state, no joint action, no communication. The agent
is ``algorithms.world_model.WorldModelAgent``; what makes it MABL, or the ablation, is its config.
"""
from algorithms.mabl.config import MABLConfig, MABLSingleLevelConfig

__all__ = ["MABLConfig", "MABLSingleLevelConfig"]
