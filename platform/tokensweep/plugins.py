"""`--plugin MODULE`: a user's embeddings, imported before the command's flags are built (their knobs
become flags) and before anything is validated. Installed packages register through the entry-point
group `tokensweep.embeddings` instead; a sweep spec through `[sweep] plugins = [...]`."""

from __future__ import annotations

import argparse

PLUGIN_FLAG = "--plugin"


def add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        PLUGIN_FLAG,
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: its @register_embedding embeddings become models (repeatable; on a "
        "cluster, install it on every node or ship it with Ray's runtime_env)",
    )


def plugins_in(argv: list[str]) -> list[str]:
    """The --plugin values of a command line, before argparse sees it."""
    found = []
    for i, arg in enumerate(argv):
        if arg == PLUGIN_FLAG and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith(PLUGIN_FLAG + "="):
            found.append(arg.split("=", 1)[1])
    return found


def load_plugins(modules: list[str]) -> None:
    """Import each module (one-line PluginError on failure); the working directory is importable,
    as it is for `python -m`."""
    if not modules:
        return
    import os
    import sys

    from trials import load_plugin

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        load_plugin(module)
