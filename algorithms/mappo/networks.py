"""MAPPO networks, layer for layer as marlbenchmark/on-policy:
``onpolicy/algorithms/utils/mlp.py`` (MLPBase), ``rnn.py`` (RNNLayer), ``act.py``/``distributions.py``
(Categorical head) and ``onpolicy/algorithms/r_mappo/algorithm/r_actor_critic.py`` (R_Actor, R_Critic).

The layers are ``algorithms/layers.py``'s, which also compute seed members' stacked parameters
(``algorithms/mappo/members.py``): there every input holds the members first, and ``time_axis`` 1 names the
time axis behind them.
"""
from __future__ import annotations

import torch
from torch import nn

from algorithms.layers import LayerNorm, Linear, each_member, gru_cell, per_member


def _orthogonal(layer: Linear, gain: float) -> Linear:
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class MLPBase(nn.Module):
    """Input LayerNorm, then ``1 + layer_n`` blocks of Linear -> ReLU -> LayerNorm (mlp.py)."""

    def __init__(self, in_dim: int, hidden: int, layer_n: int, feature_norm: bool):
        super().__init__()
        relu_gain = nn.init.calculate_gain("relu")
        self.feature_norm = LayerNorm(in_dim) if feature_norm else nn.Identity()
        blocks = [nn.Sequential(_orthogonal(Linear(in_dim, hidden), relu_gain), nn.ReLU(), LayerNorm(hidden))]
        blocks += [nn.Sequential(_orthogonal(Linear(hidden, hidden), relu_gain), nn.ReLU(), LayerNorm(hidden))
                   for _ in range(layer_n)]
        self.mlp = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.feature_norm(x))


class RecurrentLayer(nn.Module):
    """A one-layer GRU with orthogonal weights, zero biases and an output LayerNorm (rnn.py).

    GRUCell has nn.GRU's parameters and maths; stepping it lets ``masks`` reset the hidden state
    wherever an episode starts inside a training chunk."""

    def __init__(self, hidden: int):
        super().__init__()
        self.cell = nn.GRUCell(hidden, hidden)
        for name, p in self.cell.named_parameters():
            (nn.init.orthogonal_ if "weight" in name else nn.init.zeros_)(p)
        self.norm = LayerNorm(hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor, masks: torch.Tensor,
                time_axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [T,M,H], ``h`` [M,H], ``masks`` [T,M] (0 where the hidden state resets)."""
        outs = []
        c = self.cell
        for t in range(x.shape[time_axis]):
            reset = masks.select(time_axis, t).unsqueeze(-1)
            h = gru_cell(x.select(time_axis, t), h * reset, c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh)
            outs.append(h)
        return self.norm(torch.stack(outs, time_axis)), h


class Actor(nn.Module):
    def __init__(self, in_dim: int, n_actions: int, cfg):
        super().__init__()
        self.base = MLPBase(in_dim, cfg.hidden_size, cfg.layer_n, cfg.feature_norm)
        self.rnn = RecurrentLayer(cfg.hidden_size) if cfg.recurrent else None
        self.head = _orthogonal(Linear(cfg.hidden_size, n_actions), cfg.gain)

    def forward(self, x, h, masks, avail, time_axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [T,M,in]; returns the masked action logits [T,M,A] and the last hidden state."""
        z = self.base(x)
        if self.rnn is not None:
            z, h = self.rnn(z, h, masks, time_axis)
        return self.head(z).masked_fill(~avail, -1e10), h  # act.py: unavailable actions get -1e10


def action_distribution(logits: torch.Tensor) -> torch.distributions.Categorical:
    """The categorical policy over masked logits. Its argument checks are off: they read the values on the host
    (a sync per call), and the logits are finite by construction (a non-finite loss is caught before any
    step)."""
    return torch.distributions.Categorical(logits=logits, validate_args=False)


class Critic(nn.Module):
    def __init__(self, in_dim: int, cfg):
        super().__init__()
        self.base = MLPBase(in_dim, cfg.hidden_size, cfg.layer_n, cfg.feature_norm)
        self.rnn = RecurrentLayer(cfg.hidden_size) if cfg.recurrent else None
        self.v_out = _orthogonal(Linear(cfg.hidden_size, 1), 1.0)

    def forward(self, x, h, masks, time_axis: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.base(x)
        if self.rnn is not None:
            z, h = self.rnn(z, h, masks, time_axis)
        return self.v_out(z).squeeze(-1), h


class ValueNorm(nn.Module):
    """Running mean/variance of value targets with debiasing (onpolicy/utils/valuenorm.py, beta 0.99999)."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5):
        super().__init__()
        self.beta, self.epsilon = beta, epsilon
        self.register_buffer("running_mean", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("running_mean_sq", torch.zeros(1, dtype=torch.float64))
        self.register_buffer("debiasing_term", torch.zeros(1, dtype=torch.float64))

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance, shaped to broadcast over ``x`` (seed members' statistics ``[K, 1]`` over their
        ``x`` ``[K, ...]``)."""
        debias = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean**2).clamp(min=1e-2)
        return per_member(mean, x), per_member(var, x)

    @torch.no_grad()
    def update(self, x: torch.Tensor, members: bool = False) -> None:
        """``members``: K seed members' values ``[K, ...]``, each member's statistics updated by its own."""
        x = x.double()
        w = self.beta
        mean, mean_sq = (each_member(torch.mean, x), each_member(torch.mean, x**2)) if members else (x.mean(), (x**2).mean())
        self.running_mean.mul_(w).add_((mean * (1 - w)).view_as(self.running_mean))
        self.running_mean_sq.mul_(w).add_((mean_sq * (1 - w)).view_as(self.running_mean_sq))
        self.debiasing_term.mul_(w).add_(1 - w)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._stats(x)
        return ((x.double() - mean) / var.sqrt()).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._stats(x)
        return (x.double() * var.sqrt() + mean).to(x.dtype)
