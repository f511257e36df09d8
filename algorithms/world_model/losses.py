"""World-model and policy losses, as in the official code.

Sources: jbr-ai-labs/mamba@2c97258 ``agent/optim/loss.py`` (model_loss, actor_loss, value_loss) and
``agent/optim/utils.py`` (rec_loss, info_loss, state_divergence_loss, compute_return, advantage, ppo_loss);
MABL's ``mabl/agent/optim/loss.py`` adds the global KL and reads [agent; global] features in the pcont and
available-action heads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.layers import each_member, per_member, softmax
from algorithms.world_model.rssm import ModelState, WorldModel

KL_EPS = 1e-7


def kl_balanced(post_logits: torch.Tensor, prior_logits: torch.Tensor, n_categoricals: int, n_classes: int,
                balance: float, mean=torch.mean) -> torch.Tensor:
    """``state_divergence_loss``: balance*KL(q||sg p) + (1-balance)*KL(sg q||p), summed over classes and
    *averaged* over categoricals (DreamerV2's sum divided by ``n_categoricals``), then averaged over the rest
    (by ``mean``: per seed member in ``model_loss``'s members form)."""
    q = softmax(post_logits.view(*post_logits.shape[:-1], n_categoricals, n_classes))
    p = softmax(prior_logits.view(*prior_logits.shape[:-1], n_categoricals, n_classes))

    def kl(a, b):
        return (a * (torch.log(a + KL_EPS) - torch.log(b + KL_EPS))).sum(-1)

    return mean(balance * kl(q, p.detach()).mean(-1) + (1 - balance) * kl(q.detach(), p).mean(-1))


def member_mean(x: torch.Tensor, members: int | None) -> torch.Tensor:
    """``x.mean()``; with ``members`` K (``x`` member-major: its own first axis, or folded into it), each
    member's mean, ``[K]``."""
    return x.mean() if members is None else x.reshape(members, -1).mean(1)


def time_slice(x: torch.Tensor, start: int | None, stop: int | None, time_axis: int = 0) -> torch.Tensor:
    """``x[start:stop]`` along ``time_axis``."""
    return x[(slice(None),) * time_axis + (slice(start, stop),)]


def next_features(state: ModelState, use_global: bool, time_axis: int = 0) -> torch.Tensor:
    """[z_t; h_{t+1}] along a ``[T, ...]`` sequence (T-1 steps): the stochastic state before an action and
    the deterministic state after it, so the reward and pcont heads predict r(s_t, a_t) and 1 - done_t."""
    levels = [state.agent] + ([state.glob] if use_global else [])
    return torch.cat([torch.cat([time_slice(lv.stoch, None, -1, time_axis), time_slice(lv.deter, 1, None, time_axis)], -1)
                      for lv in levels], -1)


def model_loss(model: WorldModel, batch: dict[str, torch.Tensor], members: bool = False
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """All weights 1: KL (per level) + reward + action information + reconstruction + pcont + availability.

    ``members``: K seed members' batches ``[K, T, ...]`` on their stacked parameters, without ``vmap``
    (``algorithms/world_model/members.py``): every loss is then each member's own mean, ``[K]``; a solo
    batch keeps the library's reductions (and their numbers, bit for bit)."""
    cfg = model.cfg
    obs, action, fake = batch["obs"], batch["action"], batch["fake"]
    t = 1 if members else 0  # the time axis

    def steps(x: torch.Tensor, start: int | None, stop: int | None) -> torch.Tensor:
        return time_slice(x, start, stop, t)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return member_mean(x, obs.shape[0] if members else None)

    def reduced(loss, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """A mean-reduced library loss; each member's its own call, whose backward (the mean folded in) has the
        solo call's bits."""
        return each_member(loss, prediction, target) if members else loss(prediction, target)

    prior, post_all = model.observe_sequence(obs, batch["state"], action, batch["last"], time_axis=t)
    prior, post = prior.map(lambda x: steps(x, None, -1)), post_all.map(lambda x: steps(x, None, -1))

    obs_pred, dec_hidden = model.observation_decoder(post.agent.features())
    real = 1.0 - steps(fake, None, -1).to(obs.dtype).unsqueeze(-1)
    obs_error = F.smooth_l1_loss(obs_pred, steps(obs, None, -1), reduction="none") * real
    losses = {"obs_loss": obs_error.flatten(1).sum(1) / real[0, ..., 0].numel() if members
              else obs_error.sum() / real[..., 0].numel()}
    losses["reward_loss"] = reduced(F.smooth_l1_loss, model.reward_model(next_features(post_all, cfg.reward_uses_global, t)),
                                    steps(batch["reward"], 1, None).unsqueeze(-1))
    # Bernoulli negative log-likelihoods (the official Independent(Bernoulli) heads), summed over the event.
    continues = 1.0 - steps(batch["done"], 1, None).to(obs.dtype).unsqueeze(-1)
    losses["pcont_loss"] = reduced(F.binary_cross_entropy_with_logits,
                                   model.pcont(next_features(post_all, cfg.heads_use_global, t)), continues)
    if model.av_action is not None:
        avail = steps(batch["avail"], None, -1).to(obs.dtype)
        losses["avail_loss"] = mean(F.binary_cross_entropy_with_logits(
            model.av_action(model.head_features(post)), avail, reduction="none").sum(-1))
    # Action information: the decoder's hidden layer at step t predicts the action that led to it.
    logits = model.q_action(F.relu(model.q_features(steps(dec_hidden, 1, None))))
    cross_entropy = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), steps(action, 1, -1).argmax(-1).reshape(-1),
                                    reduction="none")
    losses["info_loss"] = mean(cross_entropy * (1.0 - steps(fake, 1, -1).to(obs.dtype).reshape(-1)))
    losses["kl_agent"] = kl_balanced(post.agent.logits, prior.agent.logits, cfg.n_categoricals, cfg.n_classes,
                                     cfg.kl_balance, mean)
    if post.glob is not None:
        losses["kl_global"] = kl_balanced(post.glob.logits, prior.glob.logits, cfg.n_categoricals, cfg.n_classes,
                                          cfg.kl_balance, mean)
    return sum(losses.values()), losses


def lambda_returns(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor, bootstrap: torch.Tensor,
                   lam: float, gamma: float, time_axis: int = 0) -> torch.Tensor:
    """``compute_return``: TD(lambda) along ``time_axis``, bootstrapped with the value of the state after the
    last step.

    target_t = r_t + gamma d_t V_{t+1} (1 - lam);  G_t = target_t + gamma d_t lam G_{t+1};  G_H = V_H."""
    next_values = torch.cat([time_slice(value, 1, None, time_axis), bootstrap.unsqueeze(time_axis)], time_axis)
    target = reward + gamma * discount * next_values * (1 - lam)
    out, acc = [], bootstrap
    for t in reversed(range(reward.shape[time_axis])):
        acc = target.select(time_axis, t) + gamma * discount.select(time_axis, t) * acc * lam
        out.append(acc)
    return torch.stack(out[::-1], time_axis)


def normalise_advantage(adv: torch.Tensor, members: bool = False) -> torch.Tensor:
    """``advantage``: batch standardisation with std + 1e-4, NaN set to 0; ``members``: each seed member's
    own (``adv`` ``[K, ...]``)."""
    if members:  # each member's own calls: a row-wise std sums in another order than a whole tensor's
        mean, std = (per_member(each_member(f, adv), adv) for f in (torch.mean, torch.std))
    else:
        mean, std = adv.mean(), adv.std()
    return torch.nan_to_num(((adv - mean) / (1e-4 + std)).detach(), nan=0.0)


def masked_logits(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Unavailable actions get logit -1e10, as in the official collection, imagination and PPO."""
    return logits if avail is None else logits.masked_fill(~avail, -1e10)


def ppo_actor_loss(logits: torch.Tensor, old_logits: torch.Tensor, actions: torch.Tensor, advantage: torch.Tensor,
                   entropy_weight: float | torch.Tensor, clip: float, members: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``actor_loss``: clipped surrogate plus entropy weight * sum p log p; returns (loss, mean entropy).
    ``members``: K seed members' minibatches ``[K, ...]`` with their entropy weights ``[K]``; each member's
    own means, ``[K]``."""
    k = logits.shape[0] if members else None
    if members:
        entropy_weight = per_member(entropy_weight, logits)
    log_probs = logits.log_softmax(-1)
    rho = (log_probs.gather(-1, actions) - old_logits.log_softmax(-1).gather(-1, actions)).exp()
    surrogate = -torch.min(rho * advantage, rho.clamp(1 - clip, 1 + clip) * advantage)
    neg_entropy = (log_probs.exp() * log_probs).sum(-1, keepdim=True)
    return member_mean(surrogate + neg_entropy * entropy_weight, k), -member_mean(neg_entropy, k)
