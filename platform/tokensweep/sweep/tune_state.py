"""Tune's restored state against what its storage holds.

Tune snapshots a trial's checkpoints (the ones it keeps, `num_to_keep`) with the rest of its state every
few seconds, and deletes the oldest kept one whenever a new one registers. A driver killed between a
deletion and the next snapshot resumes with a state that still lists the deleted checkpoint; when the
trial's next checkpoint registers, Tune deletes that one again and logs `Error handling checkpoint ...
FileNotFoundError` with a traceback. `ForgetDeletedCheckpoints` (a Tune callback of a resumed sweep, on
the driver) drops such entries from the trial's list as the trial starts, before anything registers:
the folder is already gone, which is what the deletion wanted. The checkpoint a trial restores from is
never dropped.
"""

from __future__ import annotations

import logging

from ray import tune

log = logging.getLogger(__name__)


def exists(checkpoint) -> bool:
    import pyarrow.fs

    try:
        return checkpoint.filesystem.get_file_info(checkpoint.path).type != pyarrow.fs.FileType.NotFound
    except OSError:
        return True  # cannot tell: leave it to Tune


class ForgetDeletedCheckpoints(tune.Callback):
    def on_trial_start(self, iteration, trials, trial, **info):
        manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
        results = getattr(manager, "_checkpoint_results", None)  # Ray 2.60's bookkeeping; absent elsewhere: no-op
        if not results:
            return
        latest = manager.latest_checkpoint_result
        kept = [r for r in results if r is latest or exists(r.checkpoint)]
        if len(kept) != len(results):
            log.debug("trial %s: %d deleted checkpoint(s) dropped from Tune's restored list", trial, len(results) - len(kept))
            manager._checkpoint_results = kept
