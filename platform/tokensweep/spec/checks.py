"""Small predicates and helpers every part of spec validation uses."""

from __future__ import annotations

import math
import typing
from difflib import get_close_matches

from tokensweep.sweep.space import INDEXED


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    close = get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def jsonable(value):
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def strip_key(message: str, key: str) -> str:
    """'epochs must be ...' -> 'must be ...' (the location already names the key)."""
    for prefix in (f"{key} ", f"trial option {key!r}"):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def root_key(key: str) -> str:
    m = INDEXED.match(key)
    return m["key"] if m else key
