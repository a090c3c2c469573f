"""The one exception type users see: a bad value named with what is allowed."""


class ConfigError(ValueError):
    """A configuration or input value that cannot be used; the message names it and the allowed values."""
