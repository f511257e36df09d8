"""Two scripted SMAC policies: each map's difficulty floor, and the probe that compares SMAC simulators.

Both are decentralised: an agent decides from its own :class:`~envs.smac.tactical_view.TacticalView`
(its observation decoded into map units) and its available actions. Each agent
- attacks an enemy it may attack: the nearest (``attack_nearest``) or the one with the least hit points +
  shields left (``focus_fire``; ties to the lower index);
- otherwise steps toward the nearest enemy it sees, along the axis of the larger offset (the other
  axis if that move is unavailable);
- otherwise stops.
A healer (the Medivac) heals the ally it may heal with the most hit points missing; with none damaged in
reach it steps toward the most damaged ally it sees, and stops when no ally it sees is damaged.
"""
from __future__ import annotations

import torch

from envs.smac.layout import N_NO_ATTACK
from envs.smac.tactical_view import TacticalView

STOP = 1
NORTH, SOUTH, EAST, WEST = 2, 3, 4, 5
INF = float("inf")


def attack_nearest(view: TacticalView) -> torch.Tensor:
    return _act(view, view.enemy_offset.norm(dim=-1))


def focus_fire(view: TacticalView) -> torch.Tensor:
    return _act(view, view.enemy_health)


POLICIES = {"attack_nearest": attack_nearest, "focus_fire": focus_fire}


def _step_toward(view: TacticalView, offset: torch.Tensor) -> torch.Tensor:
    """The cardinal move ``[B,N]`` along the larger component of ``offset`` [B,N,2], the other axis when
    that one is unavailable, stop when neither is."""
    dx, dy = offset[..., 0], offset[..., 1]
    along_x = torch.where(dx > 0, EAST, WEST)
    along_y = torch.where(dy > 0, NORTH, SOUTH)
    x_first = dx.abs() > dy.abs()
    first, second = torch.where(x_first, along_x, along_y), torch.where(x_first, along_y, along_x)
    ok_first = view.avail.gather(2, first.unsqueeze(-1)).squeeze(-1)
    ok_second = view.avail.gather(2, second.unsqueeze(-1)).squeeze(-1)
    return torch.where(ok_first, first, torch.where(ok_second, second, torch.full_like(first, STOP)))


def _pick(score: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the lowest ``score`` where ``allowed`` (ties to the lower index) and whether any was allowed."""
    masked = torch.where(allowed, score, torch.full_like(score, INF))
    return masked.argmin(-1), allowed.any(-1)


def _gather_offset(offset: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return offset.gather(2, index[..., None, None].expand(*index.shape, 1, 2)).squeeze(2)


def _act(view: TacticalView, enemy_score: torch.Tensor) -> torch.Tensor:
    E, N = view.enemy_visible.shape[-1], view.ally_visible.shape[-1]
    slots = torch.nn.functional.pad(view.avail[..., N_NO_ATTACK:], (0, max(0, N - E)))  # healer slots are allies
    # fighters: attack the best enemy they may attack, else approach the nearest enemy they see
    target, can_attack = _pick(enemy_score, slots[..., :E])
    nearest, sees_enemy = _pick(view.enemy_offset.norm(dim=-1), view.enemy_visible)
    approach = _step_toward(view, _gather_offset(view.enemy_offset, nearest))
    fighter = torch.where(can_attack, target + N_NO_ATTACK, torch.where(sees_enemy, approach, STOP))
    # healers: heal the ally missing most hit points, else approach the most damaged ally they see
    missing = -view.ally_missing
    patient, can_heal = _pick(missing, slots[..., :N] & (view.ally_missing > 0))
    hurt, sees_hurt = _pick(missing, view.ally_visible & (view.ally_missing > 0))
    toward_hurt = _step_toward(view, _gather_offset(view.ally_offset, hurt))
    healer = torch.where(can_heal, patient + N_NO_ATTACK, torch.where(sees_hurt, toward_hurt, STOP))
    action = torch.where(view.healer, healer, fighter)
    return torch.where(view.avail[..., 0], torch.zeros_like(action), action)  # dead agents: no-op
