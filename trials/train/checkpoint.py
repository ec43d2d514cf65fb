"""Checkpoints written atomically and loaded safely.

A checkpoint directory holds `checkpoint.pt`. It is written to a temporary file in the same
directory, fsynced, then renamed over the old one (vocab.atomic), so a crash mid-write leaves the previous
checkpoint intact and never a half-written file that resume would load. Loading uses
torch.load(weights_only=True): a checkpoint is data, never code.
"""

import os
import pickle
import re
import warnings
from pathlib import Path

import torch

from vocab.atomic import atomic_path
from trials.errors import ConfigError

FILENAME = "checkpoint.pt"


def save_checkpoint(directory: str | os.PathLike, state: dict) -> Path:
    path = Path(directory) / FILENAME
    with atomic_path(path, mode=0o600, durable=True) as tmp:  # 0600: a checkpoint stays its owner's
        with open(tmp, "wb") as f:
            torch.save(state, f)
    return path


def check_checkpoint(directory: str | os.PathLike) -> Path:
    """The checkpoint file in `directory`; a one-line ConfigError if there is none."""
    path = Path(directory) / FILENAME
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {str(path)!r}; resume needs a directory holding {FILENAME}")
    return path


def load_checkpoint(directory: str | os.PathLike) -> dict:
    """The saved state; a one-line ConfigError for a file that holds code or is not a whole checkpoint."""
    path = check_checkpoint(directory)
    if path.stat().st_size == 0:
        raise _unreadable(path, "the file is empty")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the one error line says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is many lines and suggests weights_only=False: never, for a file we did not write
        found = re.search(r"(?i)unsupported global:?\s+(?:global\s+)?([\w.]+)", str(err))
        if found is None:  # "Unsupported operand": bytes that are no pickle torch writes (garbage, text, ...)
            raise _unreadable(path, "not a torch checkpoint") from None
        raise ConfigError(
            f"refusing checkpoint {str(path)!r}: it holds objects other than tensors and plain data "
            f"(it references {found[1]}); checkpoints are loaded with weights_only=True and never run code"
        ) from None
    except PermissionError:
        raise ConfigError(f"cannot read checkpoint {str(path)!r}: permission denied") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as err:  # OSError: a seek past a cut-off end
        raise _unreadable(path, _first_sentence(err)) from None


def _first_sentence(err: Exception) -> str:
    """torch's reader errors start '[enforce fail at inline_container.cc:180] . file in archive ...'."""
    text = re.sub(r"^\[enforce fail at [^\]]*\][\s.]*", "", str(err).strip())
    return ((text.splitlines() or [""])[0].split(". ")[0] or type(err).__name__)[:200]


def _unreadable(path: Path, why: str) -> ConfigError:
    return ConfigError(f"checkpoint {str(path)!r} is unreadable (truncated or not a checkpoint): {why}")
