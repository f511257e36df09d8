"""pytest-benchmark: ``make_plots`` over 100 synthetic runs (5 tasks x 4 algorithms x 5 seeds) with 50
evaluation points each, at the default 2,000 bootstrap repetitions (target: under 60 s on 2 cores)."""
import json

import numpy as np

from analysis import make_plots
from tests.helpers import write_record

ALGOS = ("mabl", "mabl_single_level", "mamba", "mappo")
TASKS = ("smac/3s5z_vs_3s6z", "smac/6h_vs_8z", "smac/MMM2", "smac/27m_vs_30m", "smac/corridor")


def _records(results, points: int = 50, train_points: int = 500) -> None:
    rng = np.random.default_rng(0)
    steps = [i * 40_000 for i in range(1, points + 1)]
    for task in TASKS:
        for a, algo in enumerate(ALGOS):
            for seed in range(5):
                curve = np.clip(np.linspace(0, 0.2 * (a + 1), points) + rng.normal(0, 0.05, points), 0, 1)
                write_record(results, "bench", task, algo, seed, evals=dict(zip(steps, curve.tolist())),
                             absolute=float(curve.max()))
                # real records also carry training losses, which the loader must read past
                path = results / "runs" / "bench" / task.replace("/", "_") / algo / f"seed_{seed}" / "1" / "metrics.json"
                metrics = json.loads(path.read_text())
                for name in ("train/model_loss", "train/actor_loss", "train/value_loss"):
                    metrics[name] = {"steps": list(range(0, steps[-1], steps[-1] // train_points)),
                                     "values": rng.random(train_points).tolist()}
                path.write_text(json.dumps(metrics))


def test_make_plots_100_runs_50_points(benchmark, tmp_path):
    _records(tmp_path)
    result = benchmark.pedantic(make_plots.main, args=(["--results", str(tmp_path)],), rounds=1, iterations=1)
    assert result == 0
    assert (tmp_path / "figures" / "bench_smac_sim_iqm_curve.pdf").exists()
