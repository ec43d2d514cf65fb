"""Energy drawn by the GPU over a block, from NVML's total-energy counter (millijoules, Volta+).

None wherever it cannot be measured (CPU, no NVML, an older GPU): a missing figure, never a
made-up one.
"""

import torch


class EnergyMeter:
    def __init__(self, device: torch.device):
        self.device = device
        self.joules: float | None = None
        self._handle = None
        self._start = None

    def __enter__(self) -> "EnergyMeter":
        if self.device.type != "cuda":
            return self
        try:
            import pynvml

            pynvml.nvmlInit()
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._start = pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception:  # no NVML, no permission, or a GPU without the counter
            self._handle = None
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is None:
            return
        import pynvml

        torch.cuda.synchronize(self.device)
        end = pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        self.joules = (end - self._start) / 1000.0
