"""run_trial end to end on generated tiny data: it learns, reports, checkpoints, resumes exactly."""

import math
import os

import json

import pytest
import torch
from torch import nn

import vocab

from trials import NonFiniteLoss, TrialConfig, run_trial
from trials.data import build_loaders, build_mixer
from trials.train.checkpoint import FILENAME, load_checkpoint
from trials.train.loop import Schedule, train_one_epoch
from trials.train.optim import lr_at, param_groups
from trials.train.progress import Progress

FINAL_KEYS = {"params", "embed_params", "flops", "images_per_sec", "train_images_per_sec", "device", "precision", "torch_version", "threads"}
EPOCH_KEYS = {"epoch", "train_loss", "val_loss", "top1", "top5", "lr", "epoch_time_s"}


@pytest.mark.parametrize("model", ["vit_tiny_patch", "vit_tiny_conv", "vit_tiny_supertoken"])
def test_tiny_trial_learns_above_twice_chance(model):
    reports = []
    metrics = run_trial(TrialConfig.smoke(model=model), report=lambda m, d: reports.append(m), progress=False)
    chance = 100.0 / TrialConfig.smoke().tiny_classes
    assert metrics["top1"] > 2 * chance, metrics
    assert reports[-1]["top1"] > reports[0]["top1"]  # accuracy climbs over the epochs
    assert [r["epoch"] for r in reports] == list(range(1, 7))
    assert all(EPOCH_KEYS <= r.keys() for r in reports)
    assert FINAL_KEYS <= reports[-1].keys() and not FINAL_KEYS & reports[0].keys()
    assert metrics["images_per_sec"] > 0 and metrics["flops"] > 0
    declared = set(vocab.METRICS) | set(vocab.TAGS) | {"epoch"}  # epoch: the step, not a metric
    assert {k for r in reports for k in r} <= declared, "every reported name is declared in vocab"


def quick(**overrides) -> TrialConfig:
    values = dict(model="vit_tiny_supertoken", tiny_train_per_class=20, tiny_val_per_class=10, batch_size=32, measure=False)
    return TrialConfig.smoke(**{**values, **overrides})


class Crash(Exception):
    pass


def test_step_guard_holds_every_step_and_never_a_report():
    """A sweep pauses a trial between steps (the guard); a report (which may bench) runs outside it."""
    import contextlib

    held, entered, steps, reported_held = [0], [0], [], []

    @contextlib.contextmanager
    def guard():
        held[0] += 1
        entered[0] += 1
        try:
            yield
        finally:
            held[0] -= 1

    config = quick(epochs=2, measure=True, bench_steps=2, bench_batch=2, max_steps_per_epoch=3)
    train_loader, val_loader, _ = build_loaders(config, torch.device("cpu"))
    fetches = (min(len(train_loader), 3) + 1) + (len(val_loader) + 1)  # each batch, and the fetch that ends the loop
    run_trial(config, report=lambda m, d: reported_held.append(held[0]), progress=False, step_guard=guard)
    assert reported_held == [0, 0] and held == [0]
    assert entered[0] == 1 + 2 * fetches + 1  # building the data and model, two epochs, the final measurement


def test_resume_after_a_crash_reproduces_the_uninterrupted_run(tmp_path):
    full = []
    run_trial(quick(epochs=3), report=lambda m, d: full.append(m), progress=False)

    def crash_after_epoch_2(metrics, directory):
        assert os.path.isfile(os.path.join(directory, FILENAME))
        if metrics["epoch"] == 2:
            raise Crash

    ckpt = tmp_path / "ckpt"
    with pytest.raises(Crash):
        run_trial(quick(epochs=3), report=crash_after_epoch_2, checkpoint_dir=str(ckpt), progress=False)
    assert load_checkpoint(ckpt)["epoch"] == 2

    resumed = []
    final = run_trial(quick(epochs=3), report=lambda m, d: resumed.append(m), resume_from=str(ckpt),
                      checkpoint_dir=str(ckpt), progress=False)  # fmt: skip
    assert [r["epoch"] for r in resumed] == [3]
    log = [json.loads(line) for line in (ckpt / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in log] == [1, 2, 3]  # one JSON line per epoch, none twice after the resume
    assert log[-1]["top1"] == final["top1"]
    for key in ("train_loss", "val_loss", "top1", "lr"):
        # same seed, same per-epoch shuffle and augmentation streams, same threads: identical up to float noise
        assert math.isclose(final[key], full[-1][key], rel_tol=1e-5, abs_tol=1e-6), key


def test_resume_of_a_finished_trial_returns_its_metrics(tmp_path):
    first = run_trial(quick(epochs=1), checkpoint_dir=str(tmp_path), progress=False)
    again = run_trial(quick(epochs=1), resume_from=str(tmp_path), progress=False)
    assert again == first


def test_last_checkpoint_with_final_measurements_resumes(tmp_path):
    """A trial killed after its last epoch's checkpoint (before its end was recorded) is resumed from it;
    that checkpoint holds the final measurements (device, torch version...) and must load weights_only."""
    first = run_trial(quick(epochs=1, measure=True, bench_batch=4, bench_steps=1), checkpoint_dir=str(tmp_path), progress=False)
    assert FINAL_KEYS <= first.keys()
    again = run_trial(quick(epochs=1, measure=True, bench_batch=4, bench_steps=1), resume_from=str(tmp_path), progress=False)
    assert again == first


def test_resume_refuses_a_different_model(tmp_path):
    run_trial(quick(epochs=1), checkpoint_dir=str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="cluster_iters"):
        run_trial(quick(epochs=2, cluster_iters=1), resume_from=str(tmp_path), progress=False)


def test_checkpoint_holds_only_data(tmp_path):
    run_trial(quick(epochs=1), checkpoint_dir=str(tmp_path), progress=False)
    state = torch.load(tmp_path / FILENAME, weights_only=True)  # would raise on pickled code
    assert {"model", "optimizer", "epoch", "metrics", "config"} <= state.keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILENAME, "log.jsonl"]  # no temp file left behind


class NaNModel(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.classes = classes

    def forward(self, x):
        return torch.full((x.shape[0], self.classes), float("nan")) * self.w


def test_nan_loss_is_detected_and_named():
    config = quick(epochs=1)
    train_loader, _, classes = build_loaders(config)
    model = NaNModel(classes)
    opt = torch.optim.AdamW(model.parameters())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    steps = len(train_loader)
    with pytest.raises(NonFiniteLoss, match="NaN or inf"):
        train_one_epoch(model, train_loader, opt, scaler, build_mixer(config, classes), Schedule(steps, steps, 0),
                        1, config, torch.device("cpu"), "fp32", Progress(1, steps, enabled=False))  # fmt: skip


def test_lr_schedule_warms_up_then_decays_to_min():
    lrs = [lr_at(s, 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)


def test_no_weight_decay_on_norms_biases_pos_embed_and_cls_token():
    from trials import create_model

    model = create_model("vit_tiny_patch")
    decay, no_decay = param_groups(model, 0.05)
    decayed = {id(p) for p in decay["params"]}
    names = {n for n, p in model.named_parameters() if id(p) not in decayed}
    assert {"pos_embed", "cls_token", "head.bias", "norm.weight", "blocks.0.norm1.weight"} <= names
    assert not any(n.endswith(".weight") and p.ndim > 1 for n, p in model.named_parameters() if n in names)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
