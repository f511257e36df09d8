"""Checkpoints that a failed write never corrupts, and the random-number state that makes resumes exact."""
from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from suites.errors import DiskFull


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj, path: Path) -> None:
    """Write ``obj`` through a temporary file, so a failed write never replaces the good ``path``. A full
    disk raises :class:`DiskFull` naming the directory (torch words it as "unexpected pos ...")."""
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(obj, tmp)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        if _out_of_space(err, path.parent):
            raise DiskFull(f"no space left on the device holding {path.parent}") from err
        raise
    os.replace(tmp, path)


def _out_of_space(err: Exception, directory: Path) -> bool:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(directory).free < 1 << 20
    except OSError:
        return False
