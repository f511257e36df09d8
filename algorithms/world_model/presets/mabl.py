"""MABL (Venugopal et al., AAMAS 2024), after aravindvenu7/MABL@9327343, and its single-level ablation.

For each agent a global latent (upper level, driven by the joint action; its posterior sees the encoded
global state and the agent's posterior sample) conditions the prior of the agent latent (lower level).
Agents act on their own agent latent only: no global state, no joint action, no communication. The agent
is ``algorithms.world_model.WorldModelAgent``; what makes it MABL, or the ablation, is its config.

MABL presets, and the single-level ablation's.

``paper_smac``: aravindvenu7/MABL@9327343 ``mabl/configs/dreamer/DreamerAgentConfig.py`` (sizes 256,
STATE_EMBED 256, GLOBAL=True) and ``DreamerLearnerConfig.py`` (MODEL/ACTOR/VALUE_LR 3e-4/1e-4/1e-3,
CAPACITY 250000, MIN_BUFFER_SIZE 500, MODEL_EPOCHS 60, EPOCHS 4, PPO_EPOCHS 5, batches 40/40, SEQ_LENGTH 20,
HORIZON 15); Xavier initialisation everywhere, actor included (the 3.8/3.10 builds). The pcont and
available-action heads read [agent; global] features, the critic all features (``GLOBAL=True``).
``paper_flatland``: the repository's compiled Flatland build (cpython-37 ``DreamerAgentConfig`` and
``DreamerLearnerConfig``, read from the .pyc files the repository ships): sizes
400, DETERMINISTIC 600, STATE_EMBED 400, LRs 2e-4/5e-4/5e-4, CAPACITY 500000, MIN_BUFFER_SIZE 2500,
MODEL_EPOCHS 40, BATCH_SIZE 32, SEQ_LENGTH 50; heads on agent features, critic on global features, the
global state being all agents' observations concatenated (the Flatland env's ``state``).

The single-level ablation (our definition; the paper's text of it was not available): MABL with the global
level removed. The agent prior sees only the agent GRU state, nothing reads the global state, the heads and
the critic read agent features; every other value is MABL's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from algorithms.world_model.config import SMALL, TINY, WorldModelConfig

SMAC = dict(model_lr=3e-4, actor_lr=1e-4, value_lr=1e-3, actor_init="xavier")
FLATLAND = dict(hidden=400, model_hidden=400, embed=400, state_embed=400, deterministic=600, head_hidden=400,
                model_lr=2e-4, actor_lr=5e-4, value_lr=5e-4, capacity=500_000, min_buffer_size=2500, model_epochs=40,
                batch_size=32, seq_length=50, actor_init="xavier")
BI_LEVEL_SMAC = dict(communication=False, global_level=True, critic_features="all", heads_use_global=True)
BI_LEVEL_FLATLAND = dict(communication=False, global_level=True, critic_features="global", heads_use_global=False)
SINGLE_LEVEL = dict(communication=False, global_level=False, critic_features="agent", heads_use_global=False)


@dataclass(frozen=True)
class MABLConfig(WorldModelConfig):
    ALGORITHM: ClassVar[str] = "mabl"
    DISPLAY_NAME: ClassVar[str] = "MABL"
    PRESETS: ClassVar[dict[str, dict]] = {
        "paper_smac": dict(SMAC, **BI_LEVEL_SMAC),
        "paper_flatland": dict(FLATLAND, **BI_LEVEL_FLATLAND),
        "tiny": dict(TINY, **BI_LEVEL_SMAC, actor_init="xavier"),
        "small": dict(SMALL, **BI_LEVEL_SMAC, actor_init="xavier"),
    }


@dataclass(frozen=True)
class MABLSingleLevelConfig(WorldModelConfig):
    ALGORITHM: ClassVar[str] = "mabl_single_level"
    DISPLAY_NAME: ClassVar[str] = "MABL (single level)"
    # Every MABL preset with the global level removed; nothing else differs.
    PRESETS: ClassVar[dict[str, dict]] = {name: dict(values, **SINGLE_LEVEL) for name, values in MABLConfig.PRESETS.items()}
