"""The error every layer raises for bad names or values from the user. It lives in a module of its own,
importing nothing heavy, so any module can raise it without loading the environment registry."""
import os
from pathlib import Path


class UsageError(ValueError):
    """Bad names or values from the user; the CLI turns these into exit code 2."""


def require_writable(directory: Path, option: str) -> None:
    """Create ``directory`` if needed and check that files can be written in it, before any work is done;
    UsageError naming the directory, the system's reason and what to do."""
    probe = directory / f".write-check-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"cannot write to {directory} ({err.strerror or err}); choose another directory with "
                         f"{option} or make this one writable") from None
