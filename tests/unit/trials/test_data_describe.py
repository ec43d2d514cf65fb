"""trials.data.describe: what data a trial reads, as name, digest, source and sizes.

The digest must change when the data does (another generator input, a file added, renamed or
rewritten, a prepared copy's form) and only then (the same data listed twice, in another order of
creation, through symlinks).
"""

import json
import os
import subprocess
import sys

import pytest

from trials import TrialConfig
from trials.data import imagefolder, prepared
from trials.data.describe import MARKER, DataDescription, describe_data, describe_folder
from trials.data.listing import IMAGE_EXTENSIONS, image_files


def make_folder(root, classes=("a", "b"), per_class=3, payload=b"x"):
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (d / f"{i}.jpg").write_bytes(payload * (i + 1))
    return root


def test_the_copies_of_the_loaders_constants_agree():
    assert IMAGE_EXTENSIONS == imagefolder.IMAGE_EXTENSIONS
    assert MARKER == prepared.MARKER


def test_tiny_is_described_by_its_generator_inputs():
    smoke = TrialConfig.smoke()
    d = describe_data(smoke)
    assert (d.name, d.source_kind, d.form) == ("tiny", "generated", "generated")
    assert d.sizes == {"train": smoke.tiny_classes * smoke.tiny_train_per_class, "val": smoke.tiny_classes * smoke.tiny_val_per_class}
    assert describe_data(TrialConfig.smoke()).digest == d.digest  # the same inputs: the same images
    assert describe_data(TrialConfig.smoke(tiny_classes=smoke.tiny_classes + 1)).digest != d.digest
    assert describe_data(TrialConfig.smoke(img_size=48)).digest != d.digest
    assert describe_data(TrialConfig.smoke(seed=7)).digest == d.digest  # training's seed is not the data's


def test_folder_digest_follows_the_files(tmp_path):
    root = make_folder(tmp_path / "data")
    d = describe_folder(root)
    assert d.sizes == {"train": 6, "val": 6} and d.classes == 2 and d.form == "original"
    assert d.name == "data" and d.source == str(root) and d.source_kind == "folder"
    assert describe_folder(str(root) + "/").digest == d.digest
    (root / "train" / "a" / "notes.txt").write_text("not an image")  # not an image: not the data
    (root / "train" / ".hidden").mkdir()
    (root / "train" / ".hidden" / "x.jpg").write_bytes(b"x")
    assert describe_folder(root).digest == d.digest
    (root / "train" / "a" / "0.jpg").write_bytes(b"yy")  # same name, another size
    changed = describe_folder(root).digest
    assert changed != d.digest
    (root / "train" / "a" / "0.jpg").rename(root / "train" / "a" / "9.jpg")
    assert describe_folder(root).digest not in (d.digest, changed)


def test_the_same_files_made_in_another_order_give_the_same_digest(tmp_path):
    one = make_folder(tmp_path / "one", classes=("a", "b"))
    two = make_folder(tmp_path / "two", classes=("b", "a"))
    assert describe_folder(one).digest == describe_folder(two).digest


def test_imagenet100_keeps_its_name_and_a_prepared_copy_its_form(tmp_path):
    root = make_folder(tmp_path / "in100-256")
    plain = describe_folder(root, "imagenet100")
    assert plain.name == "imagenet100"
    (root / MARKER).write_text(json.dumps({"source": "/x", "shorter_side": 256, "predecoded": True, "images": {}}))
    copy = describe_folder(root, "imagenet100")
    assert copy.form == "resized_256_predecoded" and copy.digest != plain.digest


def test_symlinks_are_followed_and_loops_end(tmp_path):
    source = make_folder(tmp_path / "source")
    linked = tmp_path / "linked"
    for split in ("train", "val"):
        (linked / split).mkdir(parents=True)
        for c in ("a", "b"):
            os.symlink(source / split / c, linked / split / c, target_is_directory=True)
    assert describe_folder(linked).digest == describe_folder(source).digest
    os.symlink(source / "train", source / "train" / "a" / "loop", target_is_directory=True)
    files = list(image_files(source / "train"))  # ends: train/ is listed once
    assert len(files) == 6


def test_round_trip_and_no_torch_in_the_module(tmp_path):
    d = describe_folder(make_folder(tmp_path / "d"))
    assert DataDescription.from_dict(json.loads(json.dumps(d.as_dict()))) == d
    # the module itself imports neither torch nor the loaders (only the package's __init__ does)
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('describe', sys.argv[1]); "
        "m = importlib.util.module_from_spec(spec); sys.modules['describe'] = m; spec.loader.exec_module(m); "
        "assert 'torch' not in sys.modules; print(m.describe_folder(sys.argv[2]).sizes)"
    )
    import trials.data.describe as module

    out = subprocess.run([sys.executable, "-c", code, module.__file__, str(tmp_path / "d")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'train': 6, 'val': 6}"


@pytest.mark.parametrize("n", [2000])
def test_listing_does_not_read_files(tmp_path, n):
    """Only names and sizes: unreadable files still describe (a stat needs no read permission)."""
    root = make_folder(tmp_path / "d", per_class=1)
    cls = root / "train" / "a"
    for i in range(n):
        (cls / f"f{i:05d}.png").write_bytes(b"")
    for f in cls.iterdir():
        f.chmod(0)
    try:
        assert describe_folder(root).sizes["train"] == 2 + n
    finally:
        for f in cls.iterdir():
            f.chmod(0o644)


def test_the_description_counts_the_images_the_loaders_read(tmp_path):
    """A second path to one image (a hard link, a link from another class) and a file beside the class
    folders are not images a trial reads: the sizes leave them out, as the loaders do."""
    from trials.data.imagefolder import scan_split

    root = make_folder(tmp_path / "d")
    os.link(root / "train" / "a" / "0.jpg", root / "train" / "a" / "hard.jpg")
    os.symlink(root / "train" / "a" / "1.jpg", root / "train" / "b" / "from-a.jpg")
    (root / "val" / "loose.jpg").write_bytes(b"x")
    read = {split: len(scan_split(root / split)[1]) for split in ("train", "val")}
    assert read == {"train": 6, "val": 6}
    assert describe_folder(root).sizes == read
