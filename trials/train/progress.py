"""Progress: a live bar with images/sec on a terminal, one plain line per epoch otherwise (logs, Ray).

tqdm is optional: it is imported only for a live bar, and without it a terminal gets the plain
lines too (the GPU machines the device check runs on have torch, not tqdm).
"""

import sys


def _tqdm():
    """tqdm's bar class, or None where tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    def __init__(self, epochs: int, steps_per_epoch: int, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self._bar_class = _tqdm() if enabled and self.stream.isatty() else None
        self.interactive = self._bar_class is not None
        self.epochs, self.steps = epochs, steps_per_epoch
        self._bar = None

    def start_epoch(self, epoch: int) -> None:
        if self.interactive:
            desc = f"epoch {epoch}/{self.epochs}"
            self._bar = self._bar_class(total=self.steps, desc=desc, file=self.stream, leave=False)

    def step(self, loss: float, images_per_sec: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{images_per_sec:,.0f}", refresh=False)
            self._bar.update(1)

    def end_epoch(self, metrics: dict) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled:
            print(
                f"epoch {metrics['epoch']}/{self.epochs}  train_loss {metrics['train_loss']:.4f}  "
                f"val_loss {metrics['val_loss']:.4f}  top1 {metrics['top1']:.2f}  top5 {metrics['top5']:.2f}  "
                f"lr {metrics['lr']:.2e}  {metrics['train_images_per_sec_epoch']:,.0f} img/s  "
                f"{metrics['epoch_time_s']:.1f}s",
                file=self.stream,
                flush=True,
            )
