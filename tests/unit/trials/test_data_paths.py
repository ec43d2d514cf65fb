"""The cheaper loader paths: uint8 from workers with normalisation and erasing on the device (B),
resized JPEG copies (C) and pre-decoded pixels (D), on images the project generates."""

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.old_recipe import random_erasing, to_normalized_tensor  # the per-image forms workers ran before
from fake_data import fake_imagenet, folder_config
from trials import run_trial
from trials.data import EvalTransform, ImageFolder, TrainTransform, build_loaders, imagenet100_wnids, write_imagefolder
from trials.data.device_augment import DeviceAugment, erase_boxes
from trials.data.prepared import MARKER, PredecodedImages, read_prepared_form, write_prepared_copy
from trials.data.tiny import make_tiny
from trials.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from trials.errors import ConfigError

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def tiny_image(size=64, index=0) -> Image.Image:
    return Image.fromarray(make_tiny(2, 2, 1, size).train_x[index].permute(1, 2, 0).numpy())


@pytest.fixture(scope="module")
def tiny_jpegs(tmp_path_factory):
    """The generated tiny set as JPEGs: 3 classes, 8 train and 4 val images each, 32x32."""
    root = tmp_path_factory.mktemp("tiny") / "src"
    return write_imagefolder(root, classes=3, train_per_class=8, val_per_class=4, image_format="jpeg")


@pytest.fixture(scope="module")
def predecoded(tiny_jpegs, tmp_path_factory):
    classes = sorted(os.listdir(tiny_jpegs / "train"))
    return write_prepared_copy(tiny_jpegs, tmp_path_factory.mktemp("prep") / "copy", classes, 32, True, processes=2)


# --- B: uint8 from the workers, normalise + erase on the device ---


def test_transforms_and_loaders_hand_over_uint8_chw(tiny_jpegs):
    g = torch.Generator().manual_seed(0)
    for transform in (TrainTransform(32, randaugment=True), EvalTransform(32)):
        x = transform(tiny_image(), g)
        assert x.dtype == torch.uint8 and x.shape == (3, 32, 32)
    for workers in (0, 1):
        train, val, _ = build_loaders(folder_config(tiny_jpegs, workers=workers, randaugment=True), "cpu")
        for loader in (train, val):
            x, _ = next(iter(loader))
            assert x.dtype == torch.uint8 and x.shape == (4, 3, 32, 32)


@pytest.mark.parametrize("device", DEVICES)
def test_device_normalisation_equals_the_old_float_path(device):
    img = center = EvalTransform(48)(tiny_image(64))  # uint8 (3, 48, 48)
    pil = Image.fromarray(center.permute(1, 2, 0).numpy())
    old = to_normalized_tensor(pil)  # what workers returned before: float32, normalised on the CPU
    new = DeviceAugment()(img[None].to(device))[0]
    assert new.device.type == device and new.dtype == torch.float32
    # float64 reference of (x / 255 - mean) / std: float32 rounds each of the 3 ops to half an ulp of
    # values |v| <= 2.7, i.e. <= 3 * 2.7 * 2**-24 ~ 5e-7; 1e-6 leaves room for a device's own rounding.
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(3, 1, 1)
    reference = (img.double() / 255 - mean) / std
    torch.testing.assert_close(new.cpu().double(), reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(old.double(), reference, rtol=0, atol=1e-6)
    if device == "cpu":
        assert torch.equal(new, old)  # the same float32 ops in the same order


def erased(x_uint8: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Per image: the fraction of pixels that no longer hold the normalised original."""
    return (out != DeviceAugment()(x_uint8)).any(dim=1).float().mean(dim=(1, 2))


@pytest.mark.parametrize("prob", [0.0, 0.25, 0.5, 1.0])
def test_erasing_hits_each_image_with_its_probability(prob):
    n = 4000
    x = torch.full((n, 3, 32, 32), 128, dtype=torch.uint8)
    out = DeviceAugment(prob, seed=1)(x)
    hit = (erased(x, out) > 0).float().mean().item()
    sigma = math.sqrt(prob * (1 - prob) / n)
    assert abs(hit - prob) <= 4.5 * sigma + 1e-3, (hit, prob)  # boxes that never fit (in 10 tries) are rare


def test_erased_boxes_have_the_per_image_reference_sizes():
    """Same area distribution as the one-image form the workers used to run (benchmarks.old_recipe.random_erasing)."""
    n = 3000
    x = torch.full((n, 3, 32, 32), 128, dtype=torch.uint8)
    batch_area = erased(x, DeviceAugment(1.0, seed=2)(x))
    g = torch.Generator().manual_seed(3)
    base = DeviceAugment()(x[:1])[0]
    one_area = torch.stack([(random_erasing(base.clone(), 1.0, g) != base).any(0).float().mean() for _ in range(n)])
    assert abs(batch_area.mean() - one_area.mean()) < 0.01  # mean ~0.18; each mean's std error ~0.002
    assert abs(batch_area.std() - one_area.std()) < 0.01
    assert 0.0 < batch_area.min() and batch_area.max() < 0.5


def test_device_erasing_is_reproducible_from_its_seed():
    x = DeviceAugment()(torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8))
    a = erase_boxes(x, 0.5, torch.Generator().manual_seed(7))
    b = erase_boxes(x, 0.5, torch.Generator().manual_seed(7))
    c = erase_boxes(x, 0.5, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_replayed_epoch_erases_the_same_boxes(tiny_jpegs):
    train, _, _ = build_loaders(folder_config(tiny_jpegs, random_erasing=0.5), "cpu")

    def epoch():
        train.generator.manual_seed(123)  # as the training loop reseeds each epoch
        return torch.cat([train.device_augment(x) for x, _ in train])

    first, again = epoch(), epoch()
    assert torch.equal(first, again)
    assert not torch.equal(first, DeviceAugment()(torch.cat([x for x, _ in train])))  # some boxes erased


# --- C: resized JPEG copies (tokensweep data imagenet100 --resize) ---


def test_cli_resize_writes_jpegs_with_shorter_side_256(tmp_path, capsys):
    from tokensweep.cli import main

    wnids = imagenet100_wnids()
    source = fake_imagenet(tmp_path / "in1k", wnids)
    dest = tmp_path / "in100"
    args = ["data", "imagenet100", "--source", str(source), "--dest", str(dest), "--resize", "256", "--processes", "2"]
    assert main(args) == 0
    assert "shorter side 256" in capsys.readouterr().out
    for split in ("train", "val"):
        files = sorted((dest / split).rglob("*"))
        jpegs = [f for f in files if f.is_file()]
        assert len(jpegs) == 100 and sorted(os.listdir(dest / split)) == sorted(wnids)
        assert not any(f.is_symlink() for f in files)
        for path in jpegs:
            with Image.open(path) as img:
                assert img.format == "JPEG" and min(img.size) == 256, (path, img.size)
    form = read_prepared_form(dest)
    assert (form.shorter_side, form.predecoded, form.images) == (256, False, {"train": 100, "val": 100})
    mtime = (dest / MARKER).stat().st_mtime_ns
    assert main(args) == 0 and (dest / MARKER).stat().st_mtime_ns == mtime  # complete already: nothing rewritten
    train, _, num_classes = build_loaders(folder_config(dest, dataset="imagenet100", batch_size=8), "cpu")
    assert num_classes == 100 and train.data_form == "resized_256"
    assert isinstance(train.dataset, ImageFolder)


def test_a_bad_image_fails_the_copy_and_leaves_nothing(tmp_path, capsys):
    from tokensweep.cli import main

    wnids = imagenet100_wnids()
    source = fake_imagenet(tmp_path / "in1k", wnids, bad=wnids[40])
    args = ["--source", str(source), "--dest", str(tmp_path / "out" / "in100"), "--resize", "256"]
    assert main(["data", "imagenet100", *args, "--processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "zz_broken.JPEG" in err and err.count("\n") == 1
    assert os.listdir(tmp_path / "out") == []  # no dest, no .partial folder
    assert main(["data", "imagenet100", *args[:4], "--predecode"]) == 2  # --predecode without --resize
    assert "--predecode needs --resize" in capsys.readouterr().err


# --- D: pre-decoded pixels ---


def test_predecoded_copy_has_imagefolders_classes_labels_and_pixels(tiny_jpegs, predecoded):
    for split in ("train", "val"):
        original = ImageFolder(tiny_jpegs / split, lambda img, g: img)
        copy = ImageFolder(predecoded / split, lambda img, g: img)
        pixels = PredecodedImages(predecoded, split, lambda img, g: img)
        assert pixels.classes == copy.classes == original.classes
        assert pixels.targets == copy.targets == original.targets
        assert [p for p, _ in pixels.samples] == [p for p, _ in copy.samples]
        for i in (0, len(pixels) - 1):
            assert np.array_equal(np.asarray(pixels[i][0]), np.asarray(copy[i][0]))  # the copy, decoded
    assert read_prepared_form(predecoded).describe() == "resized_32_predecoded"


def test_loaders_read_predecoded_pixels_in_worker_processes(tiny_jpegs, predecoded):
    reference, ref_val, _ = build_loaders(folder_config(tiny_jpegs), "cpu")
    train, val, num_classes = build_loaders(folder_config(predecoded, workers=2, randaugment=True), "cpu")
    assert isinstance(train.dataset, PredecodedImages) and isinstance(val.dataset, PredecodedImages)
    assert train.data_form == "resized_32_predecoded" and num_classes == 3
    assert train.dataset.classes == reference.dataset.classes
    assert torch.cat([y for _, y in val]).tolist() == torch.cat([y for _, y in ref_val]).tolist()
    x, _ = next(iter(train))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 32, 32)


def test_predecoded_index_of_other_classes_is_refused(predecoded):
    with pytest.raises(ConfigError, match="other classes"):
        PredecodedImages(predecoded, "val", EvalTransform(32), classes=["a", "b"])


def test_a_trial_on_the_predecoded_copy_reports_its_data_form(predecoded):
    metrics = run_trial(folder_config(predecoded, epochs=1, measure=False), progress=False)
    assert metrics["data_form"] == "resized_32_predecoded" and math.isfinite(metrics["train_loss"])
