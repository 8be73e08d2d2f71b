"""Configuration: one dataclass per part, named presets, and `--set key=value` overrides.

Defaults are the CPU values of the `default` preset. A preset is a dict of overrides, keyed "part.field".
"""
import ast
import dataclasses
from dataclasses import dataclass, field

from toy_data import DataConfig


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 128           # LM width; the resampler and gated layers share it
    n_layers: int = 4
    n_heads: int = 4
    context: int = 256           # longest prompt, in tokens (a 16-shot caption prompt is ~140)
    vision_width: int = 64       # Dv
    embed_dim: int = 64          # contrastive space (stage `vision` only)
    latents: int = 8             # R visual tokens per image (64 in the paper)
    resampler_layers: int = 2    # (6 in the paper)
    max_frames: int = 1          # temporal embeddings; our world has still images only
    xattn_every: int = 1         # a gated layer before every LM block, as Flamingo-3B
    xattn_ff_mult: int = 2
    only_immediate: bool = True  # text attends to the immediately preceding image only (paper); False: all previous


@dataclass(frozen=True)
class TrainConfig:
    lm_steps: int = 900
    lm_batch: int = 16           # packed sequences of data.text_len tokens
    lm_lr: float = 3e-3
    vision_steps: int = 500
    vision_batch: int = 128
    vision_lr: float = 2e-3
    flamingo_steps: int = 800
    doc_batch: int = 32          # interleaved documents per update
    pair_batch: int = 32         # image-caption pairs per update
    doc_weight: float = 1.0      # the paper's lambda_m: M3W 1.0, pairs 0.2
    pair_weight: float = 0.2
    flamingo_lr: float = 2e-3
    gate_lr_mult: float = 10.0   # the tanh gates' learning rate over flamingo_lr (see train.setup_flamingo)
    warmup: int = 50
    weight_decay: float = 0.0    # the paper uses 0 for the resampler; we use 0 for every stage
    clip: float = 1.0
    ckpt_every: int = 100
    log_every: int = 10
    eval_episodes: int = 100
    eval_shots: tuple = (0, 1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS = {
    # Tests and classroom demos: every stage and the evaluation in about two minutes on 2 CPU cores.
    "quick": {"train.lm_steps": 150, "train.vision_steps": 80, "train.flamingo_steps": 150,
              "train.eval_episodes": 24, "train.ckpt_every": 50, "train.vision_batch": 64},
    # The reference run: about ten minutes on 2 CPU cores.
    "default": {},
    # One consumer GPU: wider, deeper, longer.
    "large": {"model.d_model": 256, "model.n_layers": 6, "model.n_heads": 8, "model.vision_width": 128,
              "model.latents": 16, "model.resampler_layers": 3, "train.lm_steps": 3000, "train.lm_batch": 64,
              "train.vision_steps": 2000, "train.vision_batch": 256, "train.flamingo_steps": 3000,
              "train.doc_batch": 64, "train.pair_batch": 64, "train.eval_episodes": 300},
}


def _parse(text, current):
    """A --set value, read as the type of the field it replaces."""
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(current, tuple):
        items = [t for t in text.split(",") if t]
        return tuple(type(current[0])(t) if current else ast.literal_eval(t) for t in items)
    return type(current)(text)


def make_config(preset="default", overrides=()):
    """Config from a preset name plus "part.field=value" strings (later ones win)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    pairs = list(PRESETS[preset].items())
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: write it as part.field=value, e.g. train.lm_steps=200")
        key, value = item.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    parts = {"model": {}, "data": {}, "train": {}}
    defaults = Config()
    for key, value in pairs:
        part, _, name = key.partition(".")
        if part not in parts or name not in {f.name for f in dataclasses.fields(getattr(defaults, part))}:
            raise ValueError(f"unknown setting {key!r}: use model.*, data.* or train.* with a field of that dataclass "
                             "(see flamingo_min/config.py and toy_data/documents.py)")
        current = getattr(getattr(defaults, part), name)
        try:
            parts[part][name] = _parse(value, current) if isinstance(value, str) else value
        except ValueError as e:
            raise ValueError(f"--set {key}={value}: {e}") from None
    return Config(ModelConfig(**parts["model"]), DataConfig(**parts["data"]), TrainConfig(**parts["train"]))


def to_dict(cfg):
    return dataclasses.asdict(cfg)


def from_dict(d):
    tup = lambda part: {k: tuple(v) if isinstance(v, list) else v for k, v in d[part].items()}
    return Config(ModelConfig(**tup("model")), DataConfig(**tup("data")), TrainConfig(**tup("train")))
