"""The device check: everything `trials` does on CUDA, proven in one call.

    PYTHONPATH=. python -m benchmarks gpu                  # on a GPU machine, from the source tree
    PYTHONPATH=. python -m benchmarks gpu --cpu-dry-run    # the same code paths on CPU, tiny (CI runs it)

Needs only torch, numpy, pillow and nvidia-ml-py (timm and pytest are used where installed): nothing
here or in what it imports loads Ray, MLflow, Optuna, pyarrow, plotting, tqdm or the platform.

Parts, in order, with their budgets on one H100/H200 (under 6 minutes in all; a part is stopped at
1.5x its budget and the next one runs):
  1. correctness  70 s   pytest -m gpu; clustering compiled / eager vs a float64 reference in fp32 and
                         bf16 (outputs, gradients, NaN); every vit_s_* model forward + backward in bf16
  2. trial        60 s   run_trial of vit_s_supertoken at 224 px, 2 epochs, bf16, workers + pinned
                         memory, interrupted after epoch 1 and resumed; peak_mem_mb, joules_per_image
  3. speed       150 s   training (b128) and inference (b256) img/s of patch, conv, supertoken iters
                         1-4 and timm's vit_small_patch16_224, interleaved; MFU against a bf16 matmul
                         of the same run; energy per image; clustering fused vs STViT (>= 5x), its
                         share of a training step (<= 3%)
  4. pipeline     45 s   the ImageFolder loader with 4 / 8 / 16 workers, default and --predecode forms,
                         beside the training rate; the fewest workers that feed it

Writes gpu.csv, gpu.json and gpu.md under --out after every part and prints a short table last. Exit
code 1 if any check failed (an error, or a result out of tolerance); a missed speed target is shown
as MISSED, not a failure. The modules: plan.py (sizes, budgets), correctness.py, trial.py, speed.py,
pipeline.py (the parts), report.py (rows, table, files), environment.py.
"""

from benchmarks.gpu.cli import main

__all__ = ["main"]
