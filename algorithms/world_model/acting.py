"""Acting and collection: the decentralised policy each agent runs, and how a transition enters the replay.

After jbr-ai-labs/mamba@2c97258 ``agent/controllers/DreamerController.py`` and
``agent/workers/DreamerWorker.py`` (acting, absorbing states), and aravindvenu7/MABL@9327343 ``mabl/``."""
from __future__ import annotations

import torch

from algorithms.base import Transition
from algorithms.layers import one_hot
from algorithms.sampling import sample_index
from algorithms.world_model.config import WorldModelConfig
from algorithms.world_model.losses import masked_logits
from algorithms.world_model.networks import Actor
from algorithms.world_model.replay import SequenceReplay
from algorithms.world_model.rssm import WorldModel
from envs.spec import EnvSpec


class DecentralisedPolicy:
    """Each agent's memory is [h (its GRU state); z (its posterior sample); its previous action, one-hot]."""

    def __init__(self, model: WorldModel, actor: Actor, spec: EnvSpec, config: WorldModelConfig):
        self.model, self.actor, self.spec, self.config = model, actor, spec, config

    def initial_memory(self, num_envs: int, device: torch.device) -> torch.Tensor:
        cfg = self.config
        return torch.zeros(num_envs, self.spec.n_agents, cfg.deterministic + cfg.stochastic + self.spec.n_actions,
                           device=device)

    @torch.no_grad()
    def act(self, obs, avail_actions, memory, first, explore, neighbours):
        """Agent GRU on the agent's own previous action and latent, posterior on its own observation, actor on
        [z; h]. MAMBA's transformer mixes all agents' (previous action, latent) before the GRU: its agents
        exchange messages at execution, on Flatland only with the trains each one observes (``neighbours``,
        as the official ``DreamerWorker`` masks them). MABL and the ablation read nothing but the agent's own
        inputs.

        Unavailable actions are masked only where the model has an available-action head (tasks with action
        masks: SMAC), as the official worker does (``_select_actions`` passes no mask on Flatland): there the
        policy chooses freely, the environment replaces a forced move by 0, and the replay keeps the chosen
        action, so the world model learns that such choices change nothing — which imagination, with no head
        to mask by, relies on."""
        cfg, model = self.config, self.model
        memory = memory * (~first).float()[..., None, None]
        # contiguous parts: F.linear adds the bias of a strided input after its product, of a contiguous one within
        # it, and seed members' stacked layers compute the latter (a float64 GRU step differs in the last bit)
        deter, stoch, prev_action = (part.contiguous() for part in memory.split(
            [cfg.deterministic, cfg.stochastic, self.spec.n_actions], -1))
        mask = None
        if neighbours is not None and model.communication is not None:
            mask = ~(neighbours | torch.eye(self.spec.n_agents, dtype=torch.bool, device=neighbours.device))
        deter = model.agent_deter(prev_action, stoch, deter, mask)
        post = model.agent_posterior_latent(deter, model.observation_encoder(obs))
        logits = masked_logits(self.actor(post.features()), avail_actions if self.spec.action_masks else None)
        actions = sample_index(logits.softmax(-1)) if explore else logits.argmax(-1)
        next_memory = torch.cat([deter, post.stoch, one_hot(actions, self.spec.n_actions)], -1)
        return actions, next_memory


def store(replay: SequenceReplay, transition: Transition, per_agent_done: bool) -> None:
    """One batched transition into the replay. Flatland (``per_agent_done``): finished trains are absorbing
    ("fake") agents; SMAC: the team's done for every agent, fake only in absorbing entries."""
    n = transition.alive.shape[1]
    if per_agent_done:
        fake = ~transition.alive
        done = transition.done.unsqueeze(1) | ~transition.final_alive
    else:
        fake = torch.zeros_like(transition.alive)
        done = transition.done.unsqueeze(1).expand(-1, n)
    obs = transition.obs * (~fake).unsqueeze(-1).float()
    replay.add(obs, transition.state, transition.avail_actions, fake, transition.actions, transition.agent_reward, done,
               transition.done, transition.terminated)
