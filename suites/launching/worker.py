"""``python -m suites.launching.worker RESULTS GROUP_JSON``: one group of seed members (a list of run run_specs; one run
alone is a group of one) in its own process, the local launcher's unit.

Exit code 0 when every run of the group completed (or is being trained by another process), 1 when one
failed (its Sacred record says why)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from tqdm import tqdm

    from suites.launching.experiment import execute_group
    from suites.launching.launchers import group_label
    from suites.launching.lease import HeldElsewhere
    from suites.planning.spec import RunSpec

    results = Path(argv[0])
    group = tuple(RunSpec(**{**fields, "overrides": tuple(tuple(pair) for pair in fields.get("overrides", ()))})
                  for fields in json.loads(argv[1]))
    label = group_label(group)
    # the log file gets a progress line every 30 s: `tail -f <run>/launcher.log` to follow a group
    bar = tqdm(total=sum(s.steps for s in group), desc=label, unit="step", mininterval=30, ascii=True, file=sys.stderr)
    try:
        summaries = execute_group(list(group), results, progress=bar)
    except Exception as err:
        print(f"{label} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    for run_spec, summary in zip(group, summaries):
        if isinstance(summary, HeldElsewhere):
            print(f"run {run_spec.run_id} skipped: {summary}")
        elif isinstance(summary, BaseException):
            print(f"run {run_spec.run_id} failed: {type(summary).__name__}: {summary}", file=sys.stderr)
        else:
            print(f"run {run_spec.run_id} completed: {summary['absolute']}")
    return int(any(isinstance(summary, BaseException) and not isinstance(summary, HeldElsewhere)
                   for summary in summaries))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
