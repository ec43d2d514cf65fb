"""The base of every data set whose augmentations draw random numbers: its own generator.

The same seed gives the same draws, so a trial's augmentations are reproducible; DataLoader workers
reseed it with their own seed (loaders.py), so the workers' draws differ.
"""

import torch
from torch.utils.data import Dataset


class SeededDataset(Dataset):
    def __init__(self, seed: int = 0):
        self.rng = torch.Generator().manual_seed(seed)

    def reseed(self, seed: int) -> None:
        self.rng.manual_seed(seed)
