"""Knob: one setting of an embedding, declared once beside it.

Everything that knows about a knob reads this declaration: the `tokensweep trial` flag and its help,
sweep-spec validation (one-line errors naming the knob, its range and the embedding), which trials
of a grid it applies to, the MLflow param, the export column, Optuna ranges.

    Knob("cluster_iters", int, default=3, low=1, high=16, help="similarity updates (Table 8)")
    Knob("channels", tuple, default=(16, 32, 32, 64, 64, 64), low=1, high=1024, help="...")
    Knob("norm", str, default="ln", choices=("ln", "bn"), help="...")

`type` is int, float, bool, str (with choices) or tuple: a fixed-length tuple of ints, as long as
its default, each element within low..high.
"""

import re
from dataclasses import dataclass

from vocab.values import as_text, is_int, is_number
from trials.errors import ConfigError, PluginError

KNOB_TYPES = (int, float, bool, str, tuple)
KNOB_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Knob:
    name: str
    type: type
    default: object
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    help: str = ""

    def __post_init__(self):
        object.__setattr__(self, "choices", tuple(self.choices))
        if isinstance(self.default, list):
            object.__setattr__(self, "default", tuple(self.default))
        self._check_declaration()

    # --- the declaration itself ---
    def _check_declaration(self) -> None:
        def bad(why: str) -> PluginError:
            return PluginError(f"Knob({self.name!r}): {why}")

        if not isinstance(self.name, str) or not KNOB_NAME.match(self.name):
            raise bad("the name must be lower-case letters, digits and _ (a flag and a column name)")
        if self.type not in KNOB_TYPES:
            raise bad(f"type must be one of int, float, bool, str, tuple, got {self.type!r}")
        if self.choices and self.type in (bool, tuple):
            raise bad(f"choices apply to int, float and str knobs, not {self.type.__name__}")
        if self.type is str and not self.choices:
            raise bad("a str knob needs choices=(...)")
        if self.type is tuple and not (isinstance(self.default, tuple) and self.default):
            raise bad("a tuple knob needs a non-empty tuple of ints as its default (it fixes the length)")
        for end in ("low", "high"):
            value = getattr(self, end)
            if value is not None and (self.type not in (int, float, tuple) or not is_number(value)):
                raise bad(f"{end} must be a number, and only int, float and tuple knobs take one")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise bad(f"low ({self.low}) is greater than high ({self.high})")
        try:
            self.check(self.default)
        except ConfigError as err:
            raise bad(f"its default does not pass its own rule: {err}") from None

    # --- values ---
    @property
    def length(self) -> int | None:
        return len(self.default) if self.type is tuple else None

    def rule(self) -> str:
        """What a valid value is, for messages and --help: 'an integer from 1 to 16'."""
        if self.type is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        noun = {int: "an integer", float: "a number", tuple: f"{self.length} integers"}[self.type]
        if self.low is not None and self.high is not None:
            return f"{noun} from {_num(self.low)} to {_num(self.high)}"
        if self.low is not None:
            return f"{noun} >= {_num(self.low)}"
        if self.high is not None:
            return f"{noun} <= {_num(self.high)}"
        return noun

    def check(self, value):
        """The value normalised (tuples as tuples, ints accepted as floats); ConfigError(key=name) if invalid."""
        ok, normal = self._normalise(value)
        if not ok:
            default = f" (default {self.format(self.default)})" if self.type is tuple else ""
            raise ConfigError(f"{self.name} must be {self.rule()}{default}, got {value!r}", self.name)
        return normal

    def _normalise(self, value) -> tuple[bool, object]:
        if self.type is bool:
            return isinstance(value, bool), value
        if self.type is tuple:
            ok = isinstance(value, (list, tuple)) and len(value) == self.length and all(is_int(v) for v in value)
            return ok and all(self._in_range(v) for v in value), tuple(value) if ok else value
        if self.type is str:
            return value in self.choices, value
        if self.type is int:
            ok = is_int(value)
        else:
            ok = is_number(value)
            value = float(value) if ok else value
        if self.choices:
            return ok and value in self.choices, value
        return ok and self._in_range(value), value

    def _in_range(self, value) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def format(self, value) -> str:
        """As an MLflow param, a flag value and an export cell: channels as '16,32,32,64,64,64'."""
        if isinstance(value, (tuple, list)):
            return ",".join(map(str, value))
        return as_text(value)

    def parse(self, text: str):
        """A flag's text as a value of this knob's type (checked by `check` afterwards)."""
        try:
            if self.type is tuple:
                return tuple(int(v) for v in text.split(","))
            if self.type is int:
                return int(text)
            if self.type is float:
                return float(text)
        except ValueError:
            raise ConfigError(f"--{self.name.replace('_', '-')} must be {self.rule()}, got {text!r}", self.name) from None
        return text


def _num(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
