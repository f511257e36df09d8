"""MAPPO losses (onpolicy/algorithms/r_mappo/r_mappo.py: ppo_update, cal_value_loss)."""
from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, members: bool = False) -> torch.Tensor:
    """The mean over ``mask``'s ones; ``members``: K seed members' values ``[K, ...]``, each member's own ``[K]``."""
    if members:
        return (x * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp(min=1.0)
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def huber(error: torch.Tensor, delta: float) -> torch.Tensor:
    a = error.abs()
    return torch.where(a <= delta, 0.5 * error**2, delta * (a - 0.5 * delta))


def policy_loss(log_prob, old_log_prob, advantages, clip, mask, members: bool = False) -> torch.Tensor:
    """Clipped surrogate, negated, averaged over active agents."""
    ratio = torch.exp(log_prob - old_log_prob)
    surr = torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    return -masked_mean(surr, mask, members)


def value_loss(values, old_values, target, clip, delta, clipped: bool, mask, members: bool = False) -> torch.Tensor:
    """Huber loss of the (normalised) value against the (normalised) return, clipped as PPO2 does."""
    original = huber(target - values, delta)
    if clipped:
        v_clipped = old_values + (values - old_values).clamp(-clip, clip)
        original = torch.maximum(original, huber(target - v_clipped, delta))
    return masked_mean(original, mask, members)
