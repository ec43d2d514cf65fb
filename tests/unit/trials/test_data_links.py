"""Data folders with symlinks: followed (ImageNet-100 is built as a symlink farm), loops and second paths
to one file not. Every image is counted once per split, and what was left out is said in one line.

The folders are small (3 classes x 8 train / 4 val images); counts are compared with the same folder
without the links. A case that used to hang runs in a subprocess with a timeout, so that a regression
fails the test instead of hanging the suite.
"""

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from trials.data import ImageFolder, check_imagefolder, scan_split, write_imagefolder
from trials.data.prepared import plan_split
from trials.errors import ConfigError

TRAIN, VAL = 8, 4  # images per class


@pytest.fixture()
def folder(tmp_path) -> Path:
    return write_imagefolder(tmp_path / "ds", classes=3, train_per_class=TRAIN, val_per_class=VAL, img_size=16)


def class_dirs(root: Path, split: str = "train") -> list[Path]:
    return sorted(p for p in (root / split).iterdir() if p.is_dir())


def per_class(samples) -> list[int]:
    counts = Counter(label for _, label in samples)
    return [counts[i] for i in range(len(counts))]


def real_files(samples) -> list[str]:
    return [os.path.realpath(path) for path, _ in samples]


def test_a_loop_link_in_a_class_folder_counts_each_image_once_and_says_so(folder, capsys):
    cls = class_dirs(folder)[0]
    (cls / "more").mkdir()  # an ordinary sub-folder still counts
    (cls / "more" / "extra.png").write_bytes(next(cls.glob("*.png")).read_bytes())
    os.symlink(".", cls / "loop")
    _, samples = scan_split(folder / "train")
    assert per_class(samples) == [TRAIN + 1, TRAIN, TRAIN]
    assert len(set(real_files(samples))) == len(samples)

    dataset = ImageFolder(folder / "train", transform=None)
    assert len(dataset) == 3 * TRAIN + 1
    assert "did not enter 1 folder(s)" in dataset.note and str(cls / "loop") in dataset.note
    err = capsys.readouterr().err.splitlines()
    assert err == [f"note: {dataset.note}"]  # one line, said once
    ImageFolder(folder / "train", transform=None)
    assert capsys.readouterr().err == ""  # the same note is not repeated by the same process


UP_LINKS = textwrap.dedent("""
    import json, sys
    from trials.data import check_imagefolder, scan_split
    root = sys.argv[1]
    check_imagefolder(root)
    print(json.dumps({split: [label for _, label in scan_split(f"{root}/{split}")[1]] for split in ("train", "val")}))
""")


def test_up_links_in_three_class_folders_finish_with_correct_counts(folder):
    for cls in class_dirs(folder):
        os.symlink("..", cls / "up")  # each leads to train/, which holds all three classes: unbounded before
    # The listing takes milliseconds; 300 s only bounds a regression that never ends (torch's import
    # on a loaded 2-core machine takes a few seconds).
    proc = subprocess.run([sys.executable, "-c", UP_LINKS, str(folder)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = json.loads(proc.stdout)
    assert [labels["train"].count(i) for i in range(3)] == [TRAIN] * 3
    assert [labels["val"].count(i) for i in range(3)] == [VAL] * 3
    (note,) = proc.stderr.splitlines()  # the pre-flight check's one line, for train only
    assert note.startswith(f"note: {folder / 'train'}: did not enter 3 folder(s) that loop back"), note


def test_a_link_to_the_data_root_does_not_list_val_under_a_train_class(folder):
    os.symlink("../..", class_dirs(folder)[1] / "root")
    _, samples = scan_split(folder / "train")
    assert per_class(samples) == [TRAIN] * 3
    assert not any("/val/" in path for path in real_files(samples))


def test_a_link_into_another_class_folder_is_not_followed(folder):
    a, b, _ = class_dirs(folder)
    os.symlink(b, a / "also_b")
    dataset = ImageFolder(folder / "train", transform=None)
    assert per_class(dataset.samples) == [TRAIN] * 3  # b's images keep b's label, once
    assert f"{a / 'also_b'} -> {b}" in dataset.note


def test_links_into_another_class_keep_its_images_under_its_label(folder):
    """Listed first, class a must not take b's images by linking to them: a folder inside b, a file of b."""
    a, b, _ = class_dirs(folder)
    (b / "sub").mkdir()
    moved = sorted(b.glob("*.png"))[:2]
    for image in moved:
        image.rename(b / "sub" / image.name)
    os.symlink(b / "sub", a / "b_sub")
    os.symlink(sorted(b.glob("*.png"))[0], a / "zz_b_image.png")
    _, samples = scan_split(folder / "train")
    assert per_class(samples) == [TRAIN] * 3
    labels = {os.path.realpath(path): label for path, label in samples}
    assert all(labels[str(image.parent / "sub" / image.name)] == 1 for image in moved)


def test_two_links_to_one_file_count_it_once(tmp_path, folder):
    """A farm of file links (how some users assemble data sets), with one file linked twice."""
    farm = tmp_path / "farm"
    for cls in class_dirs(folder):
        (farm / "train" / cls.name).mkdir(parents=True)
        for image in cls.iterdir():
            os.symlink(image, farm / "train" / cls.name / image.name)
    a, b, _ = class_dirs(farm)
    twice = next(a.iterdir())
    os.symlink(twice.resolve(), a / "zz_again.png")
    os.symlink(twice.resolve(), b / "zz_from_b.png")
    dataset = ImageFolder(farm / "train", transform=None)
    assert per_class(dataset.samples) == [TRAIN] * 3
    assert "left out 2 path(s) to an image listed elsewhere in the split" in dataset.note


def test_a_hard_link_is_the_same_image(folder):
    a, b, _ = class_dirs(folder)
    os.link(next(a.glob("*.png")), b / "zz_hard_link.png")
    _, samples = scan_split(folder / "train")
    assert per_class(samples) == [TRAIN] * 3


def test_a_class_folder_that_links_to_another_class_is_one_line_error(folder):
    a, b, _ = class_dirs(folder)
    for image in b.iterdir():
        image.unlink()
    b.rmdir()
    os.symlink(a, b)
    with pytest.raises(ConfigError, match=r"holds only images already listed under another class") as err:
        scan_split(folder / "train")
    assert "\n" not in str(err.value)


def test_a_symlink_farm_of_class_folders_is_listed_in_full_without_a_note(tmp_path, folder, capsys):
    """The layout `tokensweep data imagenet100` builds: dest/<split>/<class> -> source/<split>/<class>."""
    dest = tmp_path / "linked"
    for split in ("train", "val"):
        (dest / split).mkdir(parents=True)
        for cls in class_dirs(folder, split):
            os.symlink(cls, dest / split / cls.name, target_is_directory=True)
    assert check_imagefolder(dest) == [c.name for c in class_dirs(folder)]
    train = ImageFolder(dest / "train", transform=None)
    val = ImageFolder(dest / "val", transform=None, classes=train.classes)
    assert (per_class(train.samples), per_class(val.samples)) == ([TRAIN] * 3, [VAL] * 3)
    assert train.note is None and val.note is None and capsys.readouterr().err == ""


def test_a_prepared_copy_plans_each_image_once(folder):
    """`tokensweep data imagenet100 --resize` lists its source with the same walker."""
    os.symlink(".", class_dirs(folder)[0] / "loop")
    classes = [c.name for c in class_dirs(folder)]
    job = plan_split(folder, "train", classes)
    assert Counter(job.labels) == {0: TRAIN, 1: TRAIN, 2: TRAIN}
    assert len(set(job.targets)) == len(job.targets)


def test_only_regular_files_are_images_and_what_was_skipped_is_said(folder, capsys):
    """A FIFO named like an image (opening it waits for a writer forever) and a link to one are left
    out of the listing and the data description, and the split's note names one; a link that leads
    nowhere is still listed, to fail or be skipped as an unreadable image."""
    from trials.data.describe import describe_folder

    before = describe_folder(str(folder))
    train, val = class_dirs(folder)[0], class_dirs(folder, "val")[0]
    os.mkfifo(train / "x.png")
    os.symlink(train / "x.png", val / "to-fifo.png")
    os.symlink(folder / "nowhere.png", val / "dangling.png")

    _, samples = scan_split(folder / "train")
    assert per_class(samples) == [TRAIN] * 3 and str(train / "x.png") not in real_files(samples)
    dataset = ImageFolder(folder / "val", transform=None)
    assert str(val / "to-fifo.png") not in [path for path, _ in dataset.samples]
    assert str(val / "dangling.png") in [path for path, _ in dataset.samples]
    assert dataset.note == (f"{folder / 'val'}: skipped 1 path(s) that are not regular files (e.g. {val / 'to-fifo.png'} "
                            "(a FIFO)): only regular files are read as images")  # fmt: skip
    assert capsys.readouterr().err.splitlines() == [f"note: {dataset.note}"]
    after = describe_folder(str(folder))
    assert after.sizes == {"train": before.sizes["train"], "val": before.sizes["val"]}  # the dangling link: unreadable, not counted
    check_imagefolder(folder)  # the pre-flight check lists the same way, and returns
    assert "(a FIFO)" in capsys.readouterr().err


def test_a_class_whose_only_image_is_a_fifo_holds_no_images(folder):
    fifo_class = folder / "train" / "zz_fifo"
    fifo_class.mkdir()
    os.mkfifo(fifo_class / "x.png")
    with pytest.raises(ConfigError, match=r"zz_fifo holds no images .*skipped 1 that are not regular files, e\.g\. .*x\.png \(a FIFO\)"):
        scan_split(folder / "train")
