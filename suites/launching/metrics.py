"""Where a run's scalars go: Sacred's record, a TensorBoard event file and, with ``--wandb``, Weights & Biases."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from suites.planning.spec import RunSpec


class MetricLog:
    """Every scalar the run logs, kept so a resumed run can replay its history into its new record."""

    def __init__(self, sink: Callable[[str, float, int], None]):
        self.sink, self.history = sink, []

    def log(self, name: str, value: float, step: int) -> None:
        self.history.append((name, float(value), int(step)))
        self.sink(name, float(value), int(step))

    def replay(self, history) -> None:
        for name, value, step in history:
            self.log(name, value, step)


def tensorboard_writer(record_dir: Path):
    """The run's TensorBoard event file, in its record directory, so ``tensorboard --logdir results/runs``
    shows every run by suite/task/algorithm/seed while it trains. A resumed attempt replays the whole
    history into its log, so event files of earlier attempts are removed first: one complete file per run."""
    from torch.utils.tensorboard import SummaryWriter

    record_dir.mkdir(parents=True, exist_ok=True)
    for old in record_dir.glob("events.out.tfevents.*"):
        old.unlink()
    return SummaryWriter(log_dir=str(record_dir), flush_secs=10)


WANDB_HINT = "--wandb needs Weights & Biases: pip install -e '.[wandb]'"


def wandb_run(run_spec: RunSpec, record_dir: Path, config: dict):
    """A Weights & Biases run mirroring this attempt (one per attempt: a resumed attempt replays the whole
    history), or None without ``--wandb``. Online where credentials exist (``WANDB_API_KEY`` or ``wandb
    login``), otherwise offline into ``<run>/wandb`` for a later ``wandb sync``; ``WANDB_MODE`` overrides."""
    if not run_spec.wandb:
        return None
    import os

    import wandb

    mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") or _netrc_has_wandb() else "offline")
    if mode == "offline":
        print(f"note: no Weights & Biases credentials; logging offline under {record_dir / 'wandb'} "
              f"(`wandb sync` uploads it)", flush=True)
    return wandb.init(project=run_spec.wandb, name=run_spec.run_id, group=run_spec.run_id.rsplit("/", 1)[0], dir=str(record_dir),
                      config=config, mode=mode, reinit="create_new")


def _netrc_has_wandb() -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False
