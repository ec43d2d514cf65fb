"""`tokensweep data`: prepare data sets on disk.

    tokensweep data imagenet100 --source /data/imagenet --dest /data/imagenet100
    tokensweep data imagenet100 --source /data/imagenet --dest /data/in100-256 --resize 256 [--predecode]
    tokensweep data tiny --out data/tiny --classes 10 --img-size 32
"""

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="prepare data sets on disk (ImageNet-100 links, the generated tiny set as image files)",
        description="Prepare data sets on disk for dataset='imagenet100' or dataset='imagefolder'.",
    )
    kinds = parser.add_subparsers(dest="data_command", required=True, metavar="KIND", parser_class=type(parser))

    imagenet = kinds.add_parser(
        "imagenet100",
        help="link (or copy, resized) the 100 ImageNet-100 classes out of your ImageNet-1k copy",
        description=(
            "Make DEST/train/<wnid> and DEST/val/<wnid> symlinks to SOURCE/train/<wnid> and "
            "SOURCE/val/<wnid> for the 100 classes of CMC's ImageNet-100; with --resize, JPEG copies "
            "with that shorter side instead, which loader workers decode several times faster. "
            "SOURCE/val must be sorted into class folders. Nothing is written unless all 100 classes "
            "are found and every image decodes; running it again on a complete DEST does nothing. "
            "Then train with dataset='imagenet100', data_dir=DEST."
        ),
    )
    imagenet.add_argument("--source", required=True, metavar="DIR", help="ImageNet-1k root holding train/ and val/")
    imagenet.add_argument("--dest", required=True, metavar="DIR", help="where to create the ImageNet-100 folder")
    imagenet.add_argument(
        "--resize",
        type=int,
        metavar="N",
        help="write JPEG copies (quality 90) with shorter side N, e.g. 256, instead of links "
        "(a one-off; trials then report data_form=resized_N)",
    )
    imagenet.add_argument(
        "--predecode",
        action="store_true",
        help="with --resize: also store the copies' pixels undecoded in DEST/predecoded/ (~34 GB at 256), "
        "which trials read with no JPEG decode at all",
    )
    imagenet.add_argument(
        "--processes", type=int, metavar="N", help="processes for --resize/--predecode (default: all cores)"
    )
    imagenet.set_defaults(func=run_imagenet100)

    tiny = kinds.add_parser(
        "tiny",
        help="write the generated tiny data set as PNG/JPEG files in the ImageFolder layout",
        description=(
            "Write OUT/train/<class>/*.png and OUT/val/<class>/*.png for dataset='imagefolder'. With seed 0 "
            "and the same counts and size, the PNGs hold exactly the images dataset='tiny' keeps in memory."
        ),
    )
    tiny.add_argument("--out", required=True, metavar="DIR", help="output folder (its train/ and val/ must not exist)")
    tiny.add_argument("--classes", type=int, default=10, metavar="N", help="number of classes, >= 2 (default 10)")
    tiny.add_argument(
        "--train-per-class", type=int, default=200, metavar="N", help="train images per class (default 200)"
    )
    tiny.add_argument("--val-per-class", type=int, default=50, metavar="N", help="val images per class (default 50)")
    tiny.add_argument(
        "--img-size",
        type=int,
        default=32,
        metavar="N",
        help="image side in pixels; models want a multiple of 16 (default 32)",
    )
    tiny.add_argument("--seed", type=int, default=0, metavar="N", help="generator seed (default 0)")
    tiny.add_argument("--format", choices=("png", "jpeg"), default="png", help="image file format (default png)")
    tiny.set_defaults(func=run_tiny)


def run_imagenet100(args: argparse.Namespace) -> int:
    from trials.data.imagenet100 import build_imagenet100

    dest = build_imagenet100(args.source, args.dest, args.resize, args.predecode, args.processes)
    if args.resize is None:
        print(f"ImageNet-100 ready at {dest} (100 classes, train/ and val/ linked to {args.source})")
    else:
        pixels = ", pixels pre-decoded" if args.predecode else ""
        print(f"ImageNet-100 ready at {dest} (100 classes, copies with shorter side {args.resize}{pixels})")
    return 0


def run_tiny(args: argparse.Namespace) -> int:
    from trials.data.tiny import check_tiny_args, write_imagefolder

    check_tiny_args(args.classes, args.train_per_class, args.val_per_class, args.img_size, args.seed)
    out = write_imagefolder(
        args.out,
        classes=args.classes,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        img_size=args.img_size,
        seed=args.seed,
        image_format=args.format,
    )
    total = args.classes * (args.train_per_class + args.val_per_class)
    print(f"wrote {total} images ({args.classes} classes, {args.img_size}x{args.img_size} {args.format}) to {out}")
    return 0
