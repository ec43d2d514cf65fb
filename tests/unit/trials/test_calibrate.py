"""The calibration a sweep's plan is built from (trials.measure.calibrate): torch only, on the trial's own data."""

import pytest

from trials import TrialConfig
from trials.measure.calibrate import Calibration, calibrate


def test_a_calibration_times_the_trials_steps_and_its_loader_on_its_own_data():
    config = TrialConfig.smoke(model="vit_tiny_supertoken", threads=1, tiny_train_per_class=20, tiny_val_per_class=5)
    c = calibrate(config)
    assert c.device.startswith("cpu") and (c.batch, c.precision, c.threads, c.workers) == (64, "fp32", 1, 0)
    assert (c.train_images, c.val_images) == (200, 50)  # 10 classes x 20 and x 5
    for rate in (c.train_images_per_sec, c.eval_images_per_sec, c.loader_images_per_sec):
        assert rate > 0
    assert c.eval_images_per_sec > c.train_images_per_sec  # no backward, no optimizer
    assert c.setup_s > 0 and c.measure_s > 0
    assert Calibration.from_dict(c.to_dict()) == c


def test_an_epoch_is_its_full_batches_at_the_step_time_then_validation():
    c = Calibration("cpu: x", 64, "fp32", 1, 0, 640.0, 1000.0, 6400.0, 1.0, 2.0, train_images=700, val_images=500)
    step = 64 / 640 + 64 / 6400  # loading in the trial's own process adds to the step
    assert c.epoch_s(64) == pytest.approx(10 * step + 0.5)  # 700 images: 10 full batches
    assert c.epoch_s(64, max_steps=3) == pytest.approx(3 * step + 0.5)
