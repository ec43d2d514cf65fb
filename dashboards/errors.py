"""The dashboards' bad-input error (the CLI prints it as one line, exit 2)."""

from vocab.errors import UserError


class InputError(UserError):
    """A runs table, objective or path the user gave is wrong; the message says what would be right."""
