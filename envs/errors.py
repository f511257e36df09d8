"""The error every layer raises for bad names or values from the user. It lives in a module of its own,
importing nothing, so any module can raise it without loading the environment registry."""


class UsageError(ValueError):
    """Bad names or values from the user; the CLI turns these into exit code 2."""
