"""Seeds for the parts of a batch that run outside torch (Flatland's environments and episodes, StarCraft II's
games): independent streams derived from the run's seed."""
from __future__ import annotations

import numpy as np


def child_seed(seed: int, index: int) -> int:
    """An independent seed for child ``index`` of ``seed`` (environment of a batch, episode of an
    environment): any int seed, negatives too, gives an unsigned 32-bit one (what StarCraft II takes)."""
    return int(np.random.SeedSequence([seed % 2**64, index]).generate_state(1)[0])
