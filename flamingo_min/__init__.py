"""flamingo-min: Flamingo (Alayrac et al., 2022) rebuilt small enough to read, run and change."""
from .config import Config, ModelConfig, TrainConfig, make_config
from .flamingo import Flamingo
from .masking import cross_attention_mask, phi

__all__ = ["Config", "ModelConfig", "TrainConfig", "make_config", "Flamingo", "cross_attention_mask", "phi"]
