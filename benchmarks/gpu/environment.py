"""The machine the check ran on: the device, the software, and what torch.compile and NVML need."""

import importlib.metadata
import os
import platform
import shutil

import torch

from benchmarks.gpu.report import load_average
from trials.measure import device_name


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def c_compiler() -> str | None:
    """The name of the C compiler Triton would use (CC, else cc, gcc or clang), None if there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return os.path.basename(name)
    return None


def nvml_facts(device: torch.device) -> dict:
    """Driver version and whether the total-energy counter reads (what joules_per_image needs)."""
    if device.type != "cuda":
        return {}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        driver = pynvml.nvmlSystemGetDriverVersion()
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return {"driver": driver.decode() if isinstance(driver, bytes) else driver, "nvml_energy": True}
    except Exception as err:  # no nvidia-ml-py, no permission, a GPU without the counter
        return {"nvml_energy": False, "nvml_error": f"{type(err).__name__}: {err}"[:200]}


def environment(device: torch.device) -> dict:
    env = {
        "device": device_name(device),
        "device_type": device.type,
        "torch_version": str(torch.__version__),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": load_average(),
        # torch.compile on CUDA: Triton generates the kernels and builds its launcher with a C compiler
        "triton_version": package_version("triton"),
        "c_compiler": c_compiler(),
        "timm_version": package_version("timm"),
        "pytest_version": package_version("pytest"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["compute_capability"] = f"{props.major}.{props.minor}"
        env.update(nvml_facts(device))
    return env
