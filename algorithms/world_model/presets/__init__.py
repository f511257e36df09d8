"""What makes the world-model agent MAMBA, MABL or MABL's single-level ablation: their configs and presets,
every value cited to the official code. The agent itself is ``algorithms.world_model.WorldModelAgent``."""
