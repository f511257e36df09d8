"""Did a change alter what the suite computes? Eight short runs, every logged metric, compared bit for bit.

    python -m suites.checks.fingerprint --write before.json     # on the code before the change
    python -m suites.checks.fingerprint --compare before.json   # after it: exit 1 and the differences if any

The runs: MAPPO, MAMBA, MABL and the ablation, each on smac/3m and flatland/2_agents, at the ``tiny``
preset (the world models' CI sizes) for 1,024 environment steps, seed 0, on the CPU, one process. A fingerprint
holds every metric's steps and values except wall times (``time/*``) and the environment step rate, which no
two runs share. For refactors (moving code between files, renaming) that must not change behaviour: a
difference in any value is a change in behaviour, however small.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ALGORITHMS = ("mappo", "mamba", "mabl", "mabl_single_level")
TASKS = ("smac/3m", "flatland/2_agents")
STEPS = 1024
UNTIMED = ("time/",)


def fingerprint(results: Path) -> dict[str, dict]:
    """Train the eight runs into ``results`` and read back, per run id, every metric but the timed ones."""
    from suites import run as cli

    code = cli.main(["smoke", "--tasks", *TASKS, "--algorithms", *ALGORITHMS, "--seeds", "1", "--steps", str(STEPS),
                     "--preset", "tiny", "--device", "cpu", "--backend", "sim", "--results", str(results)])
    if code != 0:
        raise RuntimeError(f"the fingerprint's runs did not all complete (exit status {code}); see above")
    prints = {}
    for metrics in sorted((results / "runs").glob("**/seed_*/1/metrics.json")):
        run_id = str(metrics.parent.parent.relative_to(results / "runs"))
        series = json.loads(metrics.read_text())
        prints[run_id] = {name: {"steps": s["steps"], "values": s["values"]}
                          for name, s in sorted(series.items()) if not name.startswith(UNTIMED)}
    return prints


def differences(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """Every run, metric and step where ``after`` is not ``before`` exactly, a line each."""
    lines = [f"{run}: only {'before' if run in before else 'after'}" for run in sorted(set(before) ^ set(after))]
    for run in sorted(set(before) & set(after)):
        old, new = before[run], after[run]
        lines += [f"{run} {name}: only {'before' if name in old else 'after'}" for name in sorted(set(old) ^ set(new))]
        for name in sorted(set(old) & set(new)):
            if old[name]["steps"] != new[name]["steps"]:
                lines.append(f"{run} {name}: logged at steps {new[name]['steps']}, before {old[name]['steps']}")
                continue
            for step, a, b in zip(old[name]["steps"], old[name]["values"], new[name]["values"]):
                if a != b:
                    lines.append(f"{run} {name} step {step}: {b!r}, before {a!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m suites.checks.fingerprint", description=__doc__.split("\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--write", type=Path, metavar="FILE", help="write this code's fingerprint to FILE")
    what.add_argument("--compare", type=Path, metavar="FILE", help="compare this code's fingerprint with FILE's")
    args = p.parse_args(argv)
    if args.compare is not None and not args.compare.is_file():
        p.error(f"--compare {args.compare}: no such file; write one first with --write on the code before the change")
    with tempfile.TemporaryDirectory(prefix="fingerprint-") as tmp:
        prints = fingerprint(Path(tmp))
    if args.write is not None:
        args.write.write_text(json.dumps(prints, indent=1) + "\n")
        print(f"wrote the fingerprint of {len(prints)} runs ({sum(len(m) for m in prints.values())} metrics) to {args.write}")
        return 0
    lines = differences(json.loads(args.compare.read_text()), prints)
    for line in lines[:50]:
        print(line)
    if lines:
        print(f"{len(lines)} difference(s) from {args.compare}" + (" (first 50 shown)" if len(lines) > 50 else ""))
        return 1
    print(f"identical: every metric of the {len(prints)} runs equals {args.compare}'s, bit for bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
