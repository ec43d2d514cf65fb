"""The `tokensweep` CLI as a user runs it: a real subprocess, real exit codes, real output."""

import csv
import io
import json

import pytest

from helpers import run_cli



def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def empty_data_dir(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--model", "vit_s_pacth"], ["unknown model 'vit_s_pacth'", "vit_s_patch"]),
        (["--conv-depth", "7"], ["conv_depth", "0 to 6", "7"]),
        (["--cluster-iters", "0"], ["cluster_iters", "got 0"]),
        (["--channels", "16,32,32,64,64"], ["channels must be 6", "16,32,32,64,64,64"]),
        (["--img-size", "100"], ["img_size", "multiple of 16", "100"]),
        (["--dataset", "imagefolder", "--data-dir", "/no/such/dir"], ["data_dir", "/no/such/dir", "does not exist"]),
        (["--lr", "fast"], ["--lr", "invalid float value: 'fast'"]),
        (["--batch-size", "0"], ["batch_size", "got 0"]),
        (["--dataset", "cifar"], ["dataset must be one of tiny, imagefolder, imagenet100"]),
        (["--resume", "/no/such/ckpt"], ["no checkpoint", "/no/such/ckpt"]),
    ],
)
def test_trial_bad_input_is_one_line_exit_2(args, fragments):
    assert_one_line_error(run_cli(["trial", "--smoke", *args]), *fragments)


def test_trial_data_dir_without_images(empty_data_dir):
    result = run_cli(["trial", "--smoke", "--dataset", "imagefolder", "--data-dir", str(empty_data_dir), "--workers", "0"])
    assert_one_line_error(result, "cat", "no image")


def test_trial_unknown_key_in_config_file(tmp_path):
    config = tmp_path / "trial.toml"
    config.write_text("[trial]\nepoch = 3\n")
    assert_one_line_error(run_cli(["trial", "--config", str(config)]), "epoch", "did you mean 'epochs'")


def test_trial_prints_progress_and_ends_with_one_json_line(tmp_path):
    out = tmp_path / "final.json"
    result = run_cli(["trial", "--smoke", "--epochs", "1", "--tiny-train-per-class", "20", "--tiny-val-per-class", "5", "--batch-size", "32", "--bench-steps", "1", "--out", str(out)])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stderr  # one plain line per epoch when not a terminal
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["model"] == "vit_tiny_supertoken" and last["epoch"] == 1
    assert last["params"] > 0 and last["images_per_sec"] > 0 and last["device"].startswith("cpu")
    assert json.loads(out.read_text()) == last


def test_params_prints_the_paper_beside_measured_counts():
    result = run_cli(["params"])
    assert result.returncode == 0, result.stderr
    assert "297,600" in result.stdout and "1,021,488" in result.stdout and "131,920" in result.stdout
    assert "0.30M" in result.stdout and "1.00M" in result.stdout and "0.09M" in result.stdout


def test_bench_writes_a_csv_in_the_vocabularys_names():
    result = run_cli(["bench", "vit_tiny_patch", "vit_tiny_supertoken", "--batch", "4", "--steps", "2", "--warmup", "1", "--threads", "1"])
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["model"] for r in rows] == ["vit_tiny_patch", "vit_tiny_supertoken"]
    for row in rows:
        assert float(row["images_per_sec"]) > 0 and float(row["train_images_per_sec"]) > 0
        assert int(row["params"]) > int(row["embed_params"]) > 0 and float(row["flops"]) > 0
        assert row["threads"] == "1" and row["precision"] == "fp32" and row["torch_version"].startswith("2.13")


def test_bench_unknown_model():
    assert_one_line_error(run_cli(["bench", "vit_huge"]), "unknown model 'vit_huge'")


def test_help_everywhere():
    for command in ([], ["trial"], ["params"], ["bench"], ["data"]):
        result = run_cli([*command, "--help"])
        assert result.returncode == 0 and "usage: tokensweep" in result.stdout, command
