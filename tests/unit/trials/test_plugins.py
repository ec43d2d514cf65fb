"""Bring your own embedding: a registration in a user's module makes models, flags, spec options,
params and checks; a bad plugin is one line and exit 2 before anything runs."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import REPO, run_cli
from trials import ConfigError, PluginError, TrialConfig, create_model, list_models, load_plugin
from trials.models import BACKBONES, Knob, register_embedding, registered_embeddings

EXAMPLE = REPO / "examples" / "overlap_patch"
CLI = [sys.executable, "-m", "tokensweep.cli"]


@pytest.fixture
def example_plugin(monkeypatch):
    """The example's embedding, registered for one test only (the registry is the process's)."""
    from trials.models import registry

    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setattr(registry, "_EMBEDDINGS", dict(registered_embeddings()))
    monkeypatch.delitem(sys.modules, "overlap_patch", raising=False)
    load_plugin("overlap_patch")
    yield registered_embeddings()["overlap_patch"]
    sys.modules.pop("overlap_patch", None)


def test_a_registration_makes_a_model_on_every_backbone(example_plugin):
    assert {f"vit_{b}_overlap_patch" for b in BACKBONES} <= set(list_models())
    assert [k.name for k in example_plugin.knobs] == ["kernel"] and not example_plugin.builtin
    model = create_model("vit_tiny_overlap_patch", kernel=24)
    assert model.embed.proj.kernel_size == (24, 24) and model.spec.knobs == {"kernel": 24}
    config = TrialConfig.from_dict({"embedding": "overlap_patch", "backbone": "ti", "kernel": 20})
    assert config.model == "vit_ti_overlap_patch" and config.params()["kernel"] == "20"


def test_its_knob_is_checked_against_its_declaration(example_plugin):
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict({"model": "vit_tiny_overlap_patch", "kernel": 40})
    assert str(err.value) == "kernel must be an integer from 16 to 32, got 40 (overlap_patch embedding)"
    assert err.value.key == "kernel"
    with pytest.raises(ConfigError, match="has no option 'kernel'"):
        TrialConfig.from_dict({"model": "vit_tiny_patch", "kernel": 24})


@pytest.mark.parametrize(
    "knob, why",
    [
        (dict(name="Kernel", type=int, default=16), "the name must be lower-case"),
        (dict(name="kernel", type=list, default=16), "type must be one of int, float, bool, str, tuple"),
        (dict(name="kernel", type=int, default=8, low=16, high=32), "its default does not pass its own rule"),
        (dict(name="norm", type=str, default="ln"), "a str knob needs choices"),
        (dict(name="kernel", type=int, default=16, low=32, high=16), "low (32) is greater than high (16)"),
    ],
)
def test_a_bad_knob_declaration_is_one_line(knob, why):
    with pytest.raises(PluginError) as err:
        Knob(**knob)
    assert why in str(err.value)
    assert "\n" not in str(err.value)


def test_a_builder_that_does_not_match_its_knobs_is_refused(monkeypatch):
    from trials.models import registry

    monkeypatch.setattr(registry, "_EMBEDDINGS", dict(registered_embeddings()))
    with pytest.raises(PluginError, match=r"the builder must take \(img_size, dim, \*"):

        @register_embedding(knobs=[Knob("kernel", int, default=16)])
        def wrong_signature(img_size, dim, kernel=16):
            pass

    with pytest.raises(PluginError, match="has default 16, the builder 24"):

        @register_embedding(knobs=[Knob("kernel", int, default=16)])
        def wrong_default(img_size, dim, *, kernel=24):
            pass

    with pytest.raises(PluginError, match="already a trial option"):

        @register_embedding(knobs=[Knob("epochs", int, default=16)])
        def taken(img_size, dim, *, epochs=16):
            pass

    with pytest.raises(PluginError, match="collides with a built-in"):

        @register_embedding()
        def patch(img_size, dim):
            pass

    assert not {"wrong_signature", "wrong_default", "taken"} & set(registered_embeddings())


def _plugin(tmp_path: Path, body: str) -> dict:
    (tmp_path / "bad_embed.py").write_text(textwrap.dedent(body))
    return {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}


GRID_WRONG = """
    from torch import nn
    from trials.plugins import register_embedding

    class Wrong(nn.Module):
        def __init__(self, img_size, dim):
            super().__init__()
            self.grid_size = img_size // 16
            self.proj = nn.Conv2d(3, dim, 8, stride=8)   # an 8x8 grid step: 4x the tokens it should make

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    @register_embedding()
    def wrong_grid(img_size, dim):
        return Wrong(img_size, dim)
"""

WIDTH_WRONG = GRID_WRONG.replace("nn.Conv2d(3, dim, 8, stride=8)", "nn.Conv2d(3, dim // 2, 16, stride=16)").replace(
    "wrong_grid", "wrong_width"
)


@pytest.mark.parametrize(
    "body, sweeps, message",
    [
        ("import not_installed_anywhere\n", None, "plugin 'bad_embed' failed to import: No module named 'not_installed_anywhere'"),
        ("raise RuntimeError('boom')\n", None, "plugin 'bad_embed' failed to import: RuntimeError: boom"),
        ("x = 1\n", None, "plugin 'bad_embed' registered no embedding"),
        ("from trials.plugins import register_embedding\n@register_embedding()\ndef conv(img_size, dim):\n    pass\n",
         None, "embedding 'conv' from bad_embed collides with a built-in"),
        (GRID_WRONG, "wrong_grid", "embedding 'wrong_grid' maps a (1, 3, 32, 32) batch to shape (1, 16, 64); expected (1, 4, 64)"),
        (WIDTH_WRONG, "wrong_width", "embedding 'wrong_width' maps a (1, 3, 32, 32) batch to shape (1, 4, 32); expected (1, 4, 64)"),
    ],
)  # fmt: skip
def test_a_bad_plugin_is_one_line_and_exit_2_before_anything_runs(tmp_path, body, sweeps, message):
    """`params --plugin` for what fails at import; a spec sweeping the embedding for what fails when built."""
    env = _plugin(tmp_path, body)
    if sweeps is None:
        args = ["params", "--plugin", "bad_embed"]
    else:
        spec = tmp_path / "s.toml"
        spec.write_text(f'[sweep]\nname = "p"\nsmoke = true\n[grid]\nembedding = ["patch", "{sweeps}"]\n')
        args = ["run", str(spec), "--plugin", "bad_embed"]  # no --dry-run: it must stop before Ray
    proc = run_cli(args, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    written = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("bad_embed.py", "__pycache__"))
    assert written == ([] if sweeps is None else ["s.toml"])  # no mlflow.db, no ray_results


def test_the_example_plugin_from_the_command_line(tmp_path):
    env = {"PYTHONPATH": str(EXAMPLE), "PATH": "/usr/bin:/bin"}
    help_text = run_cli(["trial", "--plugin", "overlap_patch", "--help"], env=env, cwd=tmp_path).stdout
    assert "knobs of the overlap_patch embedding" in help_text
    assert "patch size; > 16 overlaps (an integer from 16 to 32; default 16)" in " ".join(help_text.split())
    params = run_cli(["params", "--plugin", "overlap_patch"], env=env, cwd=tmp_path)
    assert params.returncode == 0 and "overlap_patch" in params.stdout.split("Embedding parameters by backbone")[1]
    bad = run_cli(["trial", "--plugin", "overlap_patch", "--smoke", "--model", "vit_tiny_overlap_patch", "--kernel", "40"], env=env, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "tokensweep trial: error: kernel must be an integer from 16 to 32, got 40 (overlap_patch embedding)"
    ]


def test_an_installed_plugin_registers_through_its_entry_point(tmp_path):
    """`pip install` the example (no --plugin, no plugins = [...]): its entry point makes it a model."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True, timeout=300)  # fmt: skip
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    proc = run_cli(["trial", "--help"], env=env, cwd=tmp_path)
    assert proc.returncode == 0 and "vit_s_overlap_patch" in proc.stdout and "--kernel" in proc.stdout
