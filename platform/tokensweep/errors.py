"""The platform's user-input error; every layer's derives from vocab.errors.UserError, which the CLI
prints as one line with exit 2."""

from trials.errors import ConfigError
from vocab.errors import UserError


class SpecError(ConfigError):
    """A sweep spec or CLI value is wrong; the message names the key (and file:line when known)."""


USER_ERRORS = (UserError,)
