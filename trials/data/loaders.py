"""`build_loaders(config, device)`: the train and val loaders a TrialConfig asks for.

- tiny: the generated set, in memory. With workers=0 (smoke runs, CI) train images get only a
  cheap tensor-level random crop + flip; with workers > 0 they go through the full recipe
  (RandomResizedCrop, flip, RandAugment) like real images. Random erasing follows on the device.
- imagefolder: `data_dir/train` and `data_dir/val`; imagenet100: the same, with the 100 classes.
  A copy made by `tokensweep data imagenet100 --resize N [--predecode]` is read as it says in its
  marker file (pre-decoded pixels: no JPEG decode in the workers); `loader.data_form` names it.

Both loaders yield uint8 images; `loader.device_augment(x)` turns a batch moved to the training
device into normalised float32 and, for training, applies random erasing (device_augment.py).

Shuffling draws from a torch.Generator seeded from config.seed (`loader.generator`), and so do
augmentations (per worker, and on the device), so two runs with the same seed see the same batches.
"""

import os
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from trials.config import require_full_batch
from trials.data.describe import TINY_DATA_SEED
from trials.data.device_augment import DeviceAugment
from trials.data.imagefolder import ImageFolder, bad_image_error, check_imagefolder, collate_images, find_classes
from trials.data.imagenet100 import imagenet100_wnids
from trials.data.prepared import PredecodedImages, data_form, read_prepared_form
from trials.data.seeded import SeededDataset
from trials.data.tiny import make_tiny
from trials.data.transforms import EvalTransform, TrainTransform, pad_crop_flip
from trials.errors import ConfigError, require


class InMemoryImages(SeededDataset):
    """uint8 images (N, 3, H, W) + labels; `augment(x_uint8, generator)` -> uint8 tensor, if given."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes, augment=None, seed: int = 0):
        super().__init__(seed)
        self.images, self.labels, self.classes = images, labels, list(classes)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = self.images[index]
        x = x if self.augment is None else self.augment(x, self.rng)
        return x, int(self.labels[index])


class CheapAugment:
    """Pad-and-crop + flip on the uint8 tensor: microseconds."""

    def __init__(self, img_size: int):
        self.padding = max(1, img_size // 8)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return pad_crop_flip(x, self.padding, g)


class PilAugment:
    """The full train recipe (TrainTransform) applied to a uint8 tensor via PIL."""

    def __init__(self, transform: TrainTransform):
        self.transform = transform

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.transform(Image.fromarray(x.permute(1, 2, 0).numpy()), g)


class Loader:
    """A DataLoader yielding (uint8 images, labels) that applies the bad-image policy.

    bad_images="fail": the first undecodable file raises BadImageError (one line, names the file).
    bad_images="skip": such files are left out of their batch; `bad_images` counts distinct files.
    `device_augment(x)`: what the consumer applies once x is on its device (normalise, erase).
    `data_form`: what the images on disk are ("original", or the marker of a prepared copy).
    """

    def __init__(self, loader: DataLoader, bad_images: str = "fail", device_augment: DeviceAugment | None = None,
                 data_form: str = "original"):  # fmt: skip
        self.loader, self.policy = loader, bad_images
        self.device_augment = device_augment or DeviceAugment()
        self.data_form = data_form
        self.skipped: set[str] = set()

    @property
    def bad_images(self) -> int:
        return len(self.skipped)

    @property
    def generator(self) -> torch.Generator | None:
        """The shuffle generator: reseed it to replay an epoch's order."""
        return self.loader.generator

    @property
    def dataset(self) -> Dataset:
        return self.loader.dataset

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        if self.generator is not None:
            # Tie this process's augmentations to the shuffle generator, so an epoch replayed from
            # a reseeded generator gets the same crops (workers=0) and erased boxes too.
            dataset_seed, device_seed = torch.randint(2**62, (2,), generator=self.generator).tolist()
            if self.loader.num_workers == 0:
                _reseed_dataset(self.dataset, dataset_seed)
            self.device_augment.reseed(device_seed)
        for x, y, bad in self.loader:
            for sample in bad:
                if self.policy == "fail":
                    raise bad_image_error(sample)
                self.skipped.add(sample.path)
            if x is not None:
                yield x, y


def _reseed_dataset(dataset: Dataset, seed: int) -> None:
    if hasattr(dataset, "reseed"):
        dataset.reseed(seed)


def _seed_worker(worker_id: int) -> None:
    """Each worker's copy of the dataset draws augmentations from its own seed (base seed + id)."""
    info = get_worker_info()
    _reseed_dataset(info.dataset, info.seed % 2**63)


def make_loader(dataset: Dataset, config, train: bool, pin_memory: bool, data_form: str = "original") -> Loader:
    generator = torch.Generator().manual_seed(config.seed) if train else None
    workers = config.loader_workers
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=train,
        drop_last=train,
        generator=generator,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        collate_fn=collate_images,
        worker_init_fn=_seed_worker if workers > 0 else None,
    )
    device_step = DeviceAugment(config.random_erasing if train else 0.0, seed=config.seed)
    return Loader(loader, config.bad_images, device_step, data_form)


def tiny_datasets(config, img_size: int) -> tuple[Dataset, Dataset, int]:
    data = make_tiny(
        config.tiny_classes, config.tiny_train_per_class, config.tiny_val_per_class, img_size, TINY_DATA_SEED
    )
    if config.loader_workers == 0:
        augment = CheapAugment(img_size)
    else:
        augment = PilAugment(TrainTransform(img_size, config.randaugment))
    train = InMemoryImages(data.train_x, data.train_y, data.classes, augment, seed=config.seed)
    val = InMemoryImages(data.val_x, data.val_y, data.classes)
    return train, val, len(data.classes)


def folder_datasets(config, img_size: int) -> tuple[Dataset, Dataset, int]:
    root = config.data_dir
    train_tf = TrainTransform(img_size, config.randaugment)
    form = read_prepared_form(root)
    if form is not None and form.predecoded:
        train = PredecodedImages(root, "train", train_tf, seed=config.seed)
        val = PredecodedImages(root, "val", EvalTransform(img_size), classes=train.classes)
    else:
        train = ImageFolder(os.path.join(root, "train"), train_tf, seed=config.seed)
        val = ImageFolder(os.path.join(root, "val"), EvalTransform(img_size), classes=train.classes)
    if config.dataset == "imagenet100":
        check_imagenet100_classes(root, train.classes)
    require(len(train.classes) >= 2, f"{root}/train has {len(train.classes)} class folder; a classifier needs >= 2")
    return train, val, len(train.classes)


def check_data_root(dataset: str, root: str, batch_size: int = 1) -> None:
    """The folder a trial of `dataset` reads, looked at before any training (check_imagefolder), and for
    ImageNet-100 its class set: a one-line ConfigError now rather than a failed trial later."""
    if dataset == "imagenet100":  # another data set altogether: said before what else is wrong with it
        check_imagenet100_classes(root, find_classes(Path(root) / "train"))
    check_imagefolder(root, batch_size)


def check_imagenet100_classes(root: str, classes: list[str]) -> None:
    expected = imagenet100_wnids()
    if sorted(classes) == sorted(expected):
        return
    missing = sorted(set(expected) - set(classes))
    extra = sorted(set(classes) - set(expected))
    raise ConfigError(
        f"{root}/train has {len(classes)} class folders, not the 100 ImageNet-100 classes "
        f"(missing {len(missing)}: {', '.join(missing[:3]) or '-'}; unexpected {len(extra)}: "
        f"{', '.join(extra[:3]) or '-'}); build it with `tokensweep data imagenet100`, "
        "or use dataset='imagefolder' for another class set"
    )


def build_loaders(config, device="cpu") -> tuple[Loader, Loader, int]:
    """(train_loader, val_loader, num_classes) for `config`; both loaders yield (images, labels)."""
    img_size = config.spec.img_size
    if config.dataset == "tiny":
        train_set, val_set, num_classes = tiny_datasets(config, img_size)
        form = "generated"
    else:
        train_set, val_set, num_classes = folder_datasets(config, img_size)
        form = data_form(config.data_dir)
    require_full_batch(len(train_set), config.batch_size)
    pin = torch.device(device).type == "cuda"
    train, val = make_loader(train_set, config, True, pin, form), make_loader(val_set, config, False, pin, form)
    return train, val, num_classes
