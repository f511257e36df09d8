"""The training loop: seed members acting, stepping and learning together, evaluations and checkpoints."""
