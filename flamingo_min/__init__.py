"""flamingo-min: Flamingo (Alayrac et al., 2022) rebuilt small enough to read, run and change.

The core, in reading order: masking, xattn, resampler, bridges, encoder, lm, flamingo (the model); config, batches,
train (the loop), runs, checkpoints, distributed, evaluate (scoring), errors. flamingo_min/lab holds what is built on
it (probes, reports, plots, ablations, benchmarks) and is never imported by it (docs/reference.md: the map).
"""
from .config import Config, ModelConfig, TrainConfig, make_config
from .flamingo import Flamingo
from .masking import cross_attention_mask, phi

__all__ = ["Config", "ModelConfig", "TrainConfig", "make_config", "Flamingo", "cross_attention_mask", "phi"]
