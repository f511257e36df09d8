"""MAMBA (Egorov & Shpilman, AAMAS 2022), after jbr-ai-labs/mamba@2c97258.

A DreamerV2-style discrete-latent world model per agent (weights shared), whose transition mixes all
agents' (previous action, latent) embeddings with a 3-layer transformer before each GRU step. The same
transformer runs when acting, so MAMBA's agents exchange messages at execution: ``act`` reads every
agent's recurrent memory. Policies are trained with PPO in imagination against an attention critic.
The agent is ``algorithms.world_model.WorldModelAgent``; what makes it MAMBA is its config.
"""
from algorithms.mamba.config import MAMBAConfig

__all__ = ["MAMBAConfig"]
