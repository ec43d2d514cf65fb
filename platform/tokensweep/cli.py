"""The `tokensweep` console script: one subcommand per module in tokensweep.commands.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`func`. Command modules import heavy libraries (torch, Ray, MLflow) inside their functions
so that `tokensweep --help` and bad-input errors stay instant.
"""

import argparse
import importlib
import sys

from tokensweep.errors import USER_ERRORS
from tokensweep.plugins import load_plugins, plugins_in

COMMANDS = ("trial", "params", "bench", "data", "plan", "run", "export", "dashboard", "report")


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus a message on bad flags; we print one line and exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def package_version() -> str:
    """From the installed package's metadata (pyproject.toml's version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokensweep")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="tokensweep",
        description="Train, measure and sweep ViT embeddings (patch, EarlyConv, super-token).",
    )
    parser.add_argument("--version", action="version", version=f"tokensweep {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tokensweep.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"tokensweep.commands.{name}":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        load_plugins(plugins_in(argv))  # before the parser: a plugin's knobs are flags
    except USER_ERRORS as err:
        print(f"tokensweep: error: {err}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except USER_ERRORS as err:
        print(f"tokensweep {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tokensweep {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
