"""TrialConfig <-> command-line flags and TOML files, derived from the dataclass itself.

Every TrialConfig field becomes a flag (`conv_depth` -> `--conv-depth`), so a new field is a
new flag with no code here. Precedence, lowest first: TrialConfig defaults (or the smoke
preset), the TOML file, then flags.
"""

import argparse
import dataclasses
import tomllib
import typing
from pathlib import Path

from tokensweep.errors import SpecError
from trials import TrialConfig


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 16,32,32,64,64,64, got {text!r}")


def _optional(parse):
    def parse_or_none(text: str):
        return None if text.lower() in ("none", "null", "") else parse(text)

    parse_or_none.__name__ = parse.__name__
    return parse_or_none


def _flag_type(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    parse = _int_list if typing.get_origin(base) is tuple else base
    return _optional(parse) if type(None) in typing.get_args(hint) else parse


def add_trial_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrialConfig field; unset flags stay out of the namespace (SUPPRESS)."""
    group = parser.add_argument_group("trial options (any TrialConfig field; defaults: the paper's recipe)")
    hints = typing.get_type_hints(TrialConfig)
    for field in dataclasses.fields(TrialConfig):
        flag = "--" + field.name.replace("_", "-")
        hint = hints[field.name]
        help_text = f"default: {field.default}"
        if hint is bool or hint == (bool | None):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(flag, type=_flag_type(hint), default=argparse.SUPPRESS, metavar="V", help=help_text)


def flag_values(args: argparse.Namespace) -> dict:
    names = {f.name for f in dataclasses.fields(TrialConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; a missing file or a syntax error is a one-line SpecError with file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"cannot read {str(path)!r}: {err.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: malformed TOML: {err}") from None


def trial_config_from(args: argparse.Namespace) -> TrialConfig:
    """Build the config from --smoke / --config FILE ([trial] table or top level) / flags."""
    values: dict = {}
    where = ""
    if getattr(args, "config", None):
        data = read_toml(args.config)
        values = data.get("trial", data)
        where = f"{args.config}: "
        if not isinstance(values, dict):
            raise SpecError(f"{args.config}: [trial] must be a table of TrialConfig options")
    values = {**values, **flag_values(args)}
    if getattr(args, "smoke", False):
        return TrialConfig.smoke(**values)
    return TrialConfig.from_dict(values, where=where)
