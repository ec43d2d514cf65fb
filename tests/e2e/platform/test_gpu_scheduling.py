"""GPU trials scheduled by a real Ray, on a machine without a GPU.

A Ray head that declares four logical GPUs (`ray start --num-gpus 4`, shared by the module's sweeps): Ray schedules and
assigns them (CUDA_VISIBLE_DEVICES per worker) exactly as it would real ones, while the trials, finding
no CUDA, train on the CPU. What is checked is scheduling and recording, not GPU speed: with
`gpus = 1` every trial holds a GPU of its own, recorded on its run; with `gpus = 0.5` two trials share
one and the runs and the dashboard say the in-trial throughput was measured on a shared GPU;
`gpus = "auto"` gives each trial one. (A trial asking more GPUs than `--num-gpus` gives a local Ray is refused
before Ray starts: tests/unit/reliability/test_rel_bad_input.py.) The bench stage is off: it would measure on
CUDA, which is not here.
"""


import pytest

from helpers import run_cli
from sweep_helpers import RayHead, sweep_runs


SPEC = """
[sweep]
name = "{name}"

[trial]
model = "vit_tiny_patch"
dataset = "tiny"
epochs = 1
max_steps_per_epoch = 1
tiny_train_per_class = 4
tiny_val_per_class = 2
batch_size = 20
warmup_epochs = 0.0
mixup = 0.0
cutmix = 0.0
randaugment = false
random_erasing = 0.0
workers = 0
bench_batch = 4
bench_steps = 1

[bench]
enabled = false

[resources]
cpus = 1
gpus = {gpus}

[tracking]
system_metrics = false
"""


def sweep(tmp_path, env, name: str, gpus: str, variants: int, address: str, extra=()):
    """The sweep on the head at ADDRESS."""
    text = SPEC.format(name=name, gpus=gpus) + "".join(f'\n[[variants]]\nname = "v{i}"\nseed = {i}\n' for i in range(variants))
    spec = tmp_path / f"{name}.toml"
    spec.write_text(text)
    return run_cli(["run", spec, "--address", address, *extra], cwd=tmp_path, env=env, timeout=600, check_rc=0)


def devices(tmp_path, name: str) -> dict[str, str]:
    _, children = sweep_runs(tmp_path / "mlflow.db", name)
    assert all(c.info.status == "FINISHED" for c in children), [c.info.status for c in children]
    return {c.info.run_name: c.data.tags.get("cuda_visible_devices") for c in children}


# An embedding that, built in a worker holding a GPU, waits until trials on four different GPUs have
# built theirs: the sweep finishes only if Ray ran four GPU trials at once (tiny trials would otherwise
# end before the last one starts, and a GPU could be reused); the driver, holding none, never waits.
BARRIER_PLUGIN = """
import os, pathlib, time
from trials.plugins import register_embedding
from trials.models.builtin import patch

@register_embedding()
def barrier(img_size, dim):
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus:
        here = pathlib.Path(os.environ["GPU_BARRIER_DIR"])
        (here / gpus).touch()
        deadline = time.time() + 300
        while len(list(here.iterdir())) < 4:
            if time.time() > deadline:
                raise RuntimeError(f"GPUs {sorted(p.name for p in here.iterdir())} only: not four trials at once")
            time.sleep(0.2)
    return patch(img_size, dim)
"""


@pytest.fixture(scope="module")
def gpu_head(tmp_path_factory, ray_token_env):
    """A head of 4 CPUs and 4 GPUs whose workers import the barrier plugin (a cluster's plugins are installed
    on its nodes) and share one barrier folder."""
    here = tmp_path_factory.mktemp("gpu-head")
    (here / "gpu_barrier.py").write_text(BARRIER_PLUGIN)
    (here / "barrier").mkdir()
    env = {**ray_token_env, "PYTHONPATH": str(here), "GPU_BARRIER_DIR": str(here / "barrier")}
    head = RayHead(env, num_cpus=4, num_gpus=4)
    yield head
    head.stop()


def test_one_gpu_per_trial_four_at_once_each_its_own(tmp_path, gpu_head):
    sweep(tmp_path, gpu_head.env, "gpu1", "1", variants=4, address=gpu_head.address,
          extra=["--plugin", "gpu_barrier", "--set", 'trial.model="vit_tiny_barrier"'])  # fmt: skip
    held = devices(tmp_path, "gpu1")
    assert sorted(held.values()) == ["0", "1", "2", "3"], held  # four at once, each its own GPU, each recorded


def test_half_a_gpu_each_is_recorded_as_shared_and_the_dashboard_says_so(tmp_path, gpu_head):
    sweep(tmp_path, gpu_head.env, "gpuhalf", "0.5", variants=2, address=gpu_head.address)
    held = devices(tmp_path, "gpuhalf")
    assert all(v in {"0", "1", "2", "3"} for v in held.values()), held  # one GPU's id each, shared with another trial
    _, children = sweep_runs(tmp_path / "mlflow.db", "gpuhalf")
    assert {c.data.tags.get("gpu_shared") for c in children} == {"true"}
    run_cli(["dashboard", "gpuhalf"], cwd=tmp_path, env=gpu_head.env, timeout=300, check_rc=0)
    page = (tmp_path / "dashboard" / "gpuhalf" / "pareto.html").read_text()
    assert "(some throughputs measured on a shared GPU)" in page  # under the chart, where the figure is named


def test_auto_gives_each_trial_one_gpu(tmp_path, gpu_head):
    sweep(tmp_path, gpu_head.env, "gpuauto", '"auto"', variants=2, address=gpu_head.address)
    held = devices(tmp_path, "gpuauto")
    assert len(set(held.values())) == 2 and all(v in {"0", "1", "2", "3"} for v in held.values()), held
