"""A calibration: how fast one architecture trained, evaluated and loaded on one device (trials.measure.calibrate
measures it), and the step and epoch times a sweep's plan derives from it. Plain Python: a plan read from a file
or the cache loads no torch."""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Calibration:
    device: str  # the device model (trials.measure.env.device_name)
    batch: int
    precision: str
    threads: int
    workers: int
    train_images_per_sec: float  # compute only: forward, backward, optimizer
    eval_images_per_sec: float
    loader_images_per_sec: float
    setup_s: float  # data and model built
    measure_s: float  # the final measurement (0 when the trial measures nothing)
    train_images: int  # this machine's train split (a plan may count another's)
    val_images: int

    def step_s(self, batch: int) -> float:
        """Seconds per training step of `batch` images, loading included."""
        compute, load = batch / self.train_images_per_sec, batch / self.loader_images_per_sec
        return max(compute, load) if self.workers > 0 else compute + load

    def epoch_s(self, batch: int, max_steps: int | None = None) -> float:
        """One epoch of this machine's data set: its full training batches (or `max_steps`), then validation."""
        steps = min(self.train_images // batch, max_steps or self.train_images)
        return steps * self.step_s(batch) + self.val_images / self.eval_images_per_sec

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})
