"""The data layer: tiny set, ImageFolder loading and its errors, ImageNet-100 links, transforms, mixing."""

import os

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fake_data import fake_imagenet, folder_config
from trials.config import TrialConfig
from trials.data import (
    BadImageError,
    EvalTransform,
    ImageFolder,
    Mixer,
    TrainTransform,
    build_imagenet100,
    build_loaders,
    imagenet100_wnids,
    make_tiny,
    scan_split,
    smoothed_one_hot,
    soft_cross_entropy,
    tiny_class_names,
    write_imagefolder,
)
from trials.data.device_augment import DeviceAugment
from trials.data.tiny import generate_split
from trials.data.transforms import RAND_AUGMENT_OPS
from trials.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A small tiny set on disk: 3 classes, 8 train and 4 val PNGs each, 32x32."""
    return write_imagefolder(tmp_path_factory.mktemp("tiny") / "ds", classes=3, train_per_class=8, val_per_class=4)


def first_batch(loader):
    return next(iter(loader))


# --- the generated tiny set ---


def test_tiny_is_deterministic_from_its_seed_and_differs_across_seeds():
    a_x, a_y = generate_split(10, 3, 32, seed=0, split="train")
    b_x, b_y = generate_split(10, 3, 32, seed=0, split="train")
    c_x, _ = generate_split(10, 3, 32, seed=1, split="train")
    val_x, _ = generate_split(10, 3, 32, seed=0, split="val")
    assert a_x.dtype == torch.uint8 and a_x.shape == (30, 3, 32, 32)
    assert torch.equal(a_x, b_x) and torch.equal(a_y, b_y)
    assert not torch.equal(a_x, c_x)
    assert not torch.equal(a_x[:3], val_x[:3])
    assert a_y.tolist() == [c for c in range(10) for _ in range(3)]


@pytest.mark.parametrize("img_size", [16, 48, 64])
def test_tiny_works_at_any_multiple_of_16(img_size):
    data = make_tiny(classes=12, train_per_class=2, val_per_class=1, img_size=img_size, seed=3)
    assert data.train_x.shape == (24, 3, img_size, img_size)
    assert data.val_x.shape == (12, 3, img_size, img_size)
    assert len(data.classes) == 12 and data.classes == tuple(sorted(data.classes))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"classes": 1}, "classes"),
        ({"train_per_class": 0}, "train"),
        ({"img_size": 4}, "img_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_tiny_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        make_tiny(**kwargs)


def test_tiny_loaders_in_memory():
    config = TrialConfig.smoke(
        model="vit_tiny_patch", tiny_train_per_class=20, tiny_val_per_class=5, random_erasing=0.5
    )
    train, val, num_classes = build_loaders(config, "cpu")
    x, y = first_batch(train)
    assert num_classes == 10
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert train.device_augment(x).dtype == torch.float32
    assert len(train) == 200 // 64 and sum(len(y) for _, y in val) == 50


def test_tiny_full_recipe_in_worker_processes():
    config = TrialConfig.smoke(
        model="vit_tiny_conv", tiny_train_per_class=4, tiny_val_per_class=2, batch_size=8, workers=1, randaugment=True
    )
    train, val, _ = build_loaders(config, "cpu")
    x, y = first_batch(train)
    assert x.shape == (8, 3, 32, 32) and torch.isfinite(x).all()


def test_same_seed_same_batches_and_other_seed_other_batches(tiny_folder):
    def batches(seed):
        train, _, _ = build_loaders(folder_config(tiny_folder, seed=seed, randaugment=True, random_erasing=0.5), "cpu")
        return [(x.clone(), y.clone()) for x, y in train]

    a, b, c = batches(0), batches(0), batches(1)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


# --- ImageFolder ---


def test_written_imagefolder_loads_through_the_real_loader(tiny_folder):
    train, val, num_classes = build_loaders(folder_config(tiny_folder, randaugment=True, random_erasing=0.25), "cpu")
    assert num_classes == 3
    assert train.dataset.classes == list(tiny_class_names(3))
    x, y = first_batch(train)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and 0 <= y.min() and y.max() < 3
    labels = torch.cat([y for _, y in val])
    assert labels.tolist() == [c for c in range(3) for _ in range(4)]  # val unshuffled, class order
    assert len(train) == 24 // 4 and train.bad_images == 0


def test_any_pillow_mode_loads_as_rgb(tmp_path):
    split = tmp_path / "train"
    for mode, ext in (("L", "png"), ("RGBA", "png"), ("P", "gif"), ("CMYK", "jpg"), ("RGB", "webp")):
        (split / mode).mkdir(parents=True)
        Image.new(mode, (24, 20)).save(split / mode / f"a.{ext}")
    folder = ImageFolder(split, EvalTransform(16))
    assert folder.classes == sorted(["L", "RGBA", "P", "CMYK", "RGB"])
    assert all(folder[i][0].shape == (3, 16, 16) for i in range(len(folder)))


def test_missing_split_directory_is_a_clear_error(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "cat" / "a.png")
    with pytest.raises(ConfigError, match=r"val does not exist"):
        build_loaders(folder_config(tmp_path), "cpu")


def test_split_without_class_folders_is_a_clear_error(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ConfigError, match="holds no class folders"):
        scan_split(tmp_path / "train")


def test_empty_class_folder_is_named(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "dog").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "cat" / "a.png")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image extension: ignored")
    with pytest.raises(ConfigError, match=r"class folder .*dog holds no images") as err:
        scan_split(tmp_path / "train")
    assert "\n" not in str(err.value)


def test_val_class_missing_from_train_is_an_error(tmp_path):
    for split, name in (("train", "cat"), ("val", "cat"), ("val", "eel")):
        (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / split / name / "a.png")
    with pytest.raises(ConfigError, match="eel"):
        scan_split(tmp_path / "val", classes=["cat"])


@pytest.fixture()
def folder_with_bad_files(tmp_path, tiny_folder):
    """A copy of the tiny folder whose val split holds a text file named .jpg and a truncated PNG."""
    root = tmp_path / "bad"
    root.mkdir()
    os.symlink(tiny_folder / "train", root / "train", target_is_directory=True)
    for name in tiny_class_names(3):
        (root / "val" / name).mkdir(parents=True)
        for f in (tiny_folder / "val" / name).iterdir():
            (root / "val" / name / f.name).write_bytes(f.read_bytes())
    cls = root / "val" / tiny_class_names(3)[1]
    (cls / "zz_notes.jpg").write_text("this is not an image")
    good = next(iter(sorted(cls.glob("*.png")))).read_bytes()
    (cls / "zz_truncated.png").write_bytes(good[: len(good) // 2])
    return root


def test_bad_image_fails_with_the_file_named(folder_with_bad_files):
    _, val, _ = build_loaders(folder_config(folder_with_bad_files, bad_images="fail"), "cpu")
    with pytest.raises(BadImageError, match=r"zz_notes\.jpg") as err:
        list(val)
    assert "\n" not in str(err.value) and "bad_images='skip'" in str(err.value)


def test_bad_images_skipped_and_counted_across_worker_processes(folder_with_bad_files):
    _, val, _ = build_loaders(folder_config(folder_with_bad_files, bad_images="skip", workers=2), "cpu")
    for _ in range(2):  # a second epoch meets the same files: still counted once each
        seen = sum(len(y) for _, y in val)
        assert seen == 12
    assert val.bad_images == 2


def test_batch_larger_than_train_split_is_an_error(tiny_folder):
    with pytest.raises(ConfigError, match="fewer than batch_size=64"):
        build_loaders(folder_config(tiny_folder, batch_size=64), "cpu")


def test_imagenet100_dataset_needs_the_100_classes(tiny_folder):
    with pytest.raises(ConfigError, match="not the 100 ImageNet-100 classes"):
        build_loaders(folder_config(tiny_folder, dataset="imagenet100"), "cpu")


# --- ImageNet-100 links ---


def test_build_imagenet100_links_every_class_and_is_idempotent(tmp_path):
    wnids = imagenet100_wnids()
    assert len(wnids) == 100 and len(set(wnids)) == 100
    source = fake_imagenet(tmp_path / "in1k", wnids)
    dest = build_imagenet100(source, tmp_path / "in100")
    for split in ("train", "val"):
        assert sorted(os.listdir(dest / split)) == sorted(wnids)
        link = dest / split / wnids[0]
        assert link.is_symlink() and link.resolve() == (source / split / wnids[0]).resolve()
    assert build_imagenet100(source, tmp_path / "in100") == dest  # already complete: nothing to do
    train, val, num_classes = build_loaders(folder_config(dest, dataset="imagenet100", batch_size=8), "cpu")
    assert num_classes == 100 and first_batch(val)[0].shape == (8, 3, 32, 32)


def test_build_imagenet100_reports_missing_classes_and_writes_nothing(tmp_path):
    wnids = imagenet100_wnids()
    source = fake_imagenet(tmp_path / "in1k", wnids, missing_train=wnids[10:17])
    with pytest.raises(ConfigError, match=rf"lacks 7 of the 100 .*{wnids[10]}") as err:
        build_imagenet100(source, tmp_path / "out" / "in100")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_build_imagenet100_explains_flat_val_layout(tmp_path):
    source = tmp_path / "in1k"
    (source / "train").mkdir(parents=True)
    (source / "val").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(source / "val" / f"ILSVRC2012_val_{i:08d}.JPEG")
    with pytest.raises(ConfigError, match="flat layout"):
        build_imagenet100(source, tmp_path / "in100")
    assert not (tmp_path / "in100").exists()


def test_build_imagenet100_refuses_a_foreign_dest(tmp_path):
    source = fake_imagenet(tmp_path / "in1k", imagenet100_wnids())
    (tmp_path / "in100").mkdir()
    (tmp_path / "in100" / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="already exists"):
        build_imagenet100(source, tmp_path / "in100")
    assert os.listdir(tmp_path / "in100") == ["mine.txt"]
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


# --- transforms ---


def test_transforms_give_uint8_tensors_of_img_size_normalised_on_the_device():
    img = Image.new("RGB", (50, 40), (200, 30, 90))
    for transform in (TrainTransform(32, randaugment=True), EvalTransform(32)):
        x = transform(img, torch.Generator().manual_seed(0))
        assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    x = DeviceAugment()(EvalTransform(32)(img)[None])[0]
    assert x.dtype == torch.float32
    assert torch.allclose(x[0], torch.full((32, 32), (200 / 255 - 0.485) / 0.229), atol=1e-5)


def test_train_transform_is_deterministic_given_a_generator():
    img = Image.fromarray(make_tiny(2, 1, 1, 64).train_x[0].permute(1, 2, 0).numpy())
    transform = TrainTransform(32, randaugment=True)
    a = [transform(img, torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert torch.equal(a[0], a[1]) and not torch.equal(a[0], a[2])


@pytest.mark.parametrize("name", sorted(RAND_AUGMENT_OPS))
def test_every_randaugment_op_keeps_size_and_mode_at_all_magnitudes(name):
    img = Image.fromarray(make_tiny(2, 1, 1, 32).train_x[0].permute(1, 2, 0).numpy())
    for magnitude in (0.0, 9.0, 10.0):
        out = RAND_AUGMENT_OPS[name](img, magnitude, torch.Generator().manual_seed(0))
        assert out.size == img.size and out.mode == "RGB"


# --- mixup / cutmix ---


def batch(n=8, classes=5):
    return torch.randn(n, 3, 16, 16), torch.arange(n) % classes


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixed_targets_are_distributions(mixup, cutmix):
    mixer = Mixer(5, mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=0.1, seed=0)
    for _ in range(10):
        x, y = batch()
        mixed, targets = mixer(x, y)
        assert mixed.shape == x.shape and targets.shape == (8, 5)
        assert torch.allclose(targets.sum(1), torch.ones(8)) and (targets >= 0).all()


def test_cutmix_target_weight_is_the_pasted_area():
    mixer = Mixer(8, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, seed=1)
    x = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 1, 16, 16).contiguous()
    y = torch.arange(8)
    mixed, targets = mixer(x, y)
    own_share = (mixed[0] == 0).float().mean()
    assert torch.isclose(targets[0, 0], own_share) and torch.isclose(targets[0, 7], 1 - own_share)
    assert torch.equal(x[:, 0, 0, 0], torch.arange(8.0))  # the input batch was not modified


def test_mixing_off_gives_one_hot_and_plain_cross_entropy():
    x, y = batch()
    mixer = Mixer(5, mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0)
    out, targets = mixer(x, y)
    assert out is x and torch.equal(targets, F.one_hot(y, 5).float())
    logits = torch.randn(8, 5)
    assert torch.allclose(soft_cross_entropy(logits, targets), F.cross_entropy(logits, y))
    assert torch.allclose(soft_cross_entropy(logits, y), F.cross_entropy(logits, y))


def test_smoothing_matches_torch_label_smoothing():
    logits, y = torch.randn(8, 5), torch.arange(8) % 5
    targets = smoothed_one_hot(y, 5, 0.1)
    assert torch.allclose(soft_cross_entropy(logits, targets), F.cross_entropy(logits, y, label_smoothing=0.1))


# --- the CLI ---


def test_cli_writes_tiny_set_and_rejects_bad_values(tmp_path, capsys):
    from tokensweep.cli import main

    out = tmp_path / "tiny"
    args = ["--classes", "2", "--train-per-class", "2", "--val-per-class", "1", "--img-size", "16"]
    assert main(["data", "tiny", "--out", str(out), *args]) == 0
    assert len(list((out / "train").rglob("*.png"))) == 4 and len(list((out / "val").rglob("*.png"))) == 2
    assert main(["data", "tiny", "--out", str(tmp_path / "x"), "--classes", "1"]) == 2
    assert main(["data", "imagenet100", "--source", str(tmp_path / "nowhere"), "--dest", str(tmp_path / "in100")]) == 2
    assert "error" in capsys.readouterr().err
