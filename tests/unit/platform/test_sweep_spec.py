"""Sweep specs: the shipped ones parse; every bad spec or flag is one line, exit 2, nothing written."""

import subprocess
import sys
import textwrap

import pytest

from helpers import REPO, SWEEPS, base_env, run_cli
from tokensweep.cli import main
from tokensweep.errors import SpecError
from tokensweep.spec import key_lines, load_spec, parse_spec, parse_value
from tokensweep.payload import apply_search_values

SMOKE = SWEEPS / "smoke.toml"


def spec(text: str, **kw):
    return parse_spec(textwrap.dedent(text), "s.toml", **kw)


# --- the shipped specs ------------------------------------------------------------------------------


def test_smoke_spec_covers_all_embeddings_in_at_least_four_trials():
    s = load_spec(SMOKE)
    assert s.search == "grid" and s.name == "smoke"
    assert len(s.variants) >= 4
    models = {v.values["model"] for v in s.variants}
    assert models == {"vit_tiny_patch", "vit_tiny_conv", "vit_tiny_supertoken"}
    assert all(v.values["dataset"] == "tiny" for v in s.variants)
    # cluster_iters is a supertoken knob: dropped from the patch and conv trials, not an error
    assert all("cluster_iters" not in v.values for v in s.variants if not v.values["model"].endswith("supertoken"))
    assert len({v.name for v in s.variants}) == len(s.variants)


@pytest.mark.parametrize("name", ["paper-table6", "paper-table7", "paper-table8", "channels-optuna"])
def test_paper_specs_need_a_data_path(name, tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENSWEEP_DATA", raising=False)
    with pytest.raises(SpecError, match=r"^--data-dir: data path '.*' has no train/ folder"):
        load_spec(SWEEPS / f"{name}.toml", data_dir=str(tmp_path))
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(SpecError, match=r"no data path is set: pass --data-dir DIR or set \$TOKENSWEEP_DATA"):
        load_spec(SWEEPS / f"{name}.toml")
    s = load_spec(SWEEPS / f"{name}.toml", data_dir=str(tmp_path))
    base = s.base if s.search == "optuna" else s.variants[0].values
    assert base["dataset"] == "imagenet100" and base["data_dir"] == str(tmp_path)
    assert base["batch_size"] == 128
    assert base["epochs"] == (300 if name.startswith("paper") else 100)
    # the env var works too
    monkeypatch.setenv("TOKENSWEEP_DATA", str(tmp_path))
    assert load_spec(SWEEPS / f"{name}.toml").name == name


def test_paper_tables_grids(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    t6 = load_spec(SWEEPS / "paper-table6.toml", data_dir=str(tmp_path))
    assert [v.values["model"] for v in t6.variants] == ["vit_s_patch", "vit_s_conv", "vit_s_supertoken"]
    t7 = load_spec(SWEEPS / "paper-table7.toml", data_dir=str(tmp_path))
    depths = [(v.values["conv_depth"], v.values.get("extra_conv", False)) for v in t7.variants]
    assert depths == [(0, False), (1, False), (2, False), (4, False), (6, False), (6, True)]
    t8 = load_spec(SWEEPS / "paper-table8.toml", data_dir=str(tmp_path))
    assert [v.values["cluster_iters"] for v in t8.variants] == [1, 2, 3, 4]
    assert t8.gpus == 1.0 and not t8.gpu_shared


def test_channels_optuna_spec(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    s = load_spec(SWEEPS / "channels-optuna.toml", data_dir=str(tmp_path))
    assert s.search == "optuna"
    assert s.objectives == (("top1", "max"), ("images_per_sec", "max"))
    assert [p.key for p in s.params] == [f"channels[{i}]" for i in range(6)]
    assert all(p.kind == "int" and p.step for p in s.params)
    values = apply_search_values(s.base, {f"channels[{i}]": 8 * (i + 1) for i in range(6)})
    assert values["channels"] == [8, 16, 24, 32, 40, 48]


# --- semantics ------------------------------------------------------------------------------------------


def test_set_overrides_parse_as_toml_and_fall_back_to_strings():
    assert parse_value("2") == 2 and parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value("[8, 16]") == [8, 16] and parse_value('"x"') == "x"
    assert parse_value("vit_tiny_patch") == "vit_tiny_patch"
    s = load_spec(SMOKE, ["trial.epochs=1", "sweep.name=other", "resources.cpus=0.5"])
    assert s.name == "other" and all(v.values["epochs"] == 1 for v in s.variants)
    assert s.variants[0].values.get("threads") is None  # < 1 CPU: torch decides


def test_grid_drops_supertoken_knobs_for_other_embeddings_and_merges_duplicates():
    s = spec(
        """
        [sweep]
        name = "x"
        [trial]
        model = "vit_tiny_patch"
        [grid]
        embedding = ["patch", "supertoken"]
        conv_depth = [2, 4]
        """
    )
    assert [v.name for v in s.variants] == ["vit_tiny_patch", "vit_tiny_supertoken-conv_depth=2", "vit_tiny_supertoken-conv_depth=4"]


def test_fractional_gpu_marks_trials_shared():
    s = spec('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_patch"\n[resources]\ngpus = 0.5\ncpus = 2\n')
    values = s.variants[0].values
    assert values["gpu_shared"] is True and values["threads"] == 2


def test_key_lines():
    lines = key_lines('[sweep]\nname = "x"\n\n[trial]\n# c\nepochs = 2\n[[variants]]\nlr = 1\n[[variants]]\nlr = 2\n')
    assert lines["sweep.name"] == 2 and lines["trial.epochs"] == 6
    assert lines["variants[0].lr"] == 8 and lines["variants[1].lr"] == 10


# --- bad specs -------------------------------------------------------------------------------------------

BAD = {
    "malformed": ('[sweep]\nname = "x"\n[trial\nepochs = 2\n', r"^s\.toml:3: malformed TOML"),
    "no-name": ('[sweep]\ndescription = "d"\n', r"^s\.toml:1: sweep \[sweep\] name is required"),
    "unknown-section": ('[sweep]\nname = "x"\n[resorces]\ncpus = 1\n', r"^s\.toml:3: resorces is not a known section \(did you mean 'resources'\?\)"),
    "unknown-trial-key": ('[sweep]\nname = "x"\n[trial]\nepoch = 2\n', r"^s\.toml:4: trial\.epoch is not a trial option \(did you mean 'epochs'\?\)"),
    "wrong-type": ('[sweep]\nname = "x"\n[trial]\nepochs = "two"\n', r"^s\.toml:4: trial\.epochs must be an integer, got 'two'"),
    "out-of-range": ('[sweep]\nname = "x"\n[trial]\nlr = -1\n', r"^s\.toml:4: trial\.lr must be a number in \(0, 10\]"),
    "unknown-model": ('[sweep]\nname = "x"\n[grid]\nmodel = ["vit_tiny_patch", "vit_tiny_supertokn"]\n', r"^s\.toml:4: grid\.model unknown model 'vit_tiny_supertokn' \(did you mean 'vit_tiny_supertoken'\?\)"),
    "unknown-embedding": ('[sweep]\nname = "x"\n[grid]\nembedding = ["patch", "convv"]\n', r"^s\.toml:4: grid\.embedding unknown embedding 'convv' \(did you mean 'conv'\?\)"),
    "empty-grid-list": ('[sweep]\nname = "x"\n[grid]\nconv_depth = []\n', r"^s\.toml:4: grid\.conv_depth is an empty list \(empty search space\)"),
    "empty-grid": ('[sweep]\nname = "x"\n[grid]\n', r"^s\.toml:3: grid is empty"),
    "empty-search": ('[sweep]\nname = "x"\n[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max" }\n[search.params]\n', r"^s\.toml:6: search\.params has no params: the search space is empty"),
    "empty-range": ('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max" }\n[search.params]\n"channels[0]" = { low = 64, high = 8 }\n', r"^s\.toml:9: search\.params\.channels\[0\] low \(64\) is greater than high \(8\): empty search space"),
    "bad-objective": ('[sweep]\nname = "x"\n[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max", img_per_sec = "max" }\n[search.params]\nlr = { low = 1e-4, high = 1e-2, log = true }\n', r"^s\.toml:5: search\.objectives\.img_per_sec unknown metric"),
    "objective-the-sweep-adds": ('[sweep]\nname = "x"\n[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max", search_images_per_sec = "max" }\n[search.params]\nlr = { low = 1e-4, high = 1e-2, log = true }\n', r"^s\.toml:5: search\.objectives\.search_images_per_sec unknown metric 'search_images_per_sec' \(did you mean 'images_per_sec'\?\)"),
    "channel-out-of-range": ('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max" }\n[search.params]\n"channels[5]" = { low = 8, high = 4096 }\n', r"^s\.toml:9: search\.params\.channels\[5\] channels must be 6 integers from 1 to 1024"),
    "knob-without-supertoken": ('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_conv"\nconv_depth = 2\n', r"^s\.toml:5: trial\.conv_depth applies only to supertoken models"),
    "grid-and-search": ('[sweep]\nname = "x"\n[grid]\nseed = [1]\n[search]\nalgorithm = "optuna"\n', r"^s\.toml:5: search a sweep has either"),
    "bad-gpus": ('[sweep]\nname = "x"\n[resources]\ngpus = -1\n', r'^s\.toml:4: resources\.gpus must be a number >= 0 or "auto"'),
    "asha-multi-objective": ('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_supertoken"\n[search]\nalgorithm = "optuna"\nobjectives = { top1 = "max", images_per_sec = "max" }\n[search.params]\n"channels[0]" = { low = 8, high = 16 }\n[scheduler]\ntype = "asha"\n', r"^s\.toml:11: scheduler\.type asha cannot be combined with a multi-objective optuna search"),
    "bad-sweep-name": ('[sweep]\nname = "my sweep"\n', r"^s\.toml:2: sweep\.name must be"),
    "cuda-without-gpu": ('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_patch"\ndevice = "cuda"\n[resources]\ngpus = 0\n', r"^s\.toml:7: resources\.gpus is 0, but trial\.device = \"cuda\""),
    "dataset-without-data": ('[sweep]\nname = "x"\n[trial]\ndataset = "imagenet100"\n', r"^s\.toml:4: trial\.dataset is 'imagenet100' but no data path is set"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_is_one_line_naming_key_and_line(case, monkeypatch):
    monkeypatch.delenv("TOKENSWEEP_DATA", raising=False)
    text, pattern = BAD[case]
    with pytest.raises(SpecError, match=pattern) as info:
        parse_spec(text, "s.toml")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["--set", "trial.epochz=2"], r"^--set trial\.epochz=2: trial\.epochz is not a trial option \(did you mean 'epochs'\?\)"),
        (["--set", "trial.epochs=0"], r"^--set trial\.epochs=0: trial\.epochs must be an integer from 1 to 10000"),
        (["--set", "trial.epochs"], r"^--set 'trial\.epochs': expected KEY=VALUE"),
        (["--set", "grid.model=[\"vit_x\"]"], r"unknown model 'vit_x'"),
        (["--data-dir", "/nonexistent/imagenet100"], r"^--data-dir: data path '/nonexistent/imagenet100' does not exist"),
    ],
)
def test_bad_overrides(argv, pattern):
    overrides = [argv[i + 1] for i in range(0, len(argv), 2) if argv[i] == "--set"]
    data_dir = argv[1] if argv[0] == "--data-dir" else None
    with pytest.raises(SpecError, match=pattern):
        load_spec(SMOKE, overrides, data_dir=data_dir)


# --- the CLI: exit 2, one line, nothing written, Ray never imported ---------------------------------------


def test_cli_rejects_bad_input_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nname = "x"\n[trial]\nmodel = "vit_tiny_pach"\n')
    cases = [
        [str(bad)],
        [str(tmp_path / "missing.toml")],
        [str(SMOKE), "--set", "trial.epochs=-1"],
        [str(SMOKE), "--data-dir", str(tmp_path / "nope")],
        [str(SMOKE), "--tracking-uri", "./mlruns"],
        [str(SMOKE), "--resume", "--fresh"],
    ]
    for argv in cases:
        with pytest.raises(SystemExit) if "--fresh" in argv else _nullcontext():
            rc = main(["run", *argv])
            assert rc == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("tokensweep run: error:") or "not allowed with argument" in err, err
        assert len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # no mlflow.db, no ray_results


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_cli_subprocess_bad_spec_exit_2_without_ray_mlflow_or_optuna(tmp_path):
    """A real `tokensweep run` process: exit code 2, one stderr line, and no Ray/MLflow/Optuna import."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nname = "x"\n[grid]\nembedding = ["patch", "supertokn"]\n')
    code = (
        "import sys\n"
        "from tokensweep.cli import main\n"
        f"rc = main(['run', {str(bad)!r}])\n"
        "heavy = sorted(m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=base_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"tokensweep run: error: {bad}:4: grid.embedding unknown embedding 'supertokn' (did you mean 'supertoken'?); "
        "choose one of: patch, conv, supertoken"
    ]
    assert "HEAVY []" in proc.stdout
    # and through the console script
    proc = run_cli(["run", bad], tmp_path, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_dry_run_lists_trials(tmp_path, capsys):
    assert main(["run", str(SMOKE), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "vit_tiny_patch" in out and "vit_tiny_supertoken-cluster_iters=3" in out


def test_repo_root_constant():
    assert (REPO / "pyproject.toml").is_file()
