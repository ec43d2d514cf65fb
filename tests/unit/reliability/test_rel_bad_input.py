"""Bad input, all in one table: every case is exit code 2, one stderr line, no traceback, nothing written.

Each row runs the real CLI entry point (`tokensweep.cli.main`) in this process, in an empty working
directory, and checks:
- the return code (or argparse's SystemExit) is 2,
- stderr (file descriptor 2, so log output would count too) is exactly one line, naming the problem,
- no "Traceback",
- the working directory is still empty (no mlflow.db, optuna.db, ray_results/) and the inputs are unchanged.
A few rows need a process of their own (a file root may not read; how long an unreachable server takes)
and are at the end. Rows also covered by other tests name them in `also`; docs/reliability.md counts them.
"""

import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import base_env, CLI, free_port, SWEEPS
from rel_helpers import add_bad_files, drop_read_override, image_folder
from tokensweep.cli import main

SMOKE = SWEEPS / "smoke.toml"
DEEP = "[" * 2000 + "]" * 2000  # an array nested 2,000 deep: tomllib's recursion gives out near 500
BEYOND_NUMPY_SEEDS = 2**32  # np.random.seed takes 0 .. 2**32 - 1
TRIAL = ["trial", "--smoke", "--model", "vit_tiny_patch", "--workers", "0", "--batch-size", "4", "--epochs", "1",
         "--bench-steps", "1", "--quiet"]  # fmt: skip
FOLDER = ["--dataset", "imagefolder", "--data-dir"]


@dataclass
class Case:
    category: str
    argv: list  # "{x}" items are filled from the inputs fixture
    fragment: str  # must appear in the one stderr line
    also: str = ""  # another test covering the same input (for the count in docs/reliability.md)
    env: dict = field(default_factory=dict)


SPECS = {  # name -> spec text
    "malformed": '[sweep]\nname = "x"\n[trial\nepochs = 2\n',
    "unknown_section": '[sweep]\nname = "x"\n[resorces]\ncpus = 1\n',
    "unknown_trial_key": '[sweep]\nname = "x"\n[trial]\nepoch = 2\n',
    "unknown_resources_key": '[sweep]\nname = "x"\n[resources]\ncpu = 1\n',
    "unknown_search_key": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\n'
    'objectives = { top1 = "max" }\nsample = 3\n[search.params]\nlr = { low = 1e-4, high = 1e-2 }\n',
    "wrong_type_epochs": '[sweep]\nname = "x"\n[trial]\nepochs = "two"\n',
    "wrong_type_name": "[sweep]\nname = 7\n",
    "wrong_type_grid": '[sweep]\nname = "x"\n[grid]\nconv_depth = 4\n',
    "conv_depth_7": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\nconv_depth = 7\n',
    "cluster_iters_0": '[sweep]\nname = "x"\n[grid]\nembedding = ["supertoken"]\ncluster_iters = [1, 0]\n',
    "channels_five": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\nchannels = [8, 16, 16, 32, 32]\n',
    "channels_search_4096": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\n'
    'objectives = { top1 = "max" }\n[search.params]\n"channels[5]" = { low = 8, high = 4096 }\n',
    "batch_size_0": '[sweep]\nname = "x"\n[trial]\nbatch_size = 0\n',
    "lr_100": '[sweep]\nname = "x"\n[trial]\nlr = 100.0\n',
    "lr_search_negative": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_patch"\n[search]\nalgorithm = "optuna"\n'
    'objectives = { top1 = "max" }\n[search.params]\nlr = { low = -1.0, high = 1e-2 }\n',
    "img_size_100": '[sweep]\nname = "x"\n[trial]\nimg_size = 100\n',
    "empty_grid": '[sweep]\nname = "x"\n[grid]\n',
    "empty_grid_list": '[sweep]\nname = "x"\n[grid]\nconv_depth = []\n',
    "empty_search": '[sweep]\nname = "x"\n[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max" }\n[search.params]\n',
    "empty_range": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\n'
    'objectives = { top1 = "max" }\n[search.params]\n"channels[0]" = { low = 64, high = 8 }\n',
    "empty_choices": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\n'
    'objectives = { top1 = "max" }\n[search.params]\nmask_border = { choices = [] }\n',
    "unknown_model": '[sweep]\nname = "x"\n[grid]\nmodel = ["vit_tiny_patch", "vit_tiny_supertokn"]\n',
    "unknown_embedding": '[sweep]\nname = "x"\n[grid]\nembedding = ["patch", "convv"]\n',
    "code_in_name": "[sweep]\nname = \"__import__('os').system('touch PWNED')\"\n",
    "imagefolder_no_data": '[sweep]\nname = "x"\n[trial]\ndataset = "imagefolder"\n',
    "nested_2000": f'[sweep]\nname = "x"\n[trial]\nepochs = {DEEP}\n',
    "trial_nested_2000": f"[trial]\nepochs = {DEEP}\n",
    "search_seed_2_32": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_patch"\n[search]\nalgorithm = "optuna"\n'
    f'seed = {BEYOND_NUMPY_SEEDS}\nobjectives = {{ top1 = "max" }}\n[search.params]\nlr = {{ low = 1e-4, high = 1e-2 }}\n',
    "search_batch_beyond_split": '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_patch"\ntiny_train_per_class = 5\n'
    '[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max" }\n[search.params]\nbatch_size = { low = 8, high = 60, step = 16 }\n',
    "plugin_exits": '[sweep]\nname = "x"\nplugins = ["p_exit_in_spec"]\n',  # p_exit_in_spec.py beside it: sys.exit(0)
}

CASES = {
    # --- the command line --------------------------------------------------------------------------------
    "cli-unknown-command": Case("CLI", ["runn", "{smoke}"], "invalid choice: 'runn'"),
    "cli-unknown-flag": Case("CLI", ["run", "{smoke}", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    "cli-flag-not-a-number": Case("CLI", TRIAL + ["--lr", "fast"], "invalid float value: 'fast'", also="tests/unit/test_cli.py"),
    "cli-resume-and-fresh": Case("CLI", ["run", "{smoke}", "--resume", "--fresh"], "not allowed with argument", also="tests/unit/platform/test_sweep_spec.py"),
    "cli-num-cpus-0": Case("CLI", ["run", "{smoke}", "--num-cpus", "0"], "--num-cpus must be >= 1"),
    "cli-set-without-value": Case("CLI", ["run", "{smoke}", "--set", "trial.epochs"], "expected KEY=VALUE", also="tests/unit/platform/test_sweep_spec.py"),
    "cli-set-unknown-key": Case("CLI", ["run", "{smoke}", "--set", "trial.epochz=2"], "did you mean 'epochs'", also="tests/unit/platform/test_sweep_spec.py"),
    "cli-set-into-a-value": Case("CLI", ["run", "{smoke}", "--set", "sweep.name.x=1"], "sweep.name is not a table"),
    "cli-set-variants": Case("CLI", ["run", "{smoke}", "--set", "variants.lr=1"], "variants must be an array of tables"),
    "cli-set-code-is-a-string": Case("CLI", ["run", "{smoke}", "--set", "trial.epochs=__import__('os').system('touch PWNED')"], "trial.epochs must be an integer"),
    "cli-tracking-uri-mlruns": Case("CLI", ["run", "{smoke}", "--tracking-uri", "./mlruns"], "MLflow 3 has no ./mlruns", also="tests/unit/platform/test_sweep_spec.py"),
    "cli-tracking-uri-no-dir": Case("CLI", ["run", "{smoke}", "--tracking-uri", "sqlite:////nonexistent/dir/mlflow.db"], "directory '/nonexistent/dir' does not exist"),
    "cli-tracking-server-unreachable": Case("CLI", ["run", "{smoke}", "--tracking-uri", "http://bob:never-logged-pw@127.0.0.1:{closed_port}"], "cannot reach the MLflow tracking server at http://bob:***@127.0.0.1:"),
    "cli-tracking-server-unreachable-env": Case("CLI", ["run", "{smoke}"], "cannot reach the MLflow tracking server", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:{closed_port}"}),
    "cli-storage-is-a-file": Case("CLI", ["run", "{smoke}", "--storage", "{a_file}"], "is a file, not a directory"),
    "cli-resume-missing-sweep": Case("CLI", ["run", "{smoke}", "--set", "sweep.name=never-ran", "--resume"], "--resume: no sweep named 'never-ran'", also="tests/e2e/platform/test_sweep_ray.py"),
    "cli-ray-address-closed": Case("CLI", ["run", "{smoke}", "--address", "127.0.0.1:{closed_port}"], "nothing answers there"),
    "cli-trial-config-malformed": Case("CLI", ["trial", "--config", "{spec:malformed}"], "malformed TOML"),
    "cli-dashboard-no-store": Case("CLI", ["dashboard", "smoke"], "no MLflow store at sqlite:///"),
    "cli-export-unreachable": Case("CLI", ["export", "smoke", "--tracking-uri", "http://127.0.0.1:{closed_port}"], "cannot reach the MLflow tracking server"),
    "cli-seed-beyond-numpy": Case("CLI", TRIAL + ["--seed", str(BEYOND_NUMPY_SEEDS)], "seed must be an integer from 0 to 4294967295"),
    "cli-mixup-inf": Case("CLI", TRIAL + ["--mixup", "inf"], "mixup must be a finite alpha >= 0"),
    "cli-cutmix-inf-mixup-0": Case("CLI", TRIAL + ["--cutmix", "inf", "--mixup", "0"], "cutmix must be a finite alpha >= 0"),
    "cli-set-nested-2000": Case("CLI", ["run", "{smoke}", "--set", f"trial.epochs={DEEP}"], "--set trial.epochs: TOML nested more than 32 levels deep"),
    "cli-trial-config-not-utf8": Case("CLI", ["trial", "--config", "{binary_spec}"], "cannot read"),
    "cli-trial-config-nested-2000": Case("CLI", ["trial", "--config", "{spec:trial_nested_2000}"], "TOML nested more than 32 levels deep"),
    "cli-tracking-uri-query": Case("CLI", ["run", "{smoke}", "--tracking-uri", "sqlite:///{work}/a?b.db"], "'?' starts query arguments in a URI, so MLflow would open"),
    # --- sweep specs ------------------------------------------------------------------------------------------
    "spec-missing-file": Case("spec", ["run", "{work}/missing.toml"], "does not exist or is not a file", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-is-a-directory": Case("spec", ["run", "{data:good}"], "does not exist or is not a file"),
    "spec-not-utf8": Case("spec", ["run", "{binary_spec}"], "cannot read sweep spec"),
    "spec-malformed-toml": Case("spec", ["run", "{spec:malformed}"], ":3: malformed TOML", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-unknown-section": Case("spec", ["run", "{spec:unknown_section}"], "did you mean 'resources'", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-unknown-trial-key": Case("spec", ["run", "{spec:unknown_trial_key}"], "did you mean 'epochs'", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-unknown-resources-key": Case("spec", ["run", "{spec:unknown_resources_key}"], "did you mean 'cpus'"),
    "spec-unknown-search-key": Case("spec", ["run", "{spec:unknown_search_key}"], "did you mean 'num_samples'"),
    "spec-wrong-type-epochs": Case("spec", ["run", "{spec:wrong_type_epochs}"], "trial.epochs must be an integer, got 'two'", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-wrong-type-name": Case("spec", ["run", "{spec:wrong_type_name}"], "sweep.name must be"),
    "spec-wrong-type-grid": Case("spec", ["run", "{spec:wrong_type_grid}"], "grid.conv_depth must be a list"),
    "spec-conv-depth-7": Case("spec", ["run", "{spec:conv_depth_7}"], "conv_depth"),
    "spec-cluster-iters-0": Case("spec", ["run", "{spec:cluster_iters_0}"], "cluster_iters"),
    "spec-channels-five-widths": Case("spec", ["run", "{spec:channels_five}"], "channels must be 6"),
    "spec-channels-search-too-wide": Case("spec", ["run", "{spec:channels_search_4096}"], "from 1 to 1024", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-batch-size-0": Case("spec", ["run", "{spec:batch_size_0}"], "batch_size must be an integer from 1"),
    "spec-lr-too-high": Case("spec", ["run", "{spec:lr_100}"], "lr must be a number in (0, 10]", also="tests/unit/platform/test_sweep_spec.py (lr = -1)"),
    "spec-lr-search-negative": Case("spec", ["run", "{spec:lr_search_negative}"], "lr"),
    "spec-img-size-100": Case("spec", ["run", "{spec:img_size_100}"], "multiple of 16"),
    "spec-empty-grid": Case("spec", ["run", "{spec:empty_grid}"], "grid is empty", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-empty-grid-list": Case("spec", ["run", "{spec:empty_grid_list}"], "empty search space", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-empty-search-space": Case("spec", ["run", "{spec:empty_search}"], "the search space is empty", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-empty-range": Case("spec", ["run", "{spec:empty_range}"], "low (64) is greater than high (8)", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-empty-choices": Case("spec", ["run", "{spec:empty_choices}"], "must be a non-empty list (empty search space)"),
    "spec-unknown-model": Case("spec", ["run", "{spec:unknown_model}"], "did you mean 'vit_tiny_supertoken'", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-unknown-embedding": Case("spec", ["run", "{spec:unknown_embedding}"], "did you mean 'conv'", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-code-is-data": Case("spec", ["run", "{spec:code_in_name}"], "sweep.name must be"),
    "spec-cpus-more-than-num-cpus": Case("spec", ["run", "{smoke}", "--set", "resources.cpus=3", "--num-cpus", "2"], "resources.cpus = 3 per trial, but the local Ray has 2 CPU(s) (--num-cpus): no trial could ever start"),
    "spec-cpus-more-than-this-machine": Case("spec", ["run", "{smoke}", "--set", "resources.cpus=1000"], "CPU(s) (this machine's count): no trial could ever start"),
    "spec-gpus-more-than-num-gpus": Case("spec", ["run", "{smoke}", "--set", "resources.gpus=5", "--num-gpus", "4"], "resources.gpus = 5 per trial, but the local Ray has 4 GPU(s) (--num-gpus): no trial could ever start; lower resources.gpus"),
    "spec-imagefolder-without-data": Case("spec", ["run", "{spec:imagefolder_no_data}"], "no data path is set", also="tests/unit/platform/test_sweep_spec.py"),
    "spec-seed-beyond-numpy": Case("spec", ["run", "{smoke}", "--set", f"trial.seed={BEYOND_NUMPY_SEEDS}"], "trial.seed must be an integer from 0 to 4294967295"),
    "spec-seeds-beyond-numpy": Case("spec", ["run", "{smoke}", "--set", f"sweep.seeds=[0, {BEYOND_NUMPY_SEEDS}]"], "sweep.seeds must be a non-empty list of distinct integers from 0 to 4294967295"),
    "spec-search-seed-beyond-numpy": Case("spec", ["run", "{spec:search_seed_2_32}"], "search.seed must be an integer from 0 to 4294967295"),
    "spec-mixup-inf": Case("spec", ["run", "{smoke}", "--set", "trial.mixup=inf"], "trial.mixup must be a finite alpha >= 0"),
    "spec-nested-2000": Case("spec", ["run", "{spec:nested_2000}"], "nested_2000.toml: TOML nested more than 32 levels deep"),
    "spec-plugin-exits": Case("spec", ["run", "{spec:plugin_exits}"], "plugin 'p_exit_in_spec' exited while being imported (sys.exit(0))"),
    # --- the MLflow store -----------------------------------------------------------------------------------------
    "store-not-a-database": Case("store", ["run", "{smoke}", "--tracking-uri", "sqlite:///{random_db}"], "is not an SQLite database (it starts with"),
    "store-is-a-directory": Case("store", ["run", "{smoke}", "--tracking-uri", "sqlite:///{work}"], "is not a file"),
    # the file MLflow opens is the URI's path decoded once (random db#1.db): the checks look at that one
    "store-escaped-path-not-a-database": Case("store", ["run", "{smoke}", "--tracking-uri", "sqlite:///{random_db_escaped}"], "random db#1.db is not an SQLite database"),
    # --- data ---------------------------------------------------------------------------------------------------
    "data-dir-missing": Case("data", ["run", "{smoke}", "--data-dir", "{work}/nope"], "does not exist", also="tests/unit/platform/test_sweep_spec.py"),
    "data-dir-is-a-file": Case("data", ["run", "{smoke}", "--data-dir", "{a_file}"], "does not exist or is not a directory"),
    "data-dir-without-val": Case("data", ["run", "{smoke}", "--set", 'trial.dataset="imagefolder"', "--data-dir", "{data:no_val}"], "has no val/ folder"),
    "data-no-class-folders": Case("data", ["run", "{smoke}", "--set", 'trial.dataset="imagefolder"', "--data-dir", "{data:no_classes}"], "holds no class folders"),
    "data-empty-class-sweep": Case("data", ["run", "{smoke}", "--set", 'trial.dataset="imagefolder"', "--data-dir", "{data:empty_class}"], "holds no images"),
    "data-empty-class-trial": Case("data", TRIAL + FOLDER + ["{data:empty_class}"], "holds no images", also="tests/unit/test_cli.py"),
    "data-val-class-not-in-train": Case("data", ["run", "{smoke}", "--set", 'trial.dataset="imagefolder"', "--data-dir", "{data:val_extra}"], "class folder(s) the train split lacks", also="tests/unit/trials/test_data.py"),
    "data-one-class": Case("data", TRIAL + FOLDER + ["{data:one_class}"], "a classifier needs >= 2"),
    "data-imagenet100-wrong-classes": Case("data", ["run", "{smoke}", "--set", 'trial.dataset="imagenet100"', "--data-dir", "{data:good}"], "not the 100 ImageNet-100 classes", also="tests/unit/trials/test_data.py"),
    "data-truncated-image": Case("data", TRIAL + FOLDER + ["{data:truncated}"], "zz_truncated.png", also="tests/unit/trials/test_data.py"),
    "data-not-an-image": Case("data", TRIAL + FOLDER + ["{data:not_image}"], "zz_notes.jpg", also="tests/unit/trials/test_data.py"),
    "data-batch-larger-than-split": Case("data", TRIAL + FOLDER + ["{data:good}", "--batch-size", "64"], "fewer than batch_size=64", also="tests/unit/trials/test_data.py"),
    "data-batch-larger-than-split-sweep": Case("data", ["run", "{smoke}", "--set", 'trial.dataset="imagefolder"', "--data-dir", "{data:good}", "--set", "trial.batch_size=64"], "the train split has 24 images, fewer than batch_size=64"),
    "data-batch-larger-than-generated-split": Case("data", ["run", "{smoke}", "--set", "trial.tiny_train_per_class=3"], "the generated train split has 30 images, fewer than batch_size=64"),
    # 10 classes x 5 images; the search's largest batch is 56 (8 + 3 steps of 16), not its high
    "data-search-batch-larger-than-split": Case("data", ["run", "{spec:search_batch_beyond_split}"], "the generated train split has 50 images, fewer than batch_size=56"),
    "data-class-of-only-a-fifo": Case("data", TRIAL + FOLDER + ["{data:fifo_class}"], "zz_fifo/x.png (a FIFO)"),
    # --- checkpoints (trial --resume) -----------------------------------------------------------------------
    "ckpt-missing": Case("checkpoint", TRIAL + ["--resume", "{work}/no-ckpt"], "no checkpoint", also="tests/unit/test_cli.py"),
    "ckpt-truncated": Case("checkpoint", TRIAL + ["--resume", "{ckpt:truncated}"], "is unreadable (truncated or not a checkpoint)"),
    "ckpt-pickled-code": Case("checkpoint", TRIAL + ["--resume", "{ckpt:evil}"], "refusing checkpoint"),
}


class Evil:
    """Unpickling this runs a command (os.system): a checkpoint must never be loaded that way."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    data = root / "data"
    good = image_folder(data / "good")
    folders = {"good": good}
    for name in ("truncated", "not_image", "empty_class", "val_extra", "no_val"):
        folders[name] = Path(shutil.copytree(good, data / name, symlinks=True))
    bad = add_bad_files(folders["truncated"], "train")
    bad[1].unlink()
    bad = add_bad_files(folders["not_image"], "train")
    bad[0].unlink()
    (folders["empty_class"] / "train" / "zz_empty").mkdir()
    (folders["empty_class"] / "train" / "zz_empty" / "notes.txt").write_text("no image here")
    extra = folders["val_extra"] / "val" / "zz_extra"
    extra.mkdir()
    (extra / "a.png").write_bytes(next((good / "val").rglob("*.png")).read_bytes())
    shutil.rmtree(folders["no_val"] / "val")
    folders["no_classes"] = data / "no_classes"
    (folders["no_classes"] / "train").mkdir(parents=True)
    (folders["no_classes"] / "val").mkdir()
    folders["fifo_class"] = Path(shutil.copytree(good, data / "fifo_class"))
    (folders["fifo_class"] / "train" / "zz_fifo").mkdir()
    os.mkfifo(folders["fifo_class"] / "train" / "zz_fifo" / "x.png")  # opened as an image, it would wait forever
    folders["one_class"] = image_folder(data / "one_class", classes=2, train=8, val=2)
    shutil.rmtree(sorted((folders["one_class"] / "train").iterdir())[1])
    shutil.rmtree(sorted((folders["one_class"] / "val").iterdir())[1])

    specs = root / "specs"
    specs.mkdir()
    for name, text in SPECS.items():
        (specs / f"{name}.toml").write_text(text)
    (specs / "p_exit_in_spec.py").write_text("import sys\n\nsys.exit(0)\n")
    binary = specs / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00[sweep]\x00\x9c")
    a_file = root / "a-file.txt"
    a_file.write_text("not a directory")
    random_db = root / "random.db"
    random_db.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))  # what a stray file holds
    shutil.copy(random_db, root / "random db#1.db")

    import torch

    ckpts = root / "ckpt"
    marker = root / "PWNED-by-checkpoint"
    (ckpts / "evil").mkdir(parents=True)
    torch.save({"epoch": 1, "model": Evil(marker)}, ckpts / "evil" / "checkpoint.pt")
    (ckpts / "truncated").mkdir()
    torch.save({"epoch": 1, "model": {"w": torch.zeros(1000)}}, ckpts / "truncated" / "checkpoint.pt")
    full = (ckpts / "truncated" / "checkpoint.pt").read_bytes()
    (ckpts / "truncated" / "checkpoint.pt").write_bytes(full[: len(full) // 2])
    return dict(
        root=root, data=folders, specs=specs, binary_spec=binary, a_file=a_file, ckpts=ckpts, marker=marker, random_db=random_db,
        random_db_escaped=f"{root}/random%20db%231.db", closed_port=free_port(),
    )  # fmt: skip


def snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def fill(item: str, inputs: dict, work: Path) -> str:
    if item.startswith("{spec:"):
        return str(inputs["specs"] / f"{item[6:-1]}.toml")
    if item.startswith("{data:"):
        return str(inputs["data"][item[6:-1]])
    if item.startswith("{ckpt:"):
        return str(inputs["ckpts"] / item[6:-1])
    return item.format(smoke=SMOKE, work=work, a_file=inputs["a_file"], binary_spec=inputs["binary_spec"], closed_port=inputs["closed_port"],
                       random_db=inputs["random_db"], random_db_escaped=inputs["random_db_escaped"])  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(name, inputs, tmp_path, monkeypatch, capfd):
    case = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for var in ("MLFLOW_TRACKING_URI", "TOKENSWEEP_DATA", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in case.env.items():
        monkeypatch.setenv(var, fill(value, inputs, work))
    # what `tokensweep run` sets in its own process before Ray: restored after the test
    for var, default in (
        ("RAY_AUTH_MODE", "token"), ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"),
        ("TUNE_GLOBAL_CHECKPOINT_S", "2"), ("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0"),
        ("TUNE_DISABLE_SIGINT_HANDLER", "1"),
    ):  # fmt: skip
        monkeypatch.setenv(var, os.environ.get(var, default))
    before = snapshot(inputs["root"])
    argv = [fill(a, inputs, work) for a in case.argv]
    import ray

    def no_ray(*args, **kwargs):  # bad input must be caught before Ray starts (not in this process, ever)
        raise AssertionError(f"{name}: bad input reached ray.init")

    monkeypatch.setattr(ray, "init", no_ray)

    started = time.monotonic()
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse
        rc = exit_.code
    elapsed = time.monotonic() - started
    out, err = capfd.readouterr()

    assert rc == 2, (rc, out[-2000:], err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err + out
    assert case.fragment in lines[0], lines[0]
    assert lines[0].startswith("tokensweep"), lines[0]
    assert "never-logged-pw" not in err + out  # a password in a URI never reaches the terminal
    assert list(work.iterdir()) == []  # no mlflow.db, optuna.db, ray_results/, dashboard/
    assert snapshot(inputs["root"]) == before
    assert not inputs["marker"].exists() and not (work / "PWNED").exists()  # no input was ever run as code
    assert elapsed < 30, f"{name} took {elapsed:.1f}s"


def test_table_counts_at_least_25_distinct_bad_inputs():
    assert len(CASES) >= 25
    assert {c.category for c in CASES.values()} == {"CLI", "spec", "store", "data", "checkpoint"}
    assert len({tuple(c.argv) + tuple(c.env.items()) for c in CASES.values()}) == len(CASES)


# --- in a process of its own ------------------------------------------------------------------------------------


def _run(args, cwd, prefix=(), timeout=120, **env):
    return subprocess.run(
        [*prefix, *CLI, *map(str, args)], cwd=cwd, env=base_env(**env), capture_output=True, text=True, timeout=timeout
    )


def _assert_one_line(proc, fragment):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", ["run", "trial"])
def test_unreadable_data_directory(command, inputs, tmp_path):
    """chmod 000 on the data root. As root, chmod does not stop reads: the child runs without the
    capabilities that let root read anything (setpriv --bounding-set -dac_override,-dac_read_search)."""
    prefix = drop_read_override()
    if prefix is None:
        pytest.skip("running as root and no setpriv to drop CAP_DAC_OVERRIDE: chmod 000 cannot stop root reading")
    locked = Path(shutil.copytree(inputs["data"]["good"], tmp_path / "locked"))
    work = tmp_path / "work"
    work.mkdir()
    args = ["run", SMOKE, "--set", 'trial.dataset="imagefolder"'] if command == "run" else TRIAL + ["--dataset", "imagefolder"]
    locked.chmod(0)
    try:
        proc = _run(args + ["--data-dir", locked], work, prefix)
    finally:
        locked.chmod(0o755)
    _assert_one_line(proc, "permission denied")
    assert list(work.iterdir()) == []


def test_unreachable_tracking_server_fails_in_seconds_not_minutes(inputs, tmp_path):
    """A real `tokensweep run` process against a closed port: one line, exit 2, before Ray starts."""
    started = time.monotonic()
    proc = _run(["run", SMOKE, "--tracking-uri", f"http://127.0.0.1:{inputs['closed_port']}"], tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    _assert_one_line(proc, f"cannot reach the MLflow tracking server at http://127.0.0.1:{inputs['closed_port']}")
    assert elapsed < 20, elapsed  # MLflow alone would retry for ~4 minutes
    assert list(tmp_path.iterdir()) == []


def test_a_fifo_named_like_an_image_is_skipped_and_said_not_waited_on(inputs, tmp_path):
    """`tokensweep trial` (in a process of its own: the old listing hung on it) and `run --dry-run`
    finish on a data set with a FIFO `x.png` among the images; each says it skipped it."""
    data = Path(shutil.copytree(inputs["data"]["good"], tmp_path / "data"))
    fifo = sorted((data / "train").iterdir())[0] / "x.png"
    os.mkfifo(fifo)
    work = tmp_path / "work"
    work.mkdir()
    proc = _run(TRIAL + FOLDER + [data], work, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"skipped 1 path(s) that are not regular files (e.g. {fifo} (a FIFO))" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _run(["run", SMOKE, "--set", 'trial.dataset="imagefolder"', "--set", "trial.batch_size=4", "--data-dir", data, "--dry-run"],
                work, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"(e.g. {fifo} (a FIFO))" in proc.stderr


@pytest.mark.parametrize("name, code", [("p_exit", "0"), ("p_exit_3", "3"), ("p_exit_bye", "'bye'")])
def test_a_plugin_that_exits_at_import_is_an_error_naming_it(name, code, tmp_path, monkeypatch, capfd):
    """`--plugin p_exit` whose import calls sys.exit: exit 0 printed nothing and ran no sweep (a CI job
    would pass). Any exit code is now one line naming the plugin, exit 2."""
    (tmp_path / f"{name}.py").write_text(f"import sys\n\nsys.exit({code})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(["run", str(SMOKE), "--plugin", name, "--dry-run"])
    except SystemExit as exit_:
        rc = f"SystemExit({exit_.code!r})"
    out, err = capfd.readouterr()
    assert rc == 2, (rc, out, err)
    assert err.strip().splitlines() == [f"tokensweep: error: plugin {name!r} exited while being imported (sys.exit({code})); "
                                        "a plugin module must only define and register embeddings"]  # fmt: skip
    assert out == ""


def test_the_dashboard_server_answers_a_path_no_file_can_have_with_400_and_one_line(tmp_path, capfd):
    """A NUL byte (or a lone surrogate) in a request's path: the server answered nothing and printed
    a 20-line `ValueError: embedded null byte` traceback per request. Now 400, one stderr line each, and
    it goes on serving."""
    import urllib.error
    import urllib.request

    from tokensweep.commands.dashboard import start_server

    (tmp_path / "pareto.html").write_text("<p>front</p>")
    server = start_server(tmp_path, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    bad = ["/%00", "/pareto.html%00.txt", "/%ED%A0%80.html"]
    try:
        for path in bad:
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(base + path, timeout=10)
            assert answer.value.code == 400, path
        with urllib.request.urlopen(base + "/pareto.html", timeout=10) as ok:
            assert ok.read() == b"<p>front</p>"
    finally:
        server.shutdown()
        server.server_close()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert [line.split(": ")[0] for line in err.strip().splitlines()] == ["dashboard server"] * len(bad)
    assert all(f"400 for {path!r}" in line for path, line in zip(bad, err.strip().splitlines()))
