"""`tokensweep trial`: one trial from flags or a TOML file; progress on stderr, one JSON line of final metrics on stdout.

TrialConfig <-> command-line flags and TOML files, derived from the declarations themselves.

Every TrialConfig field is a flag (`conv_depth` -> `--conv-depth`) with the help its field declares,
and every registered embedding's knobs are flags too, listed under that embedding with their range:
a new field or a plugin's knob is a new flag with no code here. Precedence, lowest first: the
defaults (or the smoke preset), the TOML file, then flags.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
import typing
from pathlib import Path

from tokensweep.errors import SpecError
from tokensweep.plugins import add_plugin_flag
from trials import TrialConfig
from trials.config import MODEL_PICKERS
from trials.models import BACKBONES, list_models, registered_embeddings


def _optional(parse):
    def parse_or_none(text: str):
        return None if text.lower() in ("none", "null", "") else parse(text)

    parse_or_none.__name__ = parse.__name__
    return parse_or_none


def _flag_type(hint):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    base = args[0] if args else hint
    return _optional(base) if type(None) in typing.get_args(hint) else base


def _knob_type(knob):
    def parse(text: str):
        try:
            return knob.parse(text)
        except ValueError as err:  # ConfigError is a ValueError: argparse prints its message
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = knob.type.__name__
    return parse


def _default_text(field: dataclasses.Field) -> str:
    meta = field.metadata
    if field.default is None:
        return meta.get("unset") or "unset"
    if field.name == "model":
        return field.default
    return "on" if field.default is True else "off" if field.default is False else str(field.default)


def add_trial_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrialConfig field and per knob; unset flags stay out of the namespace (SUPPRESS)."""
    group = parser.add_argument_group("trial options (defaults: the paper's recipe)")
    hints = typing.get_type_hints(TrialConfig)
    # choices are listed in the help, not given to argparse: TrialConfig's errors suggest the closest one
    group.add_argument("--backbone", default=argparse.SUPPRESS, metavar="B",
                       help=f"the model's backbone (replaces the one --model names): {', '.join(BACKBONES)}")  # fmt: skip
    group.add_argument("--embedding", default=argparse.SUPPRESS, metavar="E",
                       help=f"the model's embedding (replaces the one --model names): {', '.join(registered_embeddings())}")  # fmt: skip
    for field in dataclasses.fields(TrialConfig):
        if not field.init or field.name == "knobs":
            continue
        flag = "--" + field.name.replace("_", "-")
        hint, meta = hints[field.name], field.metadata
        choices = list_models() if meta.get("choices") == "models" else meta.get("choices")
        listed = f"; one of: {', '.join(choices)}" if choices else ""
        help_text = f"{meta.get('help', '')}{listed} (default: {_default_text(field)})"
        if hint is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(flag, type=_flag_type(hint), default=argparse.SUPPRESS, metavar="V", help=help_text)
    add_knob_flags(parser)


def add_knob_flags(parser: argparse.ArgumentParser) -> None:
    seen = set()
    for emb in registered_embeddings().values():
        new = [k for k in emb.knobs if k.name not in seen]
        if not emb.knobs:
            continue
        shared = [k.name for k in emb.knobs if k.name in seen]
        note = f" (also: {', '.join(shared)})" if shared else ""
        group = parser.add_argument_group(f"knobs of the {emb.name} embedding{note}", emb.doc.splitlines()[0] if emb.doc else None)
        for knob in new:
            seen.add(knob.name)
            flag = "--" + knob.name.replace("_", "-")
            default = knob.format(knob.default)
            help_text = f"{knob.help} ({knob.rule()}; default {default})"
            if knob.type is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
            else:
                group.add_argument(flag, type=_knob_type(knob), default=argparse.SUPPRESS, metavar="V", help=help_text)


def flag_values(args: argparse.Namespace) -> dict:
    names = TrialConfig.option_names()
    return {k: v for k, v in vars(args).items() if k in names or k in MODEL_PICKERS}


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; a missing file or a syntax error is a one-line SpecError with file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"cannot read {str(path)!r}: {getattr(err, 'strerror', None) or err}") from None
    from tokensweep.spec.source import load_toml

    return load_toml(text, str(path))


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
    values = with_dataset({**values, **flag_values(args)}, where)
    if getattr(args, "smoke", False):
        return TrialConfig.smoke(**values)
    return TrialConfig.from_dict(values, where=where)


def with_dataset(values: dict, where: str = "") -> dict:
    """A data path given with no data set named means an ImageFolder (the smoke preset's generated data
    is not a choice the user made); beside dataset "tiny", which reads no files, it is an error."""
    if values.get("data_dir") is None:
        return values
    dataset = values.setdefault("dataset", "imagefolder")
    if dataset == "tiny":
        raise SpecError(f"{where}data_dir {values['data_dir']!r} is set, but dataset is 'tiny' (generated data, which "
                        "reads no files): pass --dataset imagefolder (or imagenet100) to train on it, or leave "
                        "--data-dir out")  # fmt: skip
    return values


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
