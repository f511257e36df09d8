"""MAPPO configuration and presets.

``paper`` reproduces marlbenchmark/on-policy: defaults from ``onpolicy/config.py`` and, for every SMAC map
with a script, its settings from ``onpolicy/scripts/train_smac_scripts/train_smac_<map>.sh``. on-policy has
no script for 2s3z and none for Flatland, so there ``paper`` is ``config.py``'s defaults. ``tiny`` is CI-sized.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from algorithms.base import AlgorithmConfig
from envs.spec import EnvSpec

# train_smac_<map>.sh (so_many_baneling's is train_smac_baneling.sh): every script runs 8 threads x 400 steps
# with value and policy active masks; per map (recurrent: algorithm_name rmappo, not mappo; ppo_epoch;
# num_mini_batch; clip_param; gain). 3s_vs_4z and 3s_vs_5z also stack 4 frames (--use_stacked_frames), which
# we do not (docs/algorithms.md).
ON_POLICY_SCRIPTS = {
    "3m": (True, 15, 1, 0.2, 0.01),
    "8m": (True, 15, 1, 0.2, 0.01),
    "25m": (True, 10, 1, 0.2, 0.01),
    "3s5z": (True, 5, 1, 0.2, 0.01),
    "MMM": (True, 15, 1, 0.2, 0.01),
    "1c3s5z": (True, 15, 1, 0.2, 0.01),
    "2m_vs_1z": (True, 15, 1, 0.2, 0.01),
    "2s_vs_1sc": (True, 15, 1, 0.2, 0.01),
    "3s_vs_3z": (True, 15, 1, 0.2, 0.01),
    "3s_vs_4z": (False, 15, 1, 0.2, 0.01),
    "3s_vs_5z": (False, 15, 1, 0.05, 0.01),
    "5m_vs_6m": (True, 10, 1, 0.05, 0.01),
    "8m_vs_9m": (True, 15, 1, 0.05, 0.01),
    "10m_vs_11m": (True, 10, 1, 0.2, 0.01),
    "bane_vs_bane": (True, 15, 1, 0.2, 0.01),
    "so_many_baneling": (True, 15, 1, 0.2, 0.01),
    "2c_vs_64zg": (True, 5, 1, 0.2, 0.01),
    "3s5z_vs_3s6z": (True, 5, 1, 0.2, 0.01),
    "6h_vs_8z": (False, 5, 1, 0.2, 0.01),
    "MMM2": (True, 5, 2, 0.2, 1.0),
    "27m_vs_30m": (True, 5, 1, 0.2, 0.01),
    "corridor": (False, 5, 1, 0.2, 0.01),
}


@dataclass(frozen=True)
class MAPPOConfig(AlgorithmConfig):
    ALGORITHM: ClassVar[str] = "mappo"
    DISPLAY_NAME: ClassVar[str] = "MAPPO"
    POSITIVE: ClassVar[tuple[str, ...]] = (
        "num_envs", "episode_length", "ppo_epoch", "num_mini_batch", "data_chunk_length", "hidden_size", "lr",
        "critic_lr", "opti_eps", "clip_param", "max_grad_norm", "huber_delta")
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ("layer_n", "gain", "weight_decay", "entropy_coef", "value_loss_coef")
    UNIT_INTERVAL: ClassVar[tuple[str, ...]] = ("gamma", "gae_lambda")
    num_envs: int = 32  # n_rollout_threads (config.py default)
    episode_length: int = 200  # rollout length per update (config.py default)
    ppo_epoch: int = 15
    num_mini_batch: int = 1
    recurrent: bool = True  # rMAPPO (use_recurrent_policy)
    data_chunk_length: int = 10
    hidden_size: int = 64
    layer_n: int = 1
    feature_norm: bool = True  # use_feature_normalization
    gain: float = 0.01  # actor output layer init gain
    lr: float = 5e-4
    critic_lr: float = 5e-4
    opti_eps: float = 1e-5
    weight_decay: float = 0.0
    clip_param: float = 0.2
    entropy_coef: float = 0.01
    value_loss_coef: float = 1.0
    max_grad_norm: float = 10.0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    huber_delta: float = 10.0
    use_valuenorm: bool = True
    use_clipped_value_loss: bool = True
    value_active_masks: bool = True  # --use_value_active_masks in every SMAC script
    policy_active_masks: bool = True
    agent_id: bool = True  # one-hot agent id appended to actor and critic inputs (docs/algorithms.md: deviations)

    @classmethod
    def preset(cls, name: str, spec: EnvSpec) -> MAPPOConfig:
        if name == "paper":  # Flatland: on-policy publishes no setting; its config.py defaults apply
            map_name = spec.task.split("/", 1)[1]
            if map_name in ON_POLICY_SCRIPTS:
                recurrent, epochs, mini, clip, gain = ON_POLICY_SCRIPTS[map_name]
                return cls(num_envs=8, episode_length=400, ppo_epoch=epochs, num_mini_batch=mini,
                           recurrent=recurrent, clip_param=clip, gain=gain)
            return cls()
        if name == "tiny":
            return cls(num_envs=8, episode_length=32, ppo_epoch=2, num_mini_batch=2, hidden_size=32,
                       data_chunk_length=8)
        raise cls.unknown_preset(name)

    @classmethod
    def preset_names(cls) -> list[str]:
        return ["paper", "tiny"]
