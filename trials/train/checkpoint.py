"""Checkpoints written atomically and loaded safely.

A checkpoint directory holds `checkpoint.pt`. It is written to a temporary file in the same
directory, fsynced, then renamed over the old one, so a crash mid-write leaves the previous
checkpoint intact and never a half-written file that resume would load. Loading uses
torch.load(weights_only=True): a checkpoint is data, never code.
"""

import os
import pickle
import re
import tempfile
from pathlib import Path

import torch

from trials.errors import ConfigError

FILENAME = "checkpoint.pt"


def save_checkpoint(directory: str | os.PathLike, state: dict) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / FILENAME)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return directory / FILENAME


def check_checkpoint(directory: str | os.PathLike) -> Path:
    """The checkpoint file in `directory`; a one-line ConfigError if there is none."""
    path = Path(directory) / FILENAME
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {str(path)!r}; resume needs a directory holding {FILENAME}")
    return path


def load_checkpoint(directory: str | os.PathLike) -> dict:
    """The saved state; a one-line ConfigError for a file that holds code or is not a whole checkpoint."""
    path = check_checkpoint(directory)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is many lines and suggests weights_only=False: never, for a file we did not write
        found = re.search(r"(?i)unsupported global:?\s+(?:global\s+)?([\w.]+)", str(err))
        what = f" (it references {found[1]})" if found else ""
        raise ConfigError(
            f"refusing checkpoint {str(path)!r}: it holds objects other than tensors and plain data{what}; "
            "checkpoints are loaded with weights_only=True and never run code"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
        raise ConfigError(f"checkpoint {str(path)!r} is unreadable (truncated or not a checkpoint): {first[:200]}") from None
