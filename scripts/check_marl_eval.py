"""Load our marl-eval export with marl-eval's own tools, to prove that it reads it.

Run it under an interpreter that has marl-eval (id-marl-eval 0.0.4, which pins pandas 1.4.4; 1.5.3 works
and installs on current Pythons):

    python -m venv me
    me/bin/pip install "pandas==1.5.3" "numpy<2" rliable seaborn colorcet==3.0.0 "matplotlib<3.10" jinja2 tqdm \\
        colorama "importlib-metadata<5"
    me/bin/pip install --no-deps id-marl-eval==0.0.4
    me/bin/python scripts/check_marl_eval.py results/marl_eval/smoke_smac_sim.json

It runs ``data_process_pipeline`` and ``create_matrices_for_rliable`` on every environment in the file and
prints the rliable arrays they build; exit 1 when marl-eval rejects the file.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys


def main(path: str) -> int:
    try:
        from marl_eval.utils.data_processing_utils import create_matrices_for_rliable, data_process_pipeline
    except ModuleNotFoundError as err:
        commands = "\n".join(line for line in __doc__.splitlines() if line.startswith("    "))
        print(f"marl-eval cannot be imported by {sys.executable} ({err}); run this script with a side "
              f"environment's python, made like this:\n{commands}", file=sys.stderr)
        return 2

    with open(path) as f:
        raw = json.load(f)
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # marl-eval reports a malformed file by printing, then goes on
        processed = data_process_pipeline(raw_data=raw, metrics_to_normalize=[])
    if said.getvalue().strip():
        print(f"marl-eval rejected {path}: {said.getvalue().strip()}", file=sys.stderr)
        return 1
    for environment in raw:
        scores, curves = create_matrices_for_rliable(data_dictionary=processed, environment_name=environment,
                                                     metrics_to_normalize=[])
        for metric, per_algorithm in scores.items():
            for algorithm, matrix in per_algorithm.items():
                print(f"{environment} {metric} {algorithm}: runs x tasks {matrix.shape}, "
                      f"curve {curves[metric][algorithm].shape}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
