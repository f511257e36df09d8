"""What the environments that step in worker processes share (Flatland's shards, StarCraft II's games): how a
worker process is started, and how it waits for orders without outliving its parent."""
from __future__ import annotations

import multiprocessing as mp
import os


def worker_context():
    """Fork where the platform can (Linux: workers start at once and run numpy only, never torch); spawn
    elsewhere (the calling script then needs the usual ``if __name__ == "__main__":`` guard)."""
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def receive_while_parent_lives(conn, parent: int):
    """The next message; EOFError once the parent process is gone (no orphan waits forever)."""
    while not conn.poll(1.0):
        if os.getppid() != parent:
            raise EOFError
    return conn.recv()
