"""Building blocks of the world-model agents, layer for layer as in the official code.

Sources (jbr-ai-labs/mamba@2c97258, identical in aravindvenu7/MABL@9327343 ``mabl/``):
``networks/dreamer/utils.py`` (build_model), ``networks/dreamer/vae.py`` (Encoder, Decoder),
``networks/dreamer/rnns.py`` (DiscreteLatentDist), ``networks/dreamer/action.py`` (Actor),
``networks/dreamer/critic.py`` (AugmentedCritic / MADDPGCritic), ``networks/transformer/layers.py``
(AttentionEncoder, sinusoidal positional encoding over the agent index), ``agent/learners/DreamerLearner.py``
(initialisation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.layers import Linear, layer_norm, linear, one_hot, softmax
from algorithms.sampling import dropout, sample_index


def mlp(in_dim: int, out_dim: int, layers: int, hidden: int, activation=nn.ReLU) -> nn.Sequential:
    """``build_model``: ``layers`` hidden Linear+activation blocks, then a linear output."""
    blocks: list[nn.Module] = [Linear(in_dim, hidden), activation()]
    for _ in range(layers - 1):
        blocks += [Linear(hidden, hidden), activation()]
    return nn.Sequential(*blocks, Linear(hidden, out_dim))


class Encoder(nn.Module):
    """Observation (or global-state) encoder: in -> H -> H -> H -> embed, ReLU between, linear output."""

    def __init__(self, in_dim: int, hidden: int, embed: int):
        super().__init__()
        self.fc1 = Linear(in_dim, hidden)
        self.encoder = mlp(hidden, embed, 2, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(F.relu(self.fc1(x)))


class Decoder(nn.Module):
    """Observation decoder; also returns the last hidden layer ``x`` that the action-reconstruction head reads."""

    def __init__(self, feat_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.fc1 = mlp(feat_dim, hidden, 2, hidden)
        self.fc2 = Linear(hidden, out_dim)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.fc1(feat))
        return self.fc2(x), x


class DiscreteLatent(nn.Module):
    """``DiscreteLatentDist``: Linear -> ReLU -> Linear to ``n_categoricals x n_classes`` logits."""

    def __init__(self, in_dim: int, hidden: int, n_categoricals: int, n_classes: int):
        super().__init__()
        self.n_categoricals, self.n_classes = n_categoricals, n_classes
        self.dists = nn.Sequential(Linear(in_dim, hidden), nn.ReLU(), Linear(hidden, n_categoricals * n_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, straight-through one-hot sample), both flattened to ``n_categoricals * n_classes``."""
        logits = self.dists(x)
        return logits, straight_through_sample(logits, self.n_categoricals, self.n_classes)


def straight_through_sample(logits: torch.Tensor, n_categoricals: int, n_classes: int) -> torch.Tensor:
    """One-hot sample per categorical with straight-through gradients: ``one_hot + probs - sg(probs)``."""
    shaped = logits.view(*logits.shape[:-1], n_categoricals, n_classes)
    probs = softmax(shaped)
    sample = one_hot(sample_index(probs.detach()), n_classes, probs.dtype)
    return (sample + probs - probs.detach()).view(logits.shape)


def sinusoid_table(n_position: int, d: int) -> torch.Tensor:
    """The transformer's sinusoidal table (``PositionalEncoding``): sin on even, cos on odd dimensions."""
    position = torch.arange(n_position, dtype=torch.float64).unsqueeze(1)
    exponent = torch.tensor([2 * (j // 2) / d for j in range(d)], dtype=torch.float64)
    angles = position / torch.pow(10000.0, exponent)
    angles[:, 0::2], angles[:, 1::2] = torch.sin(angles[:, 0::2]), torch.cos(angles[:, 1::2])
    return angles.float()


class AgentAttention(nn.Module):
    """``AttentionEncoder``: post-norm transformer encoder over the agent axis, agent index as position.

    The layers are ``nn.TransformerEncoderLayer`` modules (the official code's: same parameters, names and
    initialisation); their forward is written out below with the same arithmetic (scaled dot-product
    attention with dropout on the weights, residual + LayerNorm, ReLU feed-forward; dropout drawn through
    ``algorithms/sampling.py``, the same masks as ``nn.Dropout``), because the library
    path's argument checks and layout copies cost more than the arithmetic over a few dozen agents
    (docs/performance.md has the measurements). The official
    table has 30 positions; it is grown to the number of agents when a task has more."""

    def __init__(self, n_layers: int, d_model: int, feedforward: int, heads: int, dropout: float, n_agents: int):
        super().__init__()
        self.register_buffer("position", sinusoid_table(max(30, n_agents), d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=feedforward, dropout=dropout,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.heads = heads

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[..., N, d]``; ``mask`` ``[B, N, N]`` bool, True where agent i must not read agent j. On seed
        members' stacked parameters, ``x`` holds the members first (``algorithms/layers.py``)."""
        lead, (n, d) = x.shape[:-2], x.shape[-2:]
        x = (x + self.position[:n]).reshape(-1, n, d)
        if mask is not None:
            mask = mask.reshape(-1, 1, n, n)  # the same for every head
        for layer in self.encoder.layers:
            x = layer_norm(x + self._dropout(layer.dropout1, self._attend(layer.self_attn, x, mask)), layer.norm1)
            hidden = self._dropout(layer.dropout, F.relu(linear(x, layer.linear1.weight, layer.linear1.bias)))
            x = layer_norm(x + self._dropout(layer.dropout2, linear(hidden, layer.linear2.weight, layer.linear2.bias)),
                           layer.norm2)
        return x.view(*lead, n, d)

    def _dropout(self, module: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, module.p, self.training)

    def _attend(self, attention: nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Multi-head self-attention ``[B, N, d] -> [B, N, d]`` with the module's packed projections."""
        b, n, d = x.shape
        q, k, v = linear(x, attention.in_proj_weight, attention.in_proj_bias).view(b, n, 3, self.heads, -1) \
            .permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        weights = dropout(softmax(scores), attention.dropout, self.training)
        out = attention.out_proj
        return linear((weights @ v).transpose(1, 2).reshape(b, n, d), out.weight, out.bias)


class Actor(nn.Module):
    """Decentralised policy on the agent's own features: FEAT -> H -> H -> |A| logits, ReLU."""

    def __init__(self, feat_dim: int, n_actions: int, hidden: int, layers: int):
        super().__init__()
        self.feedforward_model = mlp(feat_dim, n_actions, layers, hidden)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.feedforward_model(feat)


class AttentionCritic(nn.Module):
    """``AugmentedCritic``: per-agent embedding, one transformer layer across agents, MLP to a value per agent.

    The official class also defines a ``prior`` MLP that ``forward`` never calls; it is left out (docs/algorithms.md)."""

    def __init__(self, feat_dim: int, hidden: int, n_agents: int, heads: int = 8):
        super().__init__()
        self.embed = Linear(feat_dim, hidden)
        self._attention_stack = AgentAttention(1, hidden, hidden, heads, 0.0, n_agents)
        self.feedforward_model = mlp(hidden, 1, 1, hidden)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.feedforward_model(F.relu(self._attention_stack(F.relu(self.embed(feat)))))


def initialise(module: nn.Module, mode: str) -> None:
    """``initialize_weights``: every parameter with two or more dimensions, Xavier-uniform or orthogonal (gain 1)."""
    for p in module.parameters():
        if p.dim() >= 2:
            if mode == "xavier":
                nn.init.xavier_uniform_(p)
            elif mode == "orthogonal":
                nn.init.orthogonal_(p)
            else:
                raise ValueError(f"unknown initialisation {mode!r}; valid: xavier, orthogonal")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
