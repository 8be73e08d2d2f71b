"""Configuration: one dataclass per part, named presets, and `--set key=value` overrides.

Defaults are the CPU values of the `default` preset. A preset is a dict of overrides, keyed "part.field". Every field
declares its allowed values beside its default (toy_data/settings.py); a Config is checked whole when it is built,
so a bad setting stops with one message that names it, before any work starts.

A setting is a field here only while a preset, an ablation, a lesson, a test or a documented experiment sets it; a value
nothing changes is a named constant beside the code that reads it (train.py: the encoder's and the bridge's learning
rates, weight decay, clipping; flamingo.py: FF_MULT; toy_data/shapes.py: IMAGE_SIZE, NOISE, COLOUR_JITTER;
toy_data/documents.py: MAX_LEN, VIDEO_MAX_CLIPS).
"""
import dataclasses
import difflib
from dataclasses import dataclass, field

from toy_data import TOKENIZER, DataConfig
from toy_data.documents import LONGEST_CHUNK, MAX_LEN
from toy_data.formats import LONGEST as LONGEST_FORMAT
from toy_data.settings import check, choice, describe, knob
from toy_data.tasks import SHOTS, check_shots, shot_count

from .errors import ConfigError


def _fixed(value):
    """A field set by the vocabulary, recorded in configs and checkpoints, never set by hand."""
    return field(default=value, metadata={"fixed": True})


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = knob(128, lo=8)          # LM width; the resampler and gated layers share it
    n_layers: int = knob(4, lo=1)
    n_heads: int = knob(4, lo=1)
    context: int = knob(256, lo=16)         # longest prompt, in tokens (a 16-shot caption prompt is ~140)
    vision_width: int = knob(64, lo=16)     # Dv
    embed_dim: int = knob(64, lo=1)         # contrastive space (stage `vision` only)
    # The bridge: read by the flamingo stage alone (stage="flamingo"), so the pretrained stages' checkpoints serve any
    # value of these (`python main.py ablate` trains one bridge per variant on one LM and one encoder).
    latents: int = knob(8, lo=1, stage="flamingo")          # R visual tokens per image (64 in the paper)
    resampler_layers: int = knob(2, lo=1, stage="flamingo")  # (6 in the paper)
    max_frames: int = knob(1, lo=1, stage="flamingo")       # temporal embeddings: 1 for stills; the video preset 4
    # What turns features into visual tokens: the Perceiver Resampler (R tokens), or one of the simpler bridges of
    # the paper's Table 3 (bridges.py): a per-feature MLP or a plain transformer (all S features), a mean (1 token).
    resampler: str = choice("perceiver", ("perceiver", "mlp", "transformer", "mean"), stage="flamingo")
    xattn_every: int = knob(1, lo=1, stage="flamingo")      # a gated layer before every LM block, as Flamingo-3B
    xattn_offset: int = knob(0, lo=0, stage="flamingo")     # ... before blocks offset, offset + every, ...
    # gated: tanh(alpha) gates (paper); ungated: the same layer added as a plain residual; vanilla: cross-attention
    # alone, ungated, with no feed-forward of its own (the original Transformer decoder's; xattn.py).
    xattn_block: str = choice("gated", ("gated", "ungated", "vanilla"), stage="flamingo")
    only_immediate: bool = knob(True, stage="flamingo")      # text attends to the immediately preceding image only
    # The vocabulary (toy_data/vocab.py): its size, and the special tokens the model treats specially.
    vocab_size: int = _fixed(len(TOKENIZER))
    pad_id: int = _fixed(TOKENIZER.pad_id)
    bos_id: int = _fixed(TOKENIZER.bos_id)
    image_id: int = _fixed(TOKENIZER.image_id)
    eoc_id: int = _fixed(TOKENIZER.eoc_id)
    sep_id: int = _fixed(TOKENIZER.ids["."])  # the LM's end of an example; <EOC> starts as its embedding

    def __post_init__(self):
        check(self, "model")
        moved = [f"model.{f.name}={getattr(self, f.name)} (now {f.default})" for f in dataclasses.fields(self)
                 if f.metadata.get("fixed") and getattr(self, f.name) != f.default]
        if moved:   # a checkpoint of an older vocabulary: its token ids mean other words today
            raise ValueError(f"made with another vocabulary ({', '.join(moved)}; toy_data/vocab.py has "
                             f"{len(TOKENIZER)} words): its token ids name other words now, so retrain it")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 4:
            raise ValueError(f"model.n_heads={self.n_heads} with model.d_model={self.d_model}: each head's width "
                             "(d_model / n_heads) must be a whole multiple of 4 (rotary positions rotate pairs in "
                             "half of it), e.g. d_model=128 with n_heads=4")
        if self.vision_width % 16:
            raise ValueError(f"model.vision_width={self.vision_width}: give a multiple of 16 (the encoder's group "
                             "norms split its channels into 8 groups at half that width)")
        if self.xattn_every > self.n_layers:
            raise ValueError(f"model.xattn_every={self.xattn_every} exceeds model.n_layers={self.n_layers}: "
                             "there would be no block to insert a gated layer before")
        if self.xattn_offset >= min(self.xattn_every, self.n_layers):
            raise ValueError(f"model.xattn_offset={self.xattn_offset}: give a block index below model.xattn_every="
                             f"{self.xattn_every} and model.n_layers={self.n_layers} (one layer in the middle of 4 "
                             "blocks: xattn_every=4, xattn_offset=2)")

    def xattn_blocks(self):
        """The LM blocks that get a cross-attention layer before them."""
        return [i for i in range(self.n_layers) if i % self.xattn_every == self.xattn_offset]


@dataclass(frozen=True)
class TrainConfig:
    # The LM's copying appears suddenly, at 600-800 steps on most seeds, on some later; its lookup goes on sharpening
    # for thousands of steps after, which the bridges over it inherit unevenly (docs/incontext.md, "Steps").
    lm_steps: int = knob(900, lo=1, stage="lm")
    lm_batch: int = knob(16, lo=1, stage="lm")          # packed sequences of data.text_len tokens
    lm_lr: float = knob(3e-3, lo=1e-6, hi=1, stage="lm")
    vision_steps: int = knob(800, lo=1, stage="vision")  # 500: a seed in 3 read held-out shapes badly (docs/recipe.md)
    vision_batch: int = knob(128, lo=8, stage="vision")  # a multiple of 4: a quarter pairs, a quarter twins, ...
    # The minimal-pair twins and colourless pairs of the vision stage's batches (train.py); false: random pairs only.
    vision_hard_pairs: bool = knob(True, stage="vision")
    flamingo_steps: int = knob(1200, lo=1, stage="flamingo")
    doc_batch: int = knob(32, lo=1, stage="flamingo")   # interleaved documents per update
    pair_batch: int = knob(32, lo=1, stage="flamingo")  # image-caption pairs per update
    video_batch: int = knob(16, lo=1, stage="flamingo")  # clip samples per update (toy_data/documents.py: VideoStream)
    doc_weight: float = knob(1.0, lo=0, stage="flamingo")  # the paper's lambda_m: M3W 1.0, pairs 0.2; 0 leaves one out
    pair_weight: float = knob(0.2, lo=0, stage="flamingo")
    # The paper weighs its video-text pairs 0.03, beside 27M of them; our toy stream has to teach every event word's
    # visual meaning in a few hundred updates, so the video preset weighs it as the documents (our choice). 0: no clips.
    video_weight: float = knob(0.0, lo=0, stage="flamingo")
    # accumulate: every update sums each dataset's weighted loss (paper); round_robin: one dataset per update, in turn.
    mixing: str = choice("accumulate", ("accumulate", "round_robin"), stage="flamingo")
    # frozen: the pretrained LM, frozen (paper); finetune: the pretrained LM trained with the bridge; scratch: a
    # freshly initialised LM trained with the bridge (no `lm` stage).
    lm_mode: str = choice("frozen", ("frozen", "finetune", "scratch"), stage="flamingo")
    # pretrained: the contrastive `vision` stage's encoder (paper); random: the same CNN frozen at initialisation.
    vision_mode: str = choice("pretrained", ("pretrained", "random"), stage="flamingo")
    warmup: int = knob(50, lo=0)
    # The paper keeps the bridge's learning rate constant after warm-up, over runs far longer than ours. Ending our
    # 1200 steps on the pretraining stages' short cosine cool-down steadies the bridge across seeds
    # (docs/recipe.md); false gives the paper's schedule.
    flamingo_cool_down: bool = knob(True, stage="flamingo")
    # A curriculum for binding: over this fraction of the bridge's steps, the chance that a binding image redraws
    # everything but its bound attribute rises from 0 (one look per label: any feature matches, so binding starts)
    # to data.bind_redraw (concept binding, as evaluated). Over five seeds it narrows binding's spread at 4 shots
    # from 0.18 to 0.06 (docs/recipe.md); 0 redraws at data.bind_redraw from the first step.
    redraw_ramp: float = knob(0.5, 0, 1, stage="flamingo")
    # torch.compile of the repeated blocks (train.compile_blocks): the same numbers within float tolerance. Off by
    # default: on a 2-core CPU it does not pay for its compile time within one run (docs/performance.md).
    # reduce-overhead adds CUDA graphs, for a GPU step bound by kernel launches. Not part of a checkpoint's identity:
    # a run may resume with another value.
    compile: str = choice("off", ("off", "default", "reduce-overhead"), runtime=True)
    # Processes that draw the coming steps' batches while this one trains (batches.batches); -1: none on the CPU, up to
    # 6 beside a GPU. The same batches whatever the number. Not part of a checkpoint's identity.
    data_workers: int = knob(-1, lo=-1, runtime=True)
    ckpt_every: int = knob(100, lo=1)
    log_every: int = knob(10, lo=1)
    eval_episodes: int = knob(200, lo=1)
    eval_shots: tuple = SHOTS                # "none" (the query alone), "0" (two text examples), "1", "2", ...

    def __post_init__(self):
        check(self, "train")
        if self.vision_batch % 4:
            raise ValueError(f"train.vision_batch={self.vision_batch}: give a multiple of 4 (a quarter pairs, a "
                             "quarter their twins, half colourless pairs)")
        if self.doc_weight == self.pair_weight == self.video_weight == 0:
            raise ValueError("train.doc_weight, train.pair_weight and train.video_weight are all 0: nothing would "
                             "train the bridge")
        try:
            check_shots(self.eval_shots)
        except ValueError as e:
            raise ValueError(f"train.eval_shots={','.join(map(str, self.eval_shots))}: {e}") from None


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        model_cfg, data_cfg = self.model, self.data
        if data_cfg.text_len > model_cfg.context:
            raise ValueError(f"data.text_len={data_cfg.text_len} exceeds model.context={model_cfg.context}: raise "
                             "model.context or lower data.text_len")
        if MAX_LEN > model_cfg.context:
            raise ValueError(f"model.context={model_cfg.context} is shorter than a document or a pair ({MAX_LEN} "
                             f"tokens, padding included: toy_data/documents.py): give at least {MAX_LEN}")
        if self.train.video_weight > 0 and model_cfg.max_frames < data_cfg.clip_frames:
            raise ValueError(f"train.video_weight={self.train.video_weight} trains on clips of data.clip_frames="
                             f"{data_cfg.clip_frames} frames but model.max_frames={model_cfg.max_frames} gives only "
                             f"that many temporal embeddings: set model.max_frames={data_cfg.clip_frames} (or use "
                             "--preset video)")
        most = max(shot_count(s) for s in check_shots(self.train.eval_shots))
        need = 1 + (most + 1) * PROMPT_CHUNK
        if need > model_cfg.context:
            raise ValueError(f"train.eval_shots asks for {most}-shot prompts of up to {need} tokens but "
                             f"model.context={model_cfg.context}: use at most {fitting_shots(model_cfg.context)} "
                             "shots or raise model.context")


PROMPT_CHUNK = max(LONGEST_CHUNK, LONGEST_FORMAT)   # the longest chunk of any evaluation prompt


def fitting_shots(context):
    """The most shots whose prompts always fit a context of this many tokens."""
    return (context - 1) // PROMPT_CHUNK - 1


PRESETS = {
    # Tests and classroom demos: every stage and the evaluation, too short to learn (its time: docs/performance.md).
    "quick": {"train.lm_steps": 150, "train.vision_steps": 80, "train.flamingo_steps": 150,
              "train.eval_episodes": 24, "train.ckpt_every": 50, "train.vision_batch": 64},
    # The reference run (its scores: docs/results.md; its time: docs/performance.md).
    "default": {},
    # Stills and clips (toy_data/clips.py): the default recipe plus a video stream in the bridge's mixture, clip
    # captions in the LM's text, and the video tasks in the evaluation.
    "video": {"model.max_frames": 4, "train.video_weight": 1.0,
              "data.text_mix": ("caption", "qa", "bind", "bind", "concept", "concept", "infer", "event")},
    # Binding in many surface forms: the LM reads concept binding in four forms, twice as often, for 2500 steps,
    # each concept's two words in either order (so that no first-layer head binds the shape alone while the colour
    # goes unbound), and the binding documents use the same four forms; `both`, `aside` and `late` stay held out.
    # Held-out forms bind far better than the default's (docs/incontext.md).
    "forms": {"train.lm_steps": 2500, "data.text_formats": ("plain", "after", "before", "two"),
              "data.bind_formats": ("plain", "after", "before", "two"), "data.text_swap": 0.5,
              "data.text_mix": ("caption", "qa", "bind", "bind", "concept", "concept", "concept", "concept", "infer")},
    # One consumer GPU: wider, deeper, longer.
    "large": {"model.d_model": 256, "model.n_layers": 6, "model.n_heads": 8, "model.vision_width": 128,
              "model.latents": 16, "model.resampler_layers": 3, "train.lm_steps": 3000, "train.lm_batch": 64,
              "train.vision_steps": 2000, "train.vision_batch": 256, "train.flamingo_steps": 3000,
              "train.doc_batch": 64, "train.pair_batch": 64, "train.eval_episodes": 300},
}
PARTS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def settable():
    """Every (part, dataclass field) a --set may change."""
    return [(part, f) for part, cls in PARTS.items() for f in dataclasses.fields(cls) if not f.metadata.get("fixed")]


def _parse(text, f):
    """A --set value, read as the type of the field it replaces."""
    kind = type(f.default)
    try:
        if kind is str:
            return text
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if kind is tuple:
            items = tuple(t.strip() for t in text.split(",") if t.strip())
            inner = type(f.default[0]) if f.default else str
            return tuple(inner(t) for t in items)
        if kind is int:
            return int(text)
        return float(text)
    except ValueError:
        raise ValueError(f"cannot read {text!r} as {describe(f)}") from None


def make_config(preset="default", overrides=()):
    """Config from a preset name plus "part.field=value" strings (later ones win). Raises ConfigError."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    fields_ = {f"{part}.{f.name}": (part, f) for part, f in settable()}
    pairs = list(PRESETS[preset].items())
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set {item!r}: write it as part.field=value, e.g. train.lm_steps=200")
        pairs.append((key.strip(), value.strip()))
    parts = {p: {} for p in PARTS}
    for key, value in pairs:
        if key not in fields_:
            fixed = key.startswith("model.") and key[6:] in {f.name for f in dataclasses.fields(ModelConfig)}
            near = difflib.get_close_matches(key, fields_, n=1)
            raise ConfigError(f"--set {key}: " + ("set by the vocabulary (toy_data/vocab.py), not by hand" if fixed
                              else (f"no such setting; did you mean {near[0]}? " if near else "no such setting; ") +
                              "`python main.py train --help` lists every setting"))
        part, f = fields_[key]
        try:
            parts[part][f.name] = _parse(value, f) if isinstance(value, str) else value
        except ValueError as e:
            raise ConfigError(f"--set {key}={value}: {e}") from None
    return build(parts)


def build(parts):
    """Config from {"model": {...}, "data": {...}, "train": {...}} field values; ConfigError if any is invalid."""
    try:
        return Config(ModelConfig(**parts["model"]), DataConfig(**parts["data"]), TrainConfig(**parts["train"]))
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def to_dict(cfg):
    return dataclasses.asdict(cfg)


def from_dict(record):
    """The Config a checkpoint or config.json recorded, every field of it (lists back to tuples). Raises ConfigError,
    which names the settings the record and this code do not share: another version of the code wrote it."""
    known = {part: {f.name for f in dataclasses.fields(cls)} for part, cls in PARTS.items()}
    unknown = [f"{part}.{k}" for part in PARTS for k in record.get(part, {}) if k not in known[part]]
    missing = [f"{part}.{k}" for part in PARTS for k in sorted(known[part]) if k not in record.get(part, {})]
    if unknown or missing:
        raise ConfigError("it was written by another version of the code: " + "; ".join(
            f"{what} {', '.join(names)}" for what, names in (("this code has no", unknown), ("it lacks", missing))
            if names))
    return build({part: {k: tuple(v) if isinstance(v, list) else v for k, v in record.get(part, {}).items()}
                  for part in PARTS})
