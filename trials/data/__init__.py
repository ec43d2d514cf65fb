"""Data: generated tiny set, ImageFolder / ImageNet-100 loading (and its resized / pre-decoded
copies), the DeiT transforms, mixup/cutmix.

    train_loader, val_loader, num_classes = build_loaders(config, device)
    mixer = build_mixer(config, num_classes)
    for x, y in train_loader:                      # x: uint8 (N, 3, H, W)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = train_loader.device_augment(x)         # normalise (+ random erasing) on the device
        x, targets = mixer(x, y)
        loss = soft_cross_entropy(model(x), targets)
    train_loader.bad_images  # files skipped so far with bad_images="skip"
"""

from trials.data.device_augment import DeviceAugment
from trials.data.imagefolder import BadImage, BadImageError, ImageFolder, check_imagefolder, collate_images, scan_split
from trials.data.imagenet100 import build_imagenet100, imagenet100_wnids
from trials.data.loaders import TINY_DATA_SEED, InMemoryImages, Loader, build_loaders
from trials.data.mix import Mixer, build_mixer, smoothed_one_hot, soft_cross_entropy
from trials.data.prepared import PredecodedImages, read_prepared_form, write_prepared_copy
from trials.data.tiny import TinyData, make_tiny, tiny_class_names, write_imagefolder
from trials.data.transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, RandAugment, TrainTransform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TINY_DATA_SEED",
    "BadImage",
    "BadImageError",
    "DeviceAugment",
    "EvalTransform",
    "ImageFolder",
    "InMemoryImages",
    "Loader",
    "Mixer",
    "PredecodedImages",
    "RandAugment",
    "TinyData",
    "TrainTransform",
    "build_imagenet100",
    "build_loaders",
    "build_mixer",
    "check_imagefolder",
    "collate_images",
    "imagenet100_wnids",
    "make_tiny",
    "read_prepared_form",
    "scan_split",
    "smoothed_one_hot",
    "soft_cross_entropy",
    "tiny_class_names",
    "write_imagefolder",
    "write_prepared_copy",
]
