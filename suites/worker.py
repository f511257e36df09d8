"""``python -m suites.worker RESULTS SPEC_JSON``: one run in its own process (the local launcher's unit).

Exit code 0 when the run completed, 1 when it failed (Sacred's record says why)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import torch
    from tqdm import tqdm

    from suites.experiment import execute
    from suites.spec import RunSpec

    results, fields = Path(argv[0]), json.loads(argv[1])
    fields["overrides"] = tuple(tuple(pair) for pair in fields.get("overrides", ()))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = RunSpec(**fields)
    # the log file gets a progress line every 30 s: `tail -f <run>/launcher.log` to follow a run
    bar = tqdm(total=spec.steps, desc=spec.run_id, unit="step", mininterval=30, ascii=True, file=sys.stderr)
    try:
        result = execute(spec, results, progress=bar)
    except Exception as err:
        print(f"run {spec.run_id} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    print(f"run {spec.run_id} completed: {result['absolute']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
