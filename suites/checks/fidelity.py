"""How our SMAC simulator's battles compare with other SMAC re-implementations, under scripted play.

    python -m suites.checks.fidelity [--maps 3m corridor ...] [--policies attack_nearest focus_fire]
                               [--episodes 256] [--reference-episodes 32]
                               [--smaclite PYTHON] [--smax PYTHON] [--markdown FILE]

The scripted policies of ``algorithms/scripted`` play every map in our simulator and, where they are installed
in side environments, in SMAClite (uoe-agents/smaclite) and SMAX (jaxmarl 0.2.0): one policy
implementation, each reference reached through ``scripts/fidelity_reference.py`` running under that
environment's interpreter (``--smaclite``/``--smax``, or SMACLITE_PYTHON/SMAX_PYTHON). Neither is a
dependency of this suite; a missing one is named with how to install it and skipped. Per map, policy and
simulator (shown as ours / SMAClite / SMAX): win rate with its standard error, episode length, the fraction
of enemy hit points + shields destroyed, allies alive at the end and the share of episodes that hit SMAC's
time limit.
"""
from __future__ import annotations

import argparse
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import torch

import envs
from algorithms import make_algorithm, make_config
from algorithms.scripted.policies import POLICIES
from envs.smac.maps import MAPS, get_map
from envs.smac.tactical_view import ObservationDecoder, TacticalView

WORKER = Path(__file__).resolve().parents[2] / "scripts" / "fidelity_reference.py"
# Maps each reference ships (smaclite/env/maps/smaclite_maps; jaxmarl smax_env.py MAP_NAME_TO_SCENARIO).
REFERENCE_MAPS = {
    "smaclite": {"10m_vs_11m", "27m_vs_30m", "2s3z", "2s_vs_1sc", "3s5z", "3s5z_vs_3s6z", "3s_vs_5z", "corridor",
                 "MMM", "MMM2", "2c_vs_64zg", "bane_vs_bane"},
    "smax": {"3m", "2s3z", "3s5z", "8m", "5m_vs_6m", "10m_vs_11m", "27m_vs_30m", "3s5z_vs_3s6z", "3s_vs_5z",
             "6h_vs_8z", "25m"},
}
INSTALL = {
    "smaclite": "python -m venv lite && lite/bin/pip install <a checkout of uoe-agents/smaclite> "
                "and lite/bin/pip install -U 'rtree>=1.3' (its pinned Rtree needs Debian's libspatialindex-dev), "
                "then --smaclite lite/bin/python",
    "smax": "python -m venv smax && smax/bin/pip install jaxmarl==0.2.0, then --smax smax/bin/python",
}
PROBE = {"smaclite": "import smaclite", "smax": "import jaxmarl.environments.smax"}


def play_ours(map_name: str, policy: str, episodes: int, seed: int) -> list[dict]:
    """One episode in each of ``episodes`` batched simulator environments, acting through the SMAC observation."""
    env = envs.make(f"smac/{map_name}", episodes, seed=seed, backend="sim")
    script = make_algorithm(policy, env.spec, make_config(policy, env.spec, "paper"))  # the registered baseline itself
    decode = ObservationDecoder(map_name)  # its tables turn the enemy state rows into hit points
    N, E = env.n_agents, env.n_enemies
    enemy_full = float((decode.enemy_hp_max + decode.enemy_shield_max).sum())
    enemy_row = 3 + env.shield_bits_enemy + env.map.unit_type_bits
    enemy_start = N * (4 + env.shield_bits_ally + env.map.unit_type_bits)
    step, running, records = env.reset(), torch.ones(episodes, dtype=torch.bool), [None] * episodes
    length = 0
    while bool(running.any()):
        step = env.step(script.act(step.obs, step.avail_actions, script.initial_memory(episodes), step.done)[0])
        length += 1
        rows = step.final_state[:, enemy_start:enemy_start + E * enemy_row].reshape(episodes, E, enemy_row)
        left = rows[..., 0] * decode.enemy_hp_max
        if env.shield_bits_enemy:
            left = left + rows[..., 3] * decode.enemy_shield_max
        for b in (running & step.done).nonzero().flatten().tolist():
            records[b] = {"won": bool(step.info["won"][b]), "length": length,
                          "enemy_destroyed": 1 - float(left[b].sum()) / enemy_full,
                          "allies_alive": int(step.final_alive[b].sum()), "timeout": bool(step.info["episode_limit"][b])}
        running &= ~step.done
    return records


def play_reference(python: str, reference: str, map_name: str, policy: str, episodes: int, seed: int) -> list[dict]:
    """Episodes played in ``reference`` by the worker under ``python``; our policy answers each step."""
    command = [python, str(WORKER), "--reference", reference, "--map", map_name, "--episodes", str(episodes),
               "--seed", str(seed), "--limit", str(get_map(map_name).limit)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as worker:
        while True:
            try:
                kind, payload = pickle.load(worker.stdout)
            except EOFError:
                raise RuntimeError(f"{reference} worker for {map_name} stopped (exit {worker.wait()}); "
                                   "its messages are above") from None
            if kind == "done":
                return payload
            view = TacticalView(**{k: torch.from_numpy(v) for k, v in payload.items()})
            pickle.dump(POLICIES[policy](view).numpy(), worker.stdin)
            worker.stdin.flush()


def summarise(records: list[dict]) -> dict:
    n = len(records)
    win = sum(r["won"] for r in records) / n
    mean = {k: sum(float(r[k]) for r in records) / n for k in ("length", "enemy_destroyed", "allies_alive", "timeout")}
    return {"episodes": n, "win": win, "win_se": math.sqrt(win * (1 - win) / n), **mean}


def available_references(args) -> dict[str, str]:
    """Side interpreters that can import their reference; the others are named with how to install them."""
    found = {}
    for name in ("smaclite", "smax"):
        python = getattr(args, name) or os.environ.get(f"{name.upper()}_PYTHON")
        ok = python and subprocess.run([python, "-c", PROBE[name]], capture_output=True).returncode == 0
        if ok:
            found[name] = python
        else:
            why = f"{python} cannot import it" if python else "no interpreter given"
            print(f"note: {name} skipped ({why}); to compare with it: {INSTALL[name]}", file=sys.stderr)
    return found


SIMULATORS = ("ours", "smaclite", "smax")
COLUMNS = (  # (heading, how one simulator's summary is shown)
    ("win rate ± s.e.", lambda s: f"{s['win']:.2f} ± {s['win_se']:.2f}"),
    ("episode length", lambda s: f"{s['length']:.0f}"),
    ("enemy hp + shields destroyed", lambda s: f"{s['enemy_destroyed']:.2f}"),
    ("allies alive at the end", lambda s: f"{s['allies_alive']:.1f}"),
    ("time-limit share", lambda s: f"{s['timeout']:.2f}"),
)


def markdown(rows: list[tuple]) -> str:
    """One line per map and policy; each column gives ours / SMAClite / SMAX ("–" where one lacks the map)."""
    by_key: dict[tuple, dict] = {}
    for map_name, policy, simulator, summary in rows:
        by_key.setdefault((map_name, policy), {})[simulator] = summary
    head = "| map | policy | " + " | ".join(h for h, _ in COLUMNS) + " |\n|---|---|" + "---|" * len(COLUMNS) + "\n"
    lines = [f"| {m} | {p} | " + " | ".join(" / ".join(show(r[sim]) if sim in r else "–" for sim in SIMULATORS)
                                            for _, show in COLUMNS) + " |\n" for (m, p), r in by_key.items()]
    return head + "".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Compare the SMAC simulator with SMAClite and SMAX under scripted play.")
    parser.add_argument("--maps", nargs="+", default=sorted(MAPS), help="default: every map of the simulator")
    parser.add_argument("--policies", nargs="+", default=sorted(POLICIES), choices=sorted(POLICIES))
    parser.add_argument("--episodes", type=int, default=256, help="episodes per map and policy in our simulator")
    parser.add_argument("--reference-episodes", type=int, default=32, help="episodes per map and policy in a reference")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smaclite", help="python of a side environment with smaclite installed")
    parser.add_argument("--smax", help="python of a side environment with jaxmarl 0.2.0 installed")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    unknown = [m for m in args.maps if m not in MAPS]
    if unknown:
        parser.error(f"unknown maps {', '.join(unknown)}; valid maps: {', '.join(sorted(MAPS))}")
    references = available_references(args)
    rows = []
    for map_name in args.maps:
        for policy in args.policies:
            first = len(rows)
            rows.append((map_name, policy, "ours", summarise(play_ours(map_name, policy, args.episodes, args.seed))))
            for name, python in references.items():
                if map_name in REFERENCE_MAPS[name]:
                    records = play_reference(python, name, map_name, policy, args.reference_episodes, args.seed)
                    rows.append((map_name, policy, name, summarise(records)))
            print(markdown(rows[first:]).splitlines()[-1], flush=True)
    table = markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
