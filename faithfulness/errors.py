"""The exception types users see, each turned by run.py into one ``error: ...`` line and an exit code."""


class ConfigError(ValueError):
    """A configuration or input value that cannot be used; the message names it and the allowed values."""


class StateError(RuntimeError):
    """The results folder cannot be used as it is: another run holds it, or a file in it is corrupt.

    The message names the file or folder, what is wrong and what to do; nothing is overwritten.
    """
