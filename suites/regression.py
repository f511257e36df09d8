"""CI regression checks on short runs: the ``regression`` suite (every algorithm's ``tiny`` preset on
smac/3m, smac/2s3z and flatland/2_agents, 2,048 steps, seed 0) compared with the reference summaries
committed in ``tests/regression_reference/``.

    python -m suites.regression                      # run the suite into a fresh directory and compare (exit 1 on a regression)
    python -m suites.regression --check-throughput   # ... and fail on a slowdown too (a quiet machine; tox -e bench)
    python -m suites.regression --refresh            # run it and rewrite tests/regression_reference/ (then commit the files)

Per run the check requires: every training loss finite; each fitted loss (all but the PPO surrogate
objectives) that fell in the reference run (mean of its last third below the mean of its first third)
still falls; the absolute metric (SMAC win rate, Flatland completion) within ``BAND`` of the reference.
CPU runs are deterministic for a given torch build, so the band only absorbs changes across builds and
platforms. Training throughput is reported against the reference's, and a run below half of it is
flagged SLOW; it fails the check only with ``--check-throughput``, because a machine busy with other work
makes any run slow (the tests' pass or fail must not depend on what else the machine does).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from suites.launching.records import attempts

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "regression_reference"
BAND = 0.25
THROUGHPUT_FLOOR = 0.5
SURROGATES = {"train/actor_loss", "train/policy_loss"}  # PPO objectives: no reason to fall on a short run


def _falls(values: list[float]) -> bool:
    third = max(1, len(values) // 3)
    return len(values) >= 2 and sum(values[-third:]) / third < sum(values[:third]) / third


def summarise(record_dir: Path) -> dict:
    """The numbers a regression check compares, from one completed run's Sacred record."""
    attempt = record_dir / str(attempts(record_dir)[-1][0])
    metrics = json.loads((attempt / "metrics.json").read_text())
    config = json.loads((attempt / "config.json").read_text())
    metric = config["env_spec"]["metric"]
    losses = {k: v["values"] for k, v in metrics.items() if k.startswith("train/") and k.endswith("_loss")}
    fitted = {k: v for k, v in losses.items() if k not in SURROGATES}
    return {
        "task": config["task"], "algorithm": config["algorithm"], "steps": config["budget_steps"],
        "metric": metric, "absolute": metrics[f"absolute/{metric}"]["values"][-1],
        "steps_per_second": metrics["time/steps_per_second"]["values"][-1],
        "losses_finite": all(math.isfinite(v) for values in losses.values() for v in values),
        "losses_falling": sorted(k for k, values in fitted.items() if _falls(values)),
    }


def compare(summary: dict, reference: dict) -> list[str]:
    """Problems of ``summary`` against ``reference``; empty when the run passes."""
    problems = []
    if not summary["losses_finite"]:
        problems.append("a training loss is not finite")
    for loss in reference["losses_falling"]:
        if loss not in summary["losses_falling"]:
            problems.append(f"{loss} no longer falls over the run")
    if abs(summary["absolute"] - reference["absolute"]) > BAND:
        problems.append(f"absolute {summary['metric']} {summary['absolute']:.3f} is outside "
                        f"{reference['absolute']:.3f} ± {BAND}")
    return problems


def slowdown(summary: dict, reference: dict) -> str | None:
    """A sentence when the run trained at less than half the reference's throughput, else None."""
    if summary["steps_per_second"] >= THROUGHPUT_FLOOR * reference["steps_per_second"]:
        return None
    return (f"throughput {summary['steps_per_second']:.1f} steps/s is below half the reference "
            f"{reference['steps_per_second']:.1f} (a busy machine, or slower code)")


def reference_path(run_id: str) -> Path:
    return REFERENCE / (run_id.replace("/", "__") + ".json")


def run_suite(results: Path) -> dict[str, dict]:
    """Run the regression suite into ``results``; summaries by run id. Raises if a run fails."""
    from suites.launching.launchers import run_sequential
    from suites.planning.definitions import get_suite
    from suites.planning.options import RunOptions
    from suites.planning.plan import plan

    run_specs = plan(get_suite("regression"), RunOptions(backend="sim"))
    failed = [o for o in run_sequential([(run_spec,) for run_spec in run_specs], results) if o.status != "COMPLETED"]
    if failed:
        raise RuntimeError("regression runs failed: " + "; ".join(f"{o.run_id}: {o.detail}" for o in failed))
    return {s.run_id: summarise(results / "runs" / s.run_id) for s in run_specs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m suites.regression", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refresh", action="store_true", help="rewrite tests/regression_reference/ from this run")
    p.add_argument("--check-throughput", action="store_true",
                   help="fail a run below half its reference's throughput (only meaningful on a quiet machine)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        summaries = run_suite(Path(tmp))
    if args.refresh:
        unusable = [r for r, s in summaries.items() if not s["losses_finite"] or not s["losses_falling"]]
        if unusable:  # nothing is written, so the committed references stay consistent
            print(f"error: no falling loss, or a non-finite one, in {', '.join(unusable)}; references unchanged",
                  file=sys.stderr)
            return 1
        REFERENCE.mkdir(parents=True, exist_ok=True)
        for run_id, summary in summaries.items():
            reference_path(run_id).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(summaries)} reference summaries to {REFERENCE}")
        return 0
    bad = 0
    for run_id, summary in summaries.items():
        reference = json.loads(reference_path(run_id).read_text())
        problems, slow = compare(summary, reference), slowdown(summary, reference)
        failed = bool(problems) or (slow is not None and args.check_throughput)
        bad += failed
        label = "FAIL" if failed else "SLOW" if slow else "ok"
        print(f"{label:4s} {run_id}  {summary['steps_per_second']:.0f} steps/s "
              f"(reference {reference['steps_per_second']:.0f})" + "".join(f"\n     {p}" for p in problems + [slow] if p))
    return int(bad > 0)


if __name__ == "__main__":
    sys.exit(main())
