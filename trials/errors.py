"""The one error type for bad user input in `trials`.

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""


class ConfigError(ValueError):
    """A value the user gave is wrong; the message names it and what would be right."""


def require(ok: bool, message: str) -> None:
    """Raise ConfigError(message) unless `ok`."""
    if not ok:
        raise ConfigError(message)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or inf: the trial fails, and says so."""
