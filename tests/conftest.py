"""Markers that describe what a test needs become skips, with the reason, where that thing is absent:
``gpu`` (CUDA) and ``sc2`` (StarCraft II with smacv2). The benchmarks under ``tests/benchmarks`` are
collected only when benchmarking is on (``tox -e bench`` passes ``--benchmark-enable``), so the default
run does not spend minutes on their warm-ups. Torch uses the runs' thread default (``suites/launching/threads.py``)
in every test, so the tests hold up beside other work on the machine."""
from __future__ import annotations

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent / "benchmarks"


def _absent(marker: str) -> str | None:
    """Why tests marked ``marker`` cannot run here, or None when they can."""
    if marker == "gpu":
        import torch

        return None if torch.cuda.is_available() else "needs CUDA"
    if marker == "sc2":
        from envs.smac.sc2 import sc2_available

        return None if sc2_available() else "needs StarCraft II and smacv2 (pip install -e '.[sc2]', StarCraft II 4.10)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    from suites.launching import threads

    threads.apply()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not config.getoption("benchmark_enable", default=False) and collection_path.is_relative_to(BENCHMARKS):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons: dict[str, str | None] = {}
    for item in items:
        for marker in ("gpu", "sc2"):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in reasons:
                reasons[marker] = _absent(marker)
            if reasons[marker]:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))
