"""A user's data is never silently replaced: a data path alone means an ImageFolder, a data path beside
generated data is an error, `--smoke` keeps a given path, and `trial` / `run --dry-run` say what they read."""

import argparse
import os
from pathlib import Path

import pytest

from helpers import SWEEPS, run_cli
from tokensweep.cli import main
from tokensweep.errors import SpecError
from tokensweep.spec import load_spec, parse_spec
from trials import TrialConfig
from trials.data import write_imagefolder

VAL_IMAGES = 36  # 4 classes x 9: unlike the generated set's 500, so a top-1 tells which data was evaluated


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    # 128 train images: a full batch for every shipped spec (run's pre-flight refuses fewer)
    return write_imagefolder(tmp_path_factory.mktemp("data") / "shapes", classes=4, train_per_class=32, val_per_class=9)


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv("TOKENSWEEP_DATA", raising=False)


def trial_cli(*args, cpus: set[int] | None = None):
    """`tokensweep trial` in a subprocess, on the CPUs `cpus` (all by default)."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    return run_cli(["trial", *args], preexec_fn=pin)  # in base_env(): without TOKENSWEEP_DATA


# --- tokensweep trial -------------------------------------------------------------------------------


def test_a_data_dir_alone_trains_on_that_imagefolder_and_says_so(folder):
    """The paper's recipe, default loader workers, one CPU: what a user on a small machine types."""
    one_cpu = {min(os.sched_getaffinity(0))}
    result = trial_cli("--model", "vit_tiny_patch", "--data-dir", str(folder), "--epochs", "1", "--batch-size", "8",
                       "--bench-batch", "4", "--bench-steps", "1", cpus=one_cpu)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert (f"tokensweep trial: imagefolder data ({folder}: 4 classes; images: train 128, val {VAL_IMAGES}); "
            "1 epoch, the paper's recipe with batch_size 8") in lines  # fmt: skip
    assert any("the paper's recipe is made for 300 epochs: in 1" in line for line in lines)
    assert "worker processes" not in result.stderr  # PyTorch's warning: more loader workers than CPUs
    top1 = float(result.stdout.rsplit('"top1": ', 1)[1].split(",")[0])
    assert (top1 / 100 * VAL_IMAGES) == pytest.approx(round(top1 / 100 * VAL_IMAGES), abs=1e-6)  # k of 36 images


def test_a_data_dir_beside_generated_data_is_one_line_exit_2(folder):
    result = trial_cli("--dataset", "tiny", "--data-dir", str(folder))
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "but dataset is 'tiny'" in result.stderr
    assert "--dataset imagefolder" in result.stderr


def test_smoke_with_a_data_dir_reads_it(folder):
    from tokensweep.commands.trial import trial_config_from

    config = trial_config_from(argparse.Namespace(smoke=True, config=None, data_dir=str(folder)))
    assert (config.dataset, config.data_dir, config.epochs) == ("imagefolder", str(folder), 6)  # the preset's recipe


# --- tokensweep run: the spec's data ----------------------------------------------------------------------

PLAIN = '[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_patch"\n'


def base_of(spec) -> dict:
    return spec.variants[0].values if spec.search == "grid" else spec.base


@pytest.mark.parametrize("source", ["flag", "spec", "set"])
def test_a_data_path_with_no_dataset_named_is_an_imagefolder(folder, source):
    text = PLAIN + (f'data_dir = "{folder}"\n' if source == "spec" else "")
    overrides = [f'trial.data_dir="{folder}"'] if source == "set" else []
    s = parse_spec(text, "s.toml", overrides, data_dir=str(folder) if source == "flag" else None)
    assert (base_of(s)["dataset"], base_of(s)["data_dir"]) == ("imagefolder", str(folder))


def test_a_data_path_beside_dataset_tiny_is_an_error(folder):
    with pytest.raises(SpecError, match=r"^s\.toml:6: trial\.data_dir '.*' is given, but trial\.dataset is 'tiny'"):
        parse_spec(PLAIN + f'dataset = "tiny"\ndata_dir = "{folder}"\n', "s.toml")
    with pytest.raises(SpecError, match=r"^--data-dir: '.*' is given, but trial\.dataset is 'tiny'"):
        parse_spec(PLAIN + 'dataset = "tiny"\n', "s.toml", data_dir=str(folder))


def test_the_data_variable_serves_only_data_sets_that_need_a_path(folder):
    env = {"TOKENSWEEP_DATA": str(folder)}
    assert base_of(parse_spec(PLAIN, "s.toml", environ=env))["dataset"] == "tiny"
    assert "data_dir" not in base_of(parse_spec(PLAIN, "s.toml", environ=env))
    named = parse_spec(PLAIN + 'dataset = "imagefolder"\n', "s.toml", environ=env)
    assert base_of(named)["data_dir"] == str(folder)


@pytest.mark.parametrize("source", ["flag", "spec", "env", "set"])
def test_smoke_keeps_a_given_data_path(folder, source):
    spec = SWEEPS / "channels-optuna.toml"  # its source: the recipe it extends is found beside it
    text = spec.read_text()
    overrides = ['trial.dataset="imagefolder"']
    if source == "spec":
        text = text.replace("[trial]\n", f'[trial]\ndata_dir = "{folder}"\n')
    if source == "set":
        overrides.append(f'trial.data_dir="{folder}"')
    s = parse_spec(text, str(spec), overrides, smoke=True, data_dir=str(folder) if source == "flag" else None,
                   environ={"TOKENSWEEP_DATA": str(folder)} if source == "env" else {})  # fmt: skip
    assert s.smoke and (s.base["dataset"], s.base["data_dir"], s.base["epochs"]) == ("imagefolder", str(folder), 6)


def test_smoke_without_a_data_path_trains_on_generated_data():
    s = load_spec(SWEEPS / "paper-table6.toml", smoke=True, environ={})
    assert {v.values["dataset"] for v in s.variants} == {"tiny"}
    with pytest.raises(SpecError, match="no data path is set"):  # a data set asked for by name needs its path
        load_spec(SWEEPS / "paper-table6.toml", ['trial.dataset="imagefolder"'], smoke=True, environ={})


def test_dry_run_prints_the_data_the_epochs_and_the_recipe(folder, capsys):
    assert main(["run", str(SWEEPS / "channels-optuna.toml"), "--smoke", "--dry-run", "--data-dir", str(folder),
                 "--set", 'trial.dataset="imagefolder"']) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert (f"data: imagefolder data ({folder}: 4 classes; images: train 128, val {VAL_IMAGES}); 6 epochs, "
            "the smoke recipe (no augmentation or mixing)") in out.splitlines()  # fmt: skip
    assert main(["run", str(SWEEPS / "paper-table6.toml"), "--dry-run", "--data-dir", str(folder),
                 "--set", 'trial.dataset="imagefolder"']) == 0  # fmt: skip
    assert "; 300 epochs, the paper's recipe (made for 300 epochs)" in capsys.readouterr().out


def test_dry_run_lists_a_data_set_once_however_many_trials_read_it(folder, monkeypatch):
    import trials.data.describe as describe
    from tokensweep.commands.run import data_lines

    calls = []
    real = describe.describe_data
    monkeypatch.setattr(describe, "describe_data", lambda config: calls.append(config) or real(config))
    s = parse_spec(PLAIN + '[grid]\nlr = [1e-3, 2e-3, 3e-3]\n', "s.toml", data_dir=str(folder))
    lines = data_lines(s)
    assert len(calls) == 1 and len(lines) == 3  # one listing of the folder; a line per recipe
    assert all(line.startswith(f"imagefolder data ({folder}: 4 classes;") for line in lines)


# --- the recipe and the loader workers ------------------------------------------------------------------


def test_a_few_epochs_of_the_papers_recipe_say_it_is_a_300_epoch_one():
    hint = "the paper's recipe is made for 300 epochs"
    assert any(hint in note for note in TrialConfig(model="vit_tiny_patch", epochs=4).notes())
    assert not any(hint in note for note in TrialConfig(model="vit_tiny_patch", epochs=300).notes())
    assert not any(hint in note for note in TrialConfig.smoke(epochs=4).notes())  # nothing to switch off
    assert TrialConfig(model="vit_tiny_patch", lr=2e-3).recipe() == "the paper's recipe with lr 0.002"


def test_default_loader_workers_fit_the_cpus():
    usable = len(os.sched_getaffinity(0))
    assert TrialConfig().loader_workers == min(4, usable)
    assert TrialConfig(workers=3).loader_workers == 3


def test_a_path_serves_the_variants_that_read_a_folder_beside_generated_data(folder):
    text = PLAIN + 'dataset = "tiny"\n\n[[variants]]\nname = "gen"\n\n[[variants]]\nname = "own"\ndataset = "imagefolder"\n'
    s = parse_spec(text, "mixed.toml", data_dir=str(folder), environ={})
    assert {v.name: v.values["dataset"] for v in s.variants} == {"gen": "tiny", "own": "imagefolder"}
    assert {v.values["data_dir"] for v in s.variants} == {str(folder)}
