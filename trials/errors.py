"""The error types for bad user input in `trials`.

The CLI turns them into a single line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""

from vocab.errors import UserError


class ConfigError(UserError):
    """A value the user gave is wrong; the message names it and what would be right.

    `key` is the option the message is about (e.g. "cluster_iters"), when there is one, so that
    a sweep spec can point at the line that set it without reading the message.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class PluginError(ConfigError):
    """A user's embedding plugin cannot be used: not importable, a bad knob, a name taken, a wrong module."""


def require(ok: bool, message: str, key: str | None = None) -> None:
    """Raise ConfigError(message, key) unless `ok`."""
    if not ok:
        raise ConfigError(message, key)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf: the trial fails, and says so."""
