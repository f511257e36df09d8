"""One side of ``suites/checks/fidelity.py``: plays a map in another SMAC re-implementation, SMAClite or SMAX.

Runs under the reference's own interpreter (a side environment), with numpy and the reference only: no torch,
nothing of this suite. Each step it sends what every agent sees, as the arrays of
``envs.smac.tactical_view.TacticalView`` built from the reference's own units (the same visibility rule as
SMAC's observation: alive and closer than 9), and reads back actions in SMAC's indices. When all episodes
are over it sends one record per episode. Messages are pickled over stdin/stdout.

    SMAClite: python -m venv lite && lite/bin/pip install <checkout of uoe-agents/smaclite>
              then lite/bin/pip install -U 'rtree>=1.3' (its pinned Rtree 1.0.0 needs Debian's libspatialindex-dev)
    SMAX:     python -m venv smax && smax/bin/pip install jaxmarl==0.2.0
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys

import numpy as np

SIGHT_RANGE = 9.0
N_NO_ATTACK = 6


CHANNEL = sys.stdout.buffer  # main() moves it off file descriptor 1, so the references' prints go to stderr


def send(message) -> None:
    pickle.dump(message, CHANNEL)
    CHANNEL.flush()


def ask_actions(view: dict) -> np.ndarray:
    send(("view", view))
    return pickle.load(sys.stdin.buffer)


def tactical_view(pos, alive, health, missing, healer, n_agents, avail) -> dict:
    """The view's arrays from unit arrays ``[B,U,...]`` (allies first); ``healer`` [N] marks healing agents."""
    N = n_agents
    offset = pos[:, None, :, :] - pos[:, :N, None, :]  # [B,N,U,2] from agent i to unit j
    dist = np.linalg.norm(offset, axis=-1)
    visible = alive[:, None, :] & alive[:, :N, None] & (dist < SIGHT_RANGE)
    visible[:, np.arange(N), np.arange(N)] = False
    offset = offset * visible[..., None]  # the observation holds nothing of units out of sight
    return {
        "avail": avail.astype(bool), "healer": np.broadcast_to(healer, visible.shape[:2]).copy(),
        "enemy_visible": visible[:, :, N:], "enemy_offset": offset[:, :, N:].astype(np.float32),
        "enemy_health": (health[:, None, N:] * visible[:, :, N:]).astype(np.float32),
        "ally_visible": visible[:, :, :N], "ally_offset": offset[:, :, :N].astype(np.float32),
        "ally_missing": (missing[:, None, :N] * visible[:, :, :N]).astype(np.float32),
    }


def episode_record(won, length, enemy_left, enemy_full, allies_alive, timeout) -> dict:
    return {"won": bool(won), "length": int(length), "enemy_destroyed": float(1 - enemy_left / enemy_full),
            "allies_alive": int(allies_alive), "timeout": bool(timeout)}


def living(env, n_agents: int, n_enemies: int) -> np.ndarray:
    return np.array([i in env.agents for i in range(n_agents)] + [j in env.enemies for j in range(n_enemies)])


def play_smaclite(map_name: str, episodes: int, seed: int, limit: int) -> list[dict]:
    import gymnasium as gym
    import smaclite  # noqa: F401  (registers the environments)

    env = gym.make(f"smaclite/{map_name}-v0", seed=seed).unwrapped
    N, E = env.n_agents, env.n_enemies
    out = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        agents, enemies = dict(env.agents), dict(env.enemies)  # id_in_faction -> unit, kept after deaths
        units = [agents[i] for i in range(N)] + [enemies[j] for j in range(E)]
        healer = np.array([u.combat_type.name == "HEALING" for u in units[:N]])
        full = sum(u.max_hp + u.max_shield for u in units[N:])
        won, steps, done = False, 0, False
        while not done and steps < limit:
            alive = living(env, N, E)[None]  # SMAClite drops the dead from its dicts (some keep hit points)
            pos = np.array([u.pos for u in units], dtype=np.float32)[None]
            health = np.array([u.hp + u.shield for u in units], dtype=np.float32)[None] * alive
            missing = np.array([u.max_hp - u.hp for u in units], dtype=np.float32)[None] * alive
            avail = np.array(env.get_avail_actions(), dtype=bool)[None]
            actions = ask_actions(tactical_view(pos, alive, health, missing, healer, N, avail))[0]
            _, _, done, _, info = env.step([int(a) for a in actions])
            won, steps = info["battle_won"], steps + 1
        alive = living(env, N, E)
        left = sum(u.hp + u.shield for u, a in zip(units[N:], alive[N:]) if a)
        out.append(episode_record(won, steps, left, full, alive[:N].sum(), not done))
    return out


# SMAX's discrete actions: 0 north, 1 east, 2 south, 3 west, 4 stop, 5 + j attack (smax_env.py).
SMAC_TO_SMAX = np.array([4, 4, 0, 2, 1, 3])  # SMAC no-op, stop, north, south, east, west


def play_smax(map_name: str, episodes: int, seed: int, limit: int) -> list[dict]:
    import jax
    import jax.numpy as jnp
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

    env = HeuristicEnemySMAX(scenario=map_name_to_scenario(map_name), max_steps=limit)
    N, E = env.num_allies, env.num_enemies
    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    _, state = jax.vmap(env.reset)(keys)
    step = jax.jit(jax.vmap(env.step_env))
    avail_fn = jax.jit(jax.vmap(env.get_avail_actions))
    full = np.asarray(env._env.unit_type_health)[np.asarray(state.state.unit_types[:, N:])].sum(1)
    finished = np.zeros(episodes, dtype=bool)
    records: list[dict | None] = [None] * episodes
    t = 0
    while not finished.all():
        inner = state.state
        alive = np.asarray(inner.unit_alive)
        health = np.asarray(inner.unit_health) * alive
        avail_smax = np.stack([np.asarray(v) for v in avail_fn(state).values()], 1).astype(bool)  # [B,N,5+E]
        avail = np.zeros((episodes, N, N_NO_ATTACK + E), dtype=bool)
        avail[..., 0] = ~alive[:, :N]
        avail[..., 1] = alive[:, :N]
        avail[..., 2:6] = avail_smax[..., [0, 2, 1, 3]] & alive[:, :N, None]
        avail[..., N_NO_ATTACK:] = avail_smax[..., 5:]
        view = tactical_view(np.asarray(inner.unit_positions), alive, health, np.zeros_like(health),
                             np.zeros(N, dtype=bool), N, avail)
        actions = ask_actions(view)
        smax_actions = np.where(actions >= N_NO_ATTACK, actions - 1, SMAC_TO_SMAX[np.minimum(actions, 5)])
        t += 1
        keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
        action_dict = {a: jnp.asarray(smax_actions[:, i]) for i, a in enumerate(env.agents)}
        _, state, _, dones, _ = step(keys, state, action_dict)
        done = np.asarray(dones["__all__"])
        alive = np.asarray(state.state.unit_alive)
        for b in np.flatnonzero(done & ~finished):
            won = alive[b, :N].any() and not alive[b, N:].any()
            left = (np.asarray(state.state.unit_health)[b, N:] * alive[b, N:]).sum()
            records[b] = episode_record(won, t, left, full[b], alive[b, :N].sum(),
                                        alive[b, :N].any() and alive[b, N:].any())
        finished |= done
    return records


def smax_rate(map_name: str, num_envs: int, repeats: int = 5, steps: int = 30) -> float:
    """SMAX's environment steps per second on ``num_envs`` battles under random valid actions, timed as
    ``suites/checks/throughput.py`` times our simulator (best of ``repeats`` blocks of ``steps`` steps after a warm-up
    that compiles). Its heuristic enemy and automatic resets are inside the timed step."""
    import time

    import jax
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

    env = HeuristicEnemySMAX(scenario=map_name_to_scenario(map_name))

    def one(key, state):
        noise_key, step_key = jax.random.split(key)
        avail = env.get_avail_actions(state)
        noise = {a: jax.random.uniform(jax.random.fold_in(noise_key, i), avail[a].shape) for i, a in enumerate(env.agents)}
        actions = {a: (noise[a] * avail[a]).argmax() for a in env.agents}  # a random available action
        return env.step(step_key, state, actions)[1]

    step = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
    state = jax.vmap(env.reset)(keys)[1]
    for _ in range(3):
        keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
        state = step(keys, state)
    jax.block_until_ready(state)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
            state = step(keys, state)
        jax.block_until_ready(state)
        best = min(best, time.perf_counter() - start)
    return steps * num_envs / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", choices=("smaclite", "smax"), required=True)
    parser.add_argument("--map", required=True)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="SMAC's episode limit of the map")
    parser.add_argument("--throughput", type=int, metavar="ENVS", help="SMAX only: time ENVS battles instead of playing")
    args = parser.parse_args()
    global CHANNEL
    CHANNEL = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    if args.throughput:
        send(("done", smax_rate(args.map, args.throughput)))
        return
    play = play_smaclite if args.reference == "smaclite" else play_smax
    send(("done", play(args.map, args.episodes, args.seed, args.limit)))


if __name__ == "__main__":
    main()
