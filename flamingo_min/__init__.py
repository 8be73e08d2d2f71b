"""flamingo-min: Flamingo (Alayrac et al., 2022) rebuilt small enough to read, run and change."""
import os

# Idle OpenMP threads spin a little, then sleep. With OpenMP's default (a long spin) two torch processes on a small
# machine, a lesson beside a training run, burn each other's cores: on 2 cores each ran 4 to 16 times slower than
# alone. Sleeping at once (OMP_WAIT_POLICY=PASSIVE) shares as well but slows a run alone; 1,000 rounds keep both
# (docs/performance.md; `python main.py bench`: contention). OpenMP (GNU's, torch's on Linux) reads this once, when
# torch loads it, so it is set before any import of torch here, in toy_data and in main.py, and `make` writes it into
# .venv's start-up for every script (Makefile). A choice already in the environment stands.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from .config import Config, ModelConfig, TrainConfig, make_config
from .flamingo import Flamingo
from .masking import cross_attention_mask, phi

__all__ = ["Config", "ModelConfig", "TrainConfig", "make_config", "Flamingo", "cross_attention_mask", "phi"]
