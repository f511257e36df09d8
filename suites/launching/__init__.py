"""Launching and records: where runs execute (in this process, in parallel, on Ray or SLURM), leases and
stop signals, and each run's Sacred record, metric sinks and progress files."""
