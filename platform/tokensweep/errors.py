"""User-input errors of every layer: the CLI prints them as one line and exits 2."""

from dashboards.errors import InputError as DashboardInputError
from trials.errors import ConfigError


class SpecError(ConfigError):
    """A sweep spec or CLI value is wrong; the message names the key (and file:line when known)."""


USER_ERRORS = (ConfigError, DashboardInputError)
