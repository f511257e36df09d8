"""MAMBA (Egorov & Shpilman, AAMAS 2022), after jbr-ai-labs/mamba@2c97258.

A DreamerV2-style discrete-latent world model per agent (weights shared), whose transition mixes all
agents' (previous action, latent) embeddings with a 3-layer transformer before each GRU step. The same
transformer runs when acting, so MAMBA's agents exchange messages at execution: ``act`` reads every
agent's recurrent memory. Policies are trained with PPO in imagination against an attention critic.
The agent is ``algorithms.world_model.WorldModelAgent``; what makes it MAMBA is its config.

MAMBA presets: the "optimal from the paper" configs the official README points to.

``paper_smac``: jbr-ai-labs/mamba@2c97258 ``configs/dreamer/optimal/starcraft/AgentConfig.py`` (sizes 256,
DETERMINISTIC 256) and ``.../starcraft/LearnerConfig.py`` (MODEL/ACTOR/VALUE_LR 2e-4/5e-4/5e-4, CAPACITY
250000, MIN_BUFFER_SIZE 500, MODEL_EPOCHS 60, EPOCHS 4, PPO_EPOCHS 5, batches 40/40, SEQ_LENGTH 20,
HORIZON 15, ENTROPY 0.001 x 0.99998, GRAD_CLIP 100/100).
``paper_flatland``: ``configs/dreamer/optimal/flatland/{AgentConfig,LearnerConfig}.py`` (sizes 400,
DETERMINISTIC 600, CAPACITY 500000, MIN_BUFFER_SIZE 2500, MODEL_EPOCHS 40, SEQ_LENGTH 50, rest as SMAC).
Actor initialisation orthogonal, model and critic Xavier (``agent/learners/DreamerLearner.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from algorithms.world_model.config import SMALL, TINY, WorldModelConfig

MAMBA_ARCHITECTURE = dict(communication=True, global_level=False, critic_features="agent", heads_use_global=False,
                          actor_init="orthogonal", model_lr=2e-4, actor_lr=5e-4, value_lr=5e-4)
FLATLAND_SIZES = dict(hidden=400, model_hidden=400, embed=400, deterministic=600, head_hidden=400)


@dataclass(frozen=True)
class MAMBAConfig(WorldModelConfig):
    ALGORITHM: ClassVar[str] = "mamba"
    DISPLAY_NAME: ClassVar[str] = "MAMBA"
    PRESETS: ClassVar[dict[str, dict]] = {
        "paper_smac": dict(MAMBA_ARCHITECTURE),
        "paper_flatland": dict(MAMBA_ARCHITECTURE, **FLATLAND_SIZES, capacity=500_000, min_buffer_size=2500,
                               model_epochs=40, seq_length=50),
        "tiny": dict(MAMBA_ARCHITECTURE, **TINY),
        "small": dict(MAMBA_ARCHITECTURE, **SMALL),
    }
