"""Flatland (flatland-rl 4.3) with the official MAMBA/MABL task settings, observation, actions and reward.

``tasks`` holds the paper's tasks, ``rail`` one environment with the official interface, ``batched`` the
batched environment over worker processes that ``envs.make("flatland/5_agents", ...)`` returns.
"""
