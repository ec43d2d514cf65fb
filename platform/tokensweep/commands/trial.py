"""`tokensweep trial`: one trial from flags or a TOML file; progress on stderr, one JSON line of final metrics on stdout."""

import argparse
import contextlib
import json
import signal
import sys

from tokensweep.plugins import add_plugin_flag
from tokensweep.trial_flags import add_trial_flags, trial_config_from


def register(sub) -> None:
    p = sub.add_parser(
        "trial",
        help="train and measure one model",
        description="Train and evaluate one ViT, then measure params, FLOPs and images/sec. Says first (unless "
        "--quiet) what it reads (data set, path, classes, images per split), its epochs and recipe; ends with "
        "one JSON line of final metrics on stdout.",
        epilog="example: tokensweep trial --smoke --model vit_tiny_patch --epochs 4",
    )
    p.add_argument("--smoke", action="store_true",
                   help="tiny model, a few epochs, generated data unless --data-dir is given (CPU, under a minute)")  # fmt: skip
    p.add_argument("--config", metavar="FILE.toml", help="TrialConfig values ([trial] table or top level); flags win")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="keep each epoch's checkpoint here (replaced atomically)")
    p.add_argument("--resume", metavar="DIR", help="continue from the checkpoint in DIR")
    p.add_argument("--out", metavar="FILE.json", help="also write the final metrics here (atomically)")
    p.add_argument("--log", metavar="FILE.jsonl",
                   help="one JSON line of metrics per epoch (default with --checkpoint-dir: DIR/log.jsonl)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress output, nor the line saying what the trial reads")
    add_plugin_flag(p)
    add_trial_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trials.data.describe import data_line

    config = trial_config_from(args)  # validated before anything heavy happens
    check_inputs(config, args.resume)
    if not args.quiet:  # with the progress it precedes: --quiet leaves a failure the only line
        print(f"tokensweep trial: {data_line(config)}", file=sys.stderr)
    for note in config.notes():
        print(f"tokensweep trial: note: {note}", file=sys.stderr)

    from vocab.atomic import write_text_atomic
    from trials import run_trial

    try:
        with sigterm_raises():
            metrics = run_trial(config, resume_from=args.resume, checkpoint_dir=args.checkpoint_dir, progress=not args.quiet,
                                log_path=args.log)  # fmt: skip
    except (KeyboardInterrupt, Terminated) as stop:
        signum = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
        print(interrupted_line(signum, args.checkpoint_dir), file=sys.stderr, flush=True)
        return 128 + signum
    line = json.dumps({"model": config.model, **metrics}, sort_keys=True)
    if args.out:
        write_text_atomic(args.out, line + "\n")
    print(line, flush=True)
    return 0


def check_inputs(config, resume: str | None) -> None:
    """The data folder and the checkpoint to resume from, looked at before the trial says what it reads:
    a missing one is the only line on stderr."""
    if config.dataset != "tiny":
        from trials.data.loaders import check_data_root

        check_data_root(config.dataset, config.data_dir, config.batch_size)
    if resume is not None:
        from trials.train.checkpoint import check_checkpoint

        check_checkpoint(resume)


class Terminated(BaseException):
    """SIGTERM, raised where the trial is (like KeyboardInterrupt for SIGINT): checkpoints are written
    atomically, so whatever it interrupts leaves the last finished epoch's checkpoint whole."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def sigterm_raises():
    def handle(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_line(signum: int, checkpoint_dir: str | None) -> str:
    """One line: what the stopped trial kept, and how to continue it."""
    how = f"{'interrupted' if signum == signal.SIGINT else 'terminated'} by {signal.Signals(signum).name}"
    if checkpoint_dir is None:
        return f"tokensweep trial: {how}; no checkpoint was kept (pass --checkpoint-dir DIR to be able to resume)"
    from trials.errors import ConfigError
    from trials.train.checkpoint import load_checkpoint

    try:
        epoch = load_checkpoint(checkpoint_dir)["epoch"]
    except (ConfigError, KeyError, TypeError):
        return f"tokensweep trial: {how} before its first epoch ended; nothing to resume from in {checkpoint_dir}"
    return (
        f"tokensweep trial: {how}; the checkpoint of epoch {epoch} is in {checkpoint_dir}: the same command with "
        f"--resume {checkpoint_dir} continues from there"
    )
