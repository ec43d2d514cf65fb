"""The one base of every user-input error, whichever layer raises it.

The CLI catches `UserError` alone, prints its message as one line and exits 2; anything else is a
bug and keeps its traceback. Each layer derives its own errors from it (trials' ConfigError, the
dashboards' InputError, the platform's SpecError), so a new layer needs no change to the CLI.
"""


class UserError(ValueError):
    """A value the user gave is wrong; the message names it and what would be right."""
