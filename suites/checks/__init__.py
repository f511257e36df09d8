"""The checks and measurements behind the documentation's claims, each runnable as
``python -m suites.checks.<name>``:

- ``official_parity`` (MAMBA, MABL) and ``official_mappo_parity``: number for number against the official code,
  on the same weights and data (they need checkouts of the official repositories);
- ``official_learner_benchmark``: the official learner's time per update; ``learner_benchmark``: ours;
- ``fidelity``: the simulator's battles against SMAClite and SMAX (run in side interpreters through
  ``scripts/fidelity_reference.py``);
- ``throughput`` and ``flatland_throughput``: environment steps per second;
- ``seed_batch_benchmark``: seed members in one group against solo runs; ``thread_contention``: torch threads
  beside other jobs.

``kit`` holds what the comparisons share: the weight copy by name, relative differences and gradient
comparison. Library functions raise :class:`CheckError`; the command-line entry points turn it into a
message and exit status 2.
"""
