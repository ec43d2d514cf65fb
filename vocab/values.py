"""Values as every layer reads and writes them: from TOML, JSON, flags or a run's record.

A bool is an int to Python (True == 1), never to a user: `is_int(True)` and `is_number(True)` are
False. A run records a bool as true/false (`as_text`), the spelling of TOML and JSON, whichever
layer writes it (an MLflow param or tag, a CSV cell).
"""

import math


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or a finite float."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_text(value) -> str:
    """`value` as a run records it: a bool as true/false, anything else as str() writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
