"""Progress output with and without tqdm (the GPU machines have torch but not tqdm)."""

import io
import sys

import pytest

from trials.train.progress import Progress

METRICS = {"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "top1": 50.0, "top5": 90.0, "lr": 1e-3,
           "train_images_per_sec_epoch": 1234.0, "epoch_time_s": 3.0}  # fmt: skip


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_tqdm_a_terminal_gets_the_plain_epoch_lines(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError, as where it is absent
    out = Terminal()
    bar = Progress(2, 5, stream=out)
    assert not bar.interactive
    bar.start_epoch(1)
    bar.step(1.0, 100.0)
    bar.end_epoch(METRICS)
    assert out.getvalue().startswith("epoch 1/2  train_loss 1.0000") and "1,234 img/s" in out.getvalue()


def test_with_tqdm_a_terminal_gets_a_live_bar():
    pytest.importorskip("tqdm")
    out = Terminal()
    bar = Progress(1, 3, stream=out)
    assert bar.interactive
    bar.start_epoch(1)
    for _ in range(3):
        bar.step(1.0, 100.0)
    bar.end_epoch(METRICS)
    # tqdm drew its bar (its refreshes are rate-limited: the postfix may not show yet)
    assert "epoch 1/1:" in out.getvalue() and "0/3 [" in out.getvalue()


def test_a_log_that_is_not_a_terminal_never_loads_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    out = io.StringIO()
    Progress(1, 1, stream=out).end_epoch(METRICS)
    assert "top1 50.00" in out.getvalue()
