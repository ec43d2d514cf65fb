"""What data a trial reads, for the record: a name, a digest, where it comes from, its split sizes.

    describe_data(config) -> DataDescription(name, digest, source, source_kind, sizes, classes, form)

Two trials on different data get different digests, so their runs cannot be confused:
- generated tiny data: the digest of the generator's inputs (seed, class and image counts, image
  size); the same inputs give the same images (trials.data.tiny).
- an ImageFolder (imagenet100, imagefolder, a resized or pre-decoded copy): the digest of every
  split's image files, as sorted relative paths with their sizes, plus a prepared copy's marker.
  The files are those the loaders read, listed as they list them (trials.data.listing: links
  followed, each real folder and file once): one directory listing and one stat per file, no file
  is read, ~1 s for ImageNet-100's 130k files on a local disk.

No torch or Ray here (plain os/hashlib), so a platform may call it wherever it likes; the sweep calls it
in the trial's worker, on the data that worker actually reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

from trials.data.listing import SPLITS, SplitLister

DIGEST_CHARS = 16  # of the sha256: enough to tell data sets apart, short enough to read in a table
MARKER = "tokensweep-data.json"  # what a prepared copy is (trials.data.prepared writes it)
TINY_DATA_SEED = 0  # the tiny set is a fixed benchmark: config.seed varies training, not the data


@dataclass(frozen=True)
class DataDescription:
    name: str  # "tiny", "imagenet100", or an ImageFolder's folder name
    digest: str
    source: str  # the data folder (absolute), or the generator's module
    source_kind: str  # "folder" | "generated"
    sizes: dict  # split -> images
    classes: int
    form: str  # "generated", "original", or a prepared copy's form ("resized_256", ...)

    def summary(self) -> str:
        """For people, one line: where the images come from, the classes, the images found per split."""
        where = "generated" if self.source_kind == "generated" else self.source
        form = "" if self.form in ("original", "generated") else f", {self.form}"
        images = ", ".join(f"{split} {n}" for split, n in self.sizes.items())
        return f"{where}{form}: {self.classes} classes; images: {images}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DataDescription":
        return cls(**data)


def describe_data(config) -> DataDescription:
    """The data `config` (a TrialConfig) trains and evaluates on."""
    if config.dataset == "tiny":
        return describe_tiny(
            config.tiny_classes, config.tiny_train_per_class, config.tiny_val_per_class, config.spec.img_size
        )
    return describe_folder(config.data_dir, config.dataset)


def data_inputs(config) -> tuple:
    """What describe_data(config) depends on: configs alike in these read the same data."""
    if config.dataset == "tiny":
        return ("tiny", config.tiny_classes, config.tiny_train_per_class, config.tiny_val_per_class, config.spec.img_size)
    return (config.dataset, config.data_dir)


def data_line(config, description: DataDescription | None = None) -> str:
    """The data `config` reads (`description`, if already made), its training length and recipe, in one
    line: what a user checks before a trial."""
    description = description or describe_data(config)
    epochs = f"{config.epochs} epoch{'' if config.epochs == 1 else 's'}"
    return f"{config.dataset} data ({description.summary()}); {epochs}, {config.recipe()}"


def describe_tiny(classes: int, train_per_class: int, val_per_class: int, img_size: int) -> DataDescription:
    inputs = {
        "generator": "trials.data.tiny",
        "seed": TINY_DATA_SEED,
        "classes": classes,
        "train_per_class": train_per_class,
        "val_per_class": val_per_class,
        "img_size": img_size,
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:DIGEST_CHARS]
    sizes = {"train": classes * train_per_class, "val": classes * val_per_class}
    return DataDescription("tiny", digest, "trials.data.tiny", "generated", sizes, classes, "generated")


def describe_folder(root: str, dataset: str = "imagefolder") -> DataDescription:
    root = os.path.abspath(root)
    h = hashlib.sha256()
    marker = os.path.join(root, MARKER)
    form = "original"
    if os.path.isfile(marker):
        with open(marker, "rb") as f:
            text = f.read()
        h.update(b"marker\0" + text + b"\n")
        try:
            fields = json.loads(text)
            form = prepared_form_name(fields["shorter_side"], fields.get("predecoded"))
        except (ValueError, TypeError, KeyError, AttributeError):
            form = "unknown"
    sizes, classes = {}, 0
    for split in SPLITS:
        lister = SplitLister(os.path.join(root, split))
        files = lister.image_files()
        for rel, size in files:
            h.update(f"{split}/{rel}\0{size}\n".encode("utf-8", "surrogateescape"))
        sizes[split] = len(files)
        if split == "train":
            classes = len(lister.class_names)
    name = dataset if dataset == "imagenet100" else os.path.basename(root.rstrip(os.sep)) or dataset
    return DataDescription(name, h.hexdigest()[:DIGEST_CHARS], root, "folder", sizes, classes, form)


def prepared_form_name(shorter_side: int, predecoded: bool) -> str:
    """A prepared copy's form, e.g. 'resized_256' or 'resized_256_predecoded' (the trial's `data_form` metric)."""
    return f"resized_{shorter_side}" + ("_predecoded" if predecoded else "")
