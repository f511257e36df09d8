"""The world-model step: the reconstruction, reward, discount, availability and KL losses of ``model_loss``
on a fresh batch of replayed sequences, then one guarded Adam step (``DreamerLearner.train_model`` in
jbr-ai-labs/mamba@2c97258 and aravindvenu7/MABL@9327343)."""
from __future__ import annotations

import torch

from algorithms.world_model.config import WorldModelConfig
from algorithms.world_model.divergence import DivergenceGuard
from algorithms.world_model.losses import model_loss
from algorithms.world_model.rssm import WorldModel


class WorldModelLearner:
    def __init__(self, model: WorldModel, config: WorldModelConfig, guard: DivergenceGuard):
        self.model, self.config, self.guard = model, config, guard
        self.optimiser = guard.adam(model.parameters(), lr=config.model_lr)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, parts = model_loss(self.model, batch)
        norm = self.guard.step(self.optimiser, self.model, loss, self.config.grad_clip)
        return {**{f"train/{k}": v.detach() for k, v in parts.items()}, "train/model_loss": loss.detach(),
                "train/model_grad_norm": norm}
