"""`benchmarks` lives at the repository root and is not installed: make it importable under any runner."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
