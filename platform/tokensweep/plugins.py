"""`--plugin MODULE`: a user's embeddings, imported before the command's flags are built (their knobs
become flags) and before anything is validated. Installed packages register through the entry-point
group `tokensweep.embeddings` instead; a sweep spec through `[sweep] plugins = [...]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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


def load_plugins(modules, search: tuple[str, ...] = ()) -> None:
    """Import each module (one-line PluginError on failure). Besides what Python already finds (installed
    packages, PYTHONPATH), a module may sit in the working directory or in one of `search` (a spec's folder)."""
    if not modules:
        return
    from trials import load_plugin

    for folder in (os.getcwd(), *search):
        if folder not in sys.path:
            sys.path.append(folder)
    for module in modules:
        load_plugin(module)


def plugin_roots(modules) -> list[str]:
    """The folders the imported plugin modules were found in (what a new local Ray's workers need on
    their PYTHONPATH to import them too); installed packages need nothing."""
    roots = []
    for module in modules:
        top = sys.modules.get(module.split(".")[0])
        path = getattr(top, "__file__", None)
        if path is None:
            continue
        root = Path(path).parent.parent if Path(path).name == "__init__.py" else Path(path).parent
        if "site-packages" not in root.parts and str(root) not in roots:
            roots.append(str(root))
    return roots


def export_plugin_roots(modules, environ=os.environ) -> None:
    """Prepend plugin_roots to PYTHONPATH: the workers of a Ray started from here inherit it."""
    roots = plugin_roots(modules)
    if roots:
        environ["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [environ.get("PYTHONPATH")])])
