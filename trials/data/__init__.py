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

import importlib

# name -> the module that defines it, imported on first use: importing trials.data (and its plain-Python
# trials.data.describe, which the platform calls to say what a sweep reads) loads no torch
_HOMES = {
    "DeviceAugment": "device_augment",
    "BadImage": "imagefolder",
    "BadImageError": "imagefolder",
    "ImageFolder": "imagefolder",
    "check_imagefolder": "imagefolder",
    "collate_images": "imagefolder",
    "scan_split": "imagefolder",
    "build_imagenet100": "imagenet100",
    "imagenet100_wnids": "imagenet100",
    "TINY_DATA_SEED": "describe",
    "InMemoryImages": "loaders",
    "Loader": "loaders",
    "build_loaders": "loaders",
    "Mixer": "mix",
    "build_mixer": "mix",
    "smoothed_one_hot": "mix",
    "soft_cross_entropy": "mix",
    "PredecodedImages": "prepared",
    "read_prepared_form": "prepared",
    "write_prepared_copy": "prepared",
    "TinyData": "tiny",
    "make_tiny": "tiny",
    "tiny_class_names": "tiny",
    "write_imagefolder": "tiny",
    "IMAGENET_MEAN": "transforms",
    "IMAGENET_STD": "transforms",
    "EvalTransform": "transforms",
    "RandAugment": "transforms",
    "TrainTransform": "transforms",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'trials.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"trials.data.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_HOMES)
