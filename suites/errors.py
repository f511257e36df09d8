"""Failures of a run that are the machine's, not the user's (bad input is ``envs.errors.UsageError``)."""


class DiskFull(RuntimeError):
    """The device holding a run's records is full; the run stops, resumable from its last checkpoint."""
