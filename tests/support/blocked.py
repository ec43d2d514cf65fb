"""A Python environment without the platform's packages, as on the GPU machines that run the device
check (`python -m benchmarks gpu`)."""

import os

import pytest

from helpers import REPO

# What the GPU machines lack (torch, numpy, pillow and nvidia-ml-py are there; timm and pytest may be)
BLOCKED = ("ray", "mlflow", "optuna", "pyarrow", "plotly", "matplotlib", "tqdm", "tokensweep", "dashboards")
SITECUSTOMIZE = f"""
import sys

BLOCKED = {BLOCKED!r}


class HideBlocked:
    # wraps each import finder: the blocked packages look uninstalled (find_spec None, import fails)
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)


sys.meta_path[:] = [HideBlocked(finder) for finder in sys.meta_path]
"""


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory):
    """A PYTHONPATH of the source tree plus a sitecustomize that refuses the blocked packages; it
    applies to every Python process the check starts too (pytest, loader workers, process pools)."""
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CUDA_VISIBLE_DEVICES")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    return env
