"""The spec's schema declared once (model.py's *Section dataclasses) and `extends = "FILE"`."""

import dataclasses
import re
import textwrap

import pytest

from helpers import SWEEPS
from tokensweep.cli import main
from tokensweep.errors import SpecError
from tokensweep.spec import load_spec, parse_spec
from tokensweep.spec.model import SECTION_TYPES, section_default
from trials import TrialConfig

MINIMAL = '[sweep]\nname = "x"\n'
ASHA = '[scheduler]\ntype = "asha"\n'


def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# --- a default, a rule, a key: declared once ------------------------------------------------------


def test_empty_sections_yield_the_dataclass_defaults():
    s = parse_spec(MINIMAL + "[resources]\n[failure]\n[tracking]\n[bench]\n" + ASHA)
    assert s.cpus == section_default("resources", "cpus") and s.gpus is None
    assert (s.max_failures, s.keep_checkpoints) == (section_default("failure", "max_failures"), section_default("failure", "keep_checkpoints"))
    assert s.system_metrics is section_default("tracking", "system_metrics")
    assert s.system_metrics_interval_s == section_default("tracking", "system_metrics_interval_s")
    assert (s.bench, s.bench_batch) == (section_default("bench", "enabled"), section_default("bench", "batch"))
    assert (s.bench_repeats, s.bench_steps) == (section_default("bench", "repeats"), section_default("bench", "steps"))
    assert s.grace_period == section_default("scheduler", "grace_period")
    assert s.reduction_factor == section_default("scheduler", "reduction_factor")
    assert s.max_t == TrialConfig.epochs  # a derived default: the trials' epochs


def test_a_changed_dataclass_default_is_what_the_spec_gets(monkeypatch):
    """The parser reads the default from the field: nothing else holds a copy."""
    field = next(f for f in dataclasses.fields(SECTION_TYPES["failure"]) if f.name == "keep_checkpoints")
    monkeypatch.setattr(field, "default", 5)
    assert parse_spec(MINIMAL).keep_checkpoints == 5


def bounded_fields():
    """(section, key, minimum) of every integer key that needs no other section to be read."""
    for section in ("sweep", "resources", "failure", "bench", "scheduler"):
        for f in dataclasses.fields(SECTION_TYPES[section]):
            if "minimum" in f.metadata:
                yield section, f.name, f.metadata["minimum"]


@pytest.mark.parametrize(("section", "key", "minimum"), list(bounded_fields()))
def test_every_declared_minimum_is_enforced_at_its_key(section, key, minimum):
    table = {"sweep": "", "scheduler": "[scheduler]\ntype = \"asha\"\n"}.get(section, f"[{section}]\n")
    below = minimum - 1
    with pytest.raises(SpecError, match=rf"^s\.toml:\d+: {section}\.{key} must be an integer (from {minimum} to \d+|>= {minimum}), got {below}$"):
        parse_spec(MINIMAL + table + f"{key} = {below}\n", "s.toml")


def test_an_unknown_key_lists_the_dataclass_fields():
    with pytest.raises(SpecError) as err:
        parse_spec(MINIMAL + "[failure]\nmax_failure = 1\n", "s.toml")
    keys = ", ".join(f.name for f in dataclasses.fields(SECTION_TYPES["failure"]))
    assert str(err.value) == f"s.toml:4: failure.max_failure is not a known option of [failure] (did you mean 'max_failures'?); known: {keys}"


# --- extends ---------------------------------------------------------------------------------------

BASE = """\
    [sweep]
    name = "base"
    description = "the base"

    [trial]
    model = "vit_tiny_patch"
    epochs = 2
    lr = 0.01

    [grid]
    embedding = ["patch", "conv", "supertoken"]

    [failure]
    max_failures = 4
    """


def test_extends_merges_tables_key_by_key_and_replaces_arrays(tmp_path):
    write(tmp_path, "base.toml", BASE)
    child = write(tmp_path, "child.toml", """\
        extends = "base.toml"

        [sweep]
        name = "child"

        [trial]
        epochs = 1

        [grid]
        embedding = ["conv"]
        """)
    s = load_spec(child)
    assert (s.name, s.description) == ("child", "the base")
    assert s.base["epochs"] == 1 and s.base["lr"] == 0.01
    assert [v.values["model"] for v in s.variants] == ["vit_tiny_conv"]  # the array replaced, not appended to
    assert s.max_failures == 4 and "extends" not in s.resolved


def test_extends_follows_a_chain_relative_to_each_file(tmp_path):
    (tmp_path / "lib").mkdir()
    write(tmp_path / "lib", "base.toml", BASE)
    write(tmp_path / "lib", "middle.toml", 'extends = "base.toml"\n[trial]\nlr = 0.5\n')
    top = write(tmp_path, "top.toml", 'extends = "lib/middle.toml"\n[sweep]\nname = "top"\n')
    s = load_spec(top)
    assert (s.name, s.base["lr"], s.base["epochs"], len(s.variants)) == ("top", 0.5, 2, 3)


def test_an_error_points_at_the_file_and_line_that_set_the_key(tmp_path):
    write(tmp_path, "base.toml", BASE.replace("max_failures = 4", "max_failures = -1"))
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\n[sweep]\nname = "child"\n')
    with pytest.raises(SpecError, match=rf"^{tmp_path / 'base.toml'}:14: failure\.max_failures must be an integer from 0 to 1000, got -1$"):
        load_spec(child)


@pytest.mark.parametrize(("files", "message"), [
    ({"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'}, r"makes a cycle: .*a\.toml -> .*b\.toml -> .*a\.toml"),
    ({"a.toml": 'extends = "a.toml"\n'}, r"'a\.toml' makes a cycle"),
    ({"a.toml": 'extends = "missing.toml"\n'}, r"'missing\.toml' does not exist or is not a file"),
    ({"a.toml": "extends = 3\n"}, r"must be the path of a spec file, relative to this one"),
])  # fmt: skip
def test_a_cycle_or_a_missing_base_is_one_line_exit_2(files, message, tmp_path, monkeypatch, capsys):
    for name, text in files.items():
        write(tmp_path, name, text)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "a.toml", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(r"tokensweep run: error: [ab]\.toml:1: extends ", err), err
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)  # nothing written


def test_the_paper_specs_share_one_recipe(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
    recipe = {"model": "vit_s_supertoken", "dataset": "imagenet100", "batch_size": 128, "lr": 1e-3,
              "weight_decay": 0.05, "warmup_epochs": 5.0, "workers": 8}  # fmt: skip
    for name, epochs, failures in [("paper-table6", 300, 3), ("paper-table7", 300, 3), ("paper-table8", 300, 3),
                                   ("channels-optuna", 100, 2)]:  # fmt: skip
        assert 'extends = "paper-recipe.toml"' in (SWEEPS / f"{name}.toml").read_text()
        s = load_spec(SWEEPS / f"{name}.toml", data_dir=str(tmp_path), environ={})
        first = s.variants[0].values if s.variants else s.base
        assert {k: first[k] for k in recipe if k != "model"} == {k: v for k, v in recipe.items() if k != "model"}
        assert (first["epochs"], s.cpus, s.gpus, s.max_failures) == (epochs, 8.0, 1, failures)
