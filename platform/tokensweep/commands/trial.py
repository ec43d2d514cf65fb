"""`tokensweep trial`: one trial from flags or a TOML file; progress on stderr, one JSON line of final metrics on stdout."""

import argparse
import json
import sys

from tokensweep.plugins import add_plugin_flag
from tokensweep.trial_flags import add_trial_flags, trial_config_from


def register(sub) -> None:
    p = sub.add_parser(
        "trial",
        help="train and measure one model",
        description="Train and evaluate one ViT, then measure params, FLOPs and images/sec. "
        "Ends with one JSON line of final metrics on stdout.",
        epilog="example: tokensweep trial --smoke --model vit_tiny_patch --epochs 4",
    )
    p.add_argument("--smoke", action="store_true", help="tiny data, tiny model, a few epochs (CPU, under a minute)")
    p.add_argument("--config", metavar="FILE.toml", help="TrialConfig values ([trial] table or top level); flags win")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="keep each epoch's checkpoint here (replaced atomically)")
    p.add_argument("--resume", metavar="DIR", help="continue from the checkpoint in DIR")
    p.add_argument("--out", metavar="FILE.json", help="also write the final metrics here (atomically)")
    p.add_argument("--log", metavar="FILE.jsonl",
                   help="one JSON line of metrics per epoch (default with --checkpoint-dir: DIR/log.jsonl)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_plugin_flag(p)
    add_trial_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = trial_config_from(args)  # validated before anything heavy happens
    for note in config.notes():
        print(f"tokensweep trial: note: {note}", file=sys.stderr)

    from dashboards.atomic import write_text_atomic
    from trials import run_trial

    metrics = run_trial(config, resume_from=args.resume, checkpoint_dir=args.checkpoint_dir, progress=not args.quiet,
                        log_path=args.log)  # fmt: skip
    line = json.dumps({"model": config.model, **metrics}, sort_keys=True)
    if args.out:
        write_text_atomic(args.out, line + "\n")
    print(line, flush=True)
    return 0
