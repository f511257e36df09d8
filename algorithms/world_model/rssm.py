"""The recurrent state-space world model in its three shapes: MAMBA, MABL and MABL without its global level.

Sources: jbr-ai-labs/mamba@2c97258 ``networks/dreamer/rnns.py`` (RSSMTransition with the communication
transformer, RSSMRepresentation, rollout_representation) and ``agent/models/DreamerModel.py``;
aravindvenu7/MABL@9327343 ``mabl/networks/dreamer/rnns.py`` (the bi-level transition and representation)
and ``mabl/agent/models/DreamerModel.py`` (heads, state encoder, decentralised ``get_state_representation``).

Per agent i (weights shared across agents; every "global" quantity is computed per agent):

    agent level   h_i  = GRU(h_i, ReLU(W[a_i; z_i]))           MAMBA: transformer over agents before the GRU
                  prior  z_i ~ p(. | h_i [, zg_i prior sample])  posterior z_i ~ q(. | h_i, enc(o_i))
    global level  hg_i = GRU(hg_i, ReLU(W[a_joint; zg_i]))      (MABL only)
                  prior zg_i ~ p(. | hg_i)                       posterior zg_i ~ q(. | hg_i, enc(s), z_i posterior)

Acting uses the agent level only (plus, for MAMBA, the messages of the transformer).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from algorithms.layers import Linear, gru_cell
from algorithms.world_model.config import WorldModelConfig
from algorithms.world_model.networks import AgentAttention, Decoder, DiscreteLatent, Encoder, mlp


@dataclass
class Latent:
    """One level's state: prior or posterior ``logits``, its straight-through sample ``stoch`` and GRU ``deter``."""

    logits: torch.Tensor | None  # None where only samples are kept (imagined trajectories)
    stoch: torch.Tensor
    deter: torch.Tensor

    def features(self) -> torch.Tensor:
        return torch.cat([self.stoch, self.deter], -1)

    def map(self, fn) -> Latent:
        return Latent(None if self.logits is None else fn(self.logits), fn(self.stoch), fn(self.deter))


@dataclass
class ModelState:
    agent: Latent
    glob: Latent | None = None

    def map(self, fn) -> ModelState:
        return ModelState(self.agent.map(fn), None if self.glob is None else self.glob.map(fn))

    def features(self) -> torch.Tensor:
        """[agent features; global features] (global omitted without a global level)."""
        if self.glob is None:
            return self.agent.features()
        return torch.cat([self.agent.features(), self.glob.features()], -1)

    def without_logits(self) -> ModelState:
        """Samples and recurrent states only: what an imagined trajectory needs to keep per step."""
        return ModelState(Latent(None, self.agent.stoch, self.agent.deter),
                          None if self.glob is None else Latent(None, self.glob.stoch, self.glob.deter))

    @staticmethod
    def stack(states: list[ModelState], axis: int = 0) -> ModelState:
        def stacked(level):
            return Latent(*(None if getattr(level(states[0]), k) is None else torch.stack([getattr(level(s), k)
                            for s in states], axis) for k in ("logits", "stoch", "deter")))

        return ModelState(stacked(lambda s: s.agent), None if states[0].glob is None else stacked(lambda s: s.glob))


class RecurrentLevel(nn.Module):
    """Input model (Linear + ReLU), one-step GRU and prior head of one level."""

    def __init__(self, input_dim: int, prior_extra: int, cfg: WorldModelConfig):
        super().__init__()
        self.input_model = nn.Sequential(Linear(input_dim, cfg.model_hidden), nn.ReLU())
        self.cell = nn.GRU(cfg.model_hidden, cfg.deterministic)
        self.prior = DiscreteLatent(cfg.deterministic + prior_extra, cfg.model_hidden, cfg.n_categoricals, cfg.n_classes)

    def step(self, x: torch.Tensor, deter: torch.Tensor) -> torch.Tensor:
        """GRU update for ``[..., N, in]`` inputs (all leading axes folded into the GRU batch).

        The official code calls ``nn.GRU`` on sequences of length 1; one GRU-cell step on the same parameters
        computes the same equations without cuDNN's per-call sequence set-up, can be captured in a CUDA graph
        and vectorised over seed members."""
        c = self.cell
        return gru_cell(x, deter, c.weight_ih_l0, c.weight_hh_l0, c.bias_ih_l0, c.bias_hh_l0)


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig, obs_dim: int, state_dim: int, n_agents: int, n_actions: int,
                 has_avail_actions: bool):
        super().__init__()
        self.cfg, self.n_agents, self.n_actions = cfg, n_agents, n_actions
        stoch, feat = cfg.stochastic, cfg.feat
        self.observation_encoder = Encoder(obs_dim, cfg.hidden, cfg.embed)
        self.observation_decoder = Decoder(feat, cfg.hidden, obs_dim)
        self.agent = RecurrentLevel(n_actions + stoch, stoch if cfg.global_level else 0, cfg)
        self.agent_posterior = DiscreteLatent(cfg.deterministic + cfg.embed, cfg.hidden, cfg.n_categoricals,
                                              cfg.n_classes)
        self.communication = (AgentAttention(cfg.communication_layers, cfg.model_hidden, cfg.model_hidden,
                                             cfg.attention_heads, cfg.communication_dropout, n_agents)
                              if cfg.communication else None)
        if cfg.global_level:
            self.state_encoder = Encoder(state_dim, cfg.hidden, cfg.state_embed)
            self.glob = RecurrentLevel(n_agents * n_actions + stoch, 0, cfg)
            self.global_posterior = DiscreteLatent(cfg.deterministic + stoch + cfg.state_embed, cfg.hidden,
                                                   cfg.n_categoricals, cfg.n_classes)
        head_in = 2 * feat if cfg.heads_use_global else feat
        self.reward_model = mlp(2 * feat if cfg.reward_uses_global else feat, 1, cfg.head_layers, cfg.head_hidden,
                                nn.ELU)
        self.pcont = mlp(head_in, 1, cfg.head_layers, cfg.head_hidden, nn.ELU)
        self.av_action = mlp(head_in, n_actions, cfg.head_layers, cfg.head_hidden, nn.ELU) if has_avail_actions else None
        self.q_features = mlp(cfg.hidden, cfg.head_hidden, 1, cfg.head_hidden, nn.ELU)
        self.q_action = Linear(cfg.head_hidden, n_actions)

    # ------------------------------------------------------------------ states
    def initial_state(self, batch: tuple[int, ...], device) -> ModelState:
        cfg = self.cfg

        def zeros():
            return Latent(torch.zeros(*batch, self.n_agents, cfg.stochastic, device=device),
                          torch.zeros(*batch, self.n_agents, cfg.stochastic, device=device),
                          torch.zeros(*batch, self.n_agents, cfg.deterministic, device=device))

        return ModelState(zeros(), zeros() if self.cfg.global_level else None)

    def head_features(self, state: ModelState) -> torch.Tensor:
        """Input of the pcont and available-action heads."""
        return state.features() if self.cfg.heads_use_global else state.agent.features()

    def agent_deter(self, action: torch.Tensor, stoch: torch.Tensor, deter: torch.Tensor,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
        """The agent GRU step; MAMBA mixes all agents' inputs with the transformer first (communication)."""
        x = self.agent.input_model(torch.cat([action, stoch], -1))
        if self.communication is not None:
            x = self.communication(x, mask)
        return self.agent.step(x, deter)

    def transition(self, action: torch.Tensor, prev: ModelState, mask: torch.Tensor | None = None) -> ModelState:
        """Prior of the next state given every agent's one-hot action ``[..., N, A]``."""
        deter = self.agent_deter(action, prev.agent.stoch, prev.agent.deter, mask)
        if prev.glob is None:
            logits, stoch = self.agent.prior(deter)
            return ModelState(Latent(logits, stoch, deter))
        joint = action.flatten(-2).unsqueeze(-2).expand(*action.shape[:-2], self.n_agents, -1)
        g_deter = self.glob.step(self.glob.input_model(torch.cat([joint, prev.glob.stoch], -1)), prev.glob.deter)
        g_logits, g_stoch = self.glob.prior(g_deter)
        # MABL conditions the agent prior on the global *prior* sample, in training and imagination alike.
        logits, stoch = self.agent.prior(torch.cat([deter, g_stoch], -1))
        return ModelState(Latent(logits, stoch, deter), Latent(g_logits, g_stoch, g_deter))

    def agent_posterior_latent(self, deter: torch.Tensor, obs_embed: torch.Tensor) -> Latent:
        logits, stoch = self.agent_posterior(torch.cat([deter, obs_embed], -1))
        return Latent(logits, stoch, deter)

    def posterior(self, prior: ModelState, obs_embed: torch.Tensor, state_embed: torch.Tensor | None) -> ModelState:
        agent = self.agent_posterior_latent(prior.agent.deter, obs_embed)
        if prior.glob is None:
            return ModelState(agent)
        g_logits, g_stoch = self.global_posterior(torch.cat([prior.glob.deter, state_embed, agent.stoch], -1))
        return ModelState(agent, Latent(g_logits, g_stoch, prior.glob.deter))

    # ------------------------------------------------------------------ sequences
    def embed(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Observation embeddings ``[..., N, E]`` and (MABL) the global state's, copied to every agent."""
        obs_embed = self.observation_encoder(obs)
        if not self.cfg.global_level:
            return obs_embed, None
        state_embed = self.state_encoder(state).unsqueeze(-2).expand(*obs_embed.shape[:-1], -1)
        return obs_embed, state_embed

    def observe_sequence(self, obs, state, action, last, time_axis: int = 0) -> tuple[ModelState, ModelState]:
        """``rollout_representation``: priors and posteriors for ``T`` steps (``[T, B, N, ...]``).

        Step t reads action ``a_t`` and observation ``o_{t+1}`` (the replay's index shift); the state is
        reset to zero after a step flagged ``last``. ``time_axis`` 1: K seed members' sequences
        ``[K, T, B, N, ...]`` on their stacked parameters, every step ``[K, B, N, ...]``
        (``algorithms/world_model/members.py``)."""
        obs_embed, state_embed = self.embed(obs, state)
        prev = self.initial_state(obs.shape[:time_axis] + obs.shape[time_axis + 1:-2], obs.device)
        priors, posts = [], []

        def at(x, t):
            return None if x is None else x.select(time_axis, t)

        for t in range(obs.shape[time_axis]):
            prior = self.transition(at(action, t), prev)
            post = self.posterior(prior, at(obs_embed, t), at(state_embed, t))
            keep = 1.0 - at(last, t).float()[..., None, None]
            prev = post.map(lambda x, keep=keep: x * keep)
            priors.append(prior)
            posts.append(post)
        return ModelState.stack(priors, time_axis), ModelState.stack(posts, time_axis)

