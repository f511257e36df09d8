"""Seed members' environments as one batch: the simulator's member axis, and other families stacked behind the same interface."""
import torch

import envs
from envs.members import make_members


def test_simulator_members_step_exactly_as_simulators_of_their_own_seed():
    seeds, b = (5, 7, 11), 4
    group = make_members("smac/3m", list(seeds), b, backend="sim", checked=False)
    alone = [envs.make("smac/3m", b, seed=s, backend="sim", checked=False) for s in seeds]
    step, steps = group.reset(), [e.reset() for e in alone]
    pick = torch.Generator().manual_seed(0)
    ended = 0
    for _ in range(120):
        actions = torch.cat([torch.multinomial(s.avail_actions.flatten(0, 1).float(), 1, generator=pick).view(b, -1)
                             for s in steps])
        step = group.step(actions)
        steps = [e.step(a) for e, a in zip(alone, actions.split(b))]
        for k, own in enumerate(steps):
            mine = step.rows(k * b, (k + 1) * b)
            for field in ("obs", "state", "avail_actions", "reward", "done", "final_obs"):
                assert torch.equal(getattr(mine, field), getattr(own, field)), (k, field)
        ended += int(step.done.sum())
    assert ended > 0  # restarts happened, each from the member's own generator
    # a member's snapshot is a one-member simulator's: it continues alone exactly as inside the group
    solo = envs.make("smac/3m", b, seed=0, backend="sim", checked=False)
    solo.reset()
    solo.set_state(group.member_state(1))
    actions = torch.zeros(3 * b, 3, dtype=torch.long) + 1
    assert torch.equal(solo.step(actions[:b]).obs, group.step(actions).rows(b, 2 * b).obs)


def test_other_families_stack_members_behind_the_same_interface():
    group = make_members("flatland/2_agents", [0, 1], 2, workers=1, build_ahead=False)
    alone = envs.make("flatland/2_agents", 2, seed=1, workers=1, build_ahead=False)
    try:
        assert group.members == 2 and group.num_envs == 4
        assert torch.equal(group.reset().rows(2, 4).obs, alone.reset().obs)
    finally:
        group.close()
        alone.close()
