"""Small things a new user meets: `tokensweep --version`, `bench` saying where it is, `data imagenet100`
refusing a class folder without images (links or copies) and giving its folder the permissions
`mkdir` would."""

import os
import stat
from importlib.metadata import version

import pytest

from fake_data import fake_imagenet
from helpers import run_cli
from trials.data import imagenet100_wnids



def test_version_is_the_packages():
    result = run_cli(["--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tokensweep {version('tokensweep')}"


def test_bench_says_each_model_and_phase_on_stderr():
    result = run_cli(["bench", "vit_tiny_patch", "vit_tiny_conv", "--batch", "4", "--steps", "1", "--warmup", "1", "--threads", "1"])
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    for i, model in ((1, "vit_tiny_patch"), (2, "vit_tiny_conv")):
        mine = [line for line in lines if line.startswith(f"bench [{i}/2] {model}: ")]
        phases = [line.split(": ", 1)[1] for line in mine]
        assert phases[0] == "building (32 px)"
        assert phases[1] == "timing inference, then training: 1 warm-up + 1 timed steps of batch 4 each"
        assert phases[2] == "counting FLOPs"
        assert phases[3].endswith("img/s training") and "img/s inference" in phases[3]
    assert result.stdout.startswith("model,")  # the CSV stays alone on stdout


@pytest.mark.parametrize("extra", [[], ["--resize", "32"]], ids=["links", "resized"])
def test_an_empty_class_folder_is_an_error_and_nothing_is_written(tmp_path, extra):
    empty = imagenet100_wnids()[42]
    source = fake_imagenet(tmp_path / "in1k", empty_train=empty)
    dest = tmp_path / "in100"
    result = run_cli(["data", "imagenet100", "--source", source, "--dest", dest, *extra, "--processes", "1"])
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert empty in line and "without images" in line, line
    assert not dest.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".in100")]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_imagenet100_folders_get_what_mkdir_gives_like_data_tiny(tmp_path, umask):
    source = fake_imagenet(tmp_path / "in1k")
    links = tmp_path / "in100"
    copy = tmp_path / "in100-32"
    tiny = tmp_path / "tiny"
    for args in (["imagenet100", "--source", source, "--dest", links],
                 ["imagenet100", "--source", source, "--dest", copy, "--resize", "32", "--processes", "1"],
                 ["tiny", "--out", tiny, "--classes", "2", "--train-per-class", "1", "--val-per-class", "1"]):  # fmt: skip
        result = run_cli(["data", *args], preexec_fn=lambda: os.umask(umask))
        assert result.returncode == 0, result.stderr
    expected = 0o777 & ~umask
    for folder in (links, copy, tiny / "train"):
        assert stat.S_IMODE(folder.stat().st_mode) == expected, (folder, oct(folder.stat().st_mode))
    assert "(100 classes" in run_cli(["data", "imagenet100", "--source", source, "--dest", links]).stdout


@pytest.mark.parametrize("command", ["trial", "params", "bench", "data", "run", "export", "dashboard"])
def test_help_prints_percent_signs_as_typed(command, capsys):
    """argparse %-formats help strings but not descriptions: a description's '%%' would print as typed."""
    from tokensweep.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "%%" not in capsys.readouterr().out
