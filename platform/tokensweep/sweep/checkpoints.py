"""Which checkpoint a retried or resumed trial continues from: Tune's registered one, or - when that one
does not load (corrupted, cut off by a full disk) - the newest in the trial's folder that does.

Tune registers one checkpoint per trial as the one to restore; if it is damaged, every retry and every
`--resume` of the trial fails the same way, although its folder may hold an intact one (an older one it
keeps, or a newer one its saved state had not caught up with). Runs in the trial's worker.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator

from ray import tune

CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


def unloadable(directory: str) -> str | None:
    """Why the trial checkpoint in `directory` does not load (one line), or None if it does."""
    from trials.errors import ConfigError
    from trials.train.checkpoint import load_checkpoint

    try:
        load_checkpoint(directory)
    except ConfigError as err:
        return str(err)
    return None


def siblings_newest_first(checkpoint: tune.Checkpoint) -> list[tune.Checkpoint]:
    """The other checkpoint_NNNNNN folders beside `checkpoint` (on its filesystem), newest first."""
    import pyarrow.fs

    fs = checkpoint.filesystem
    parent, _, own = checkpoint.path.rstrip("/").rpartition("/")
    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(parent))
    except OSError:
        return []
    found = []
    for info in infos:
        m = CHECKPOINT_DIR.match(info.base_name)
        if m and info.type == pyarrow.fs.FileType.Directory and info.base_name != own:
            found.append((int(m[1]), info.path))
    return [tune.Checkpoint(path, filesystem=fs) for _, path in sorted(found, reverse=True)]


def choose(checkpoint: tune.Checkpoint, trial_name: str) -> tuple[tune.Checkpoint, str | None]:
    """`checkpoint` if it loads, else the newest loadable one beside it and a note saying so; else the
    registered one's error (a ConfigError: the trial fails with that one line)."""
    with checkpoint.as_directory() as directory:
        why = unloadable(directory)
    if why is None:
        return checkpoint, None
    for other in siblings_newest_first(checkpoint):
        with other.as_directory() as directory:
            if unloadable(directory) is None:
                note = (f"trial {trial_name}: {why}; resuming from {other.path.rpartition('/')[2]} instead, "
                        "the newest checkpoint of the trial that loads")  # fmt: skip
                print(f"tokensweep: {note}", file=sys.stderr, flush=True)  # the worker's log
                return other, note
    from trials.errors import ConfigError

    raise ConfigError(f"{why} (and no other checkpoint of the trial loads)")


@contextlib.contextmanager
def resume_directory(checkpoint: tune.Checkpoint, trial_name: str) -> Iterator[tuple[str, str | None]]:
    """A local directory holding the checkpoint the trial continues from, and the note saying why it is
    not Tune's registered one (None when it is): the trial's first report carries it to the driver."""
    chosen, note = choose(checkpoint, trial_name)
    with chosen.as_directory() as directory:
        yield directory, note
