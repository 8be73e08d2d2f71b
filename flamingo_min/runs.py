"""A run folder: the checkpoint of each stage, the configuration that made them, the training log, and the trained
models read back from it.

    runs/NAME/config.json      the configuration (--preset and --set), written once every checkpoint agrees with it
    runs/NAME/lm.pt, vision.pt, flamingo.pt   each stage's checkpoint (checkpoints.py): weights, optimiser, step
    runs/NAME/metrics.jsonl    one line per logged step: stage, step, loss, learning rate, seconds, gates,
                               and the LM's copying probe (`copy`) every 100 LM steps

A stage's checkpoint depends only on the settings its stage reads (the `stage=` of each setting in config.py), so one
pretrained LM and encoder serve every variant of the bridge, and a run resumed with different settings stops with a
message that lists them.
"""
import json
import os

import torch

from toy_data import TextCorpus
from toy_data.documents import collate

from .checkpoints import check_writable, load_checkpoint, write_text
from .config import from_dict, settable, to_dict
from .errors import CheckpointError, ConfigError
from .flamingo import Flamingo
from .lm import LM

STAGES = ("lm", "vision", "flamingo")


# --- the run folder ------------------------------------------------------------------------------------------------
def ckpt_path(run, stage):
    return os.path.join(run, f"{stage}.pt")


def stages(cfg):
    """The stages this configuration trains, in order: no `lm` stage for an LM trained from scratch inside the bridge's
    stage, no `vision` stage for a randomly initialised encoder."""
    return [s for s in STAGES if not (s == "lm" and cfg.train.lm_mode == "scratch" or
                                      s == "vision" and cfg.train.vision_mode == "random")]


def stage_done(run, stage):
    """Has `run` a checkpoint of `stage` that marks it finished? (finished_checkpoint reads it, checked.)"""
    path = ckpt_path(run, stage)
    return os.path.exists(path) and load_checkpoint(path)["done"]


# What each stage's checkpoint depends on: the bridge is trained on top of both pretrained stages.
DEPENDS = {"lm": {"lm"}, "vision": {"vision"}, "flamingo": set(STAGES)}


def _comparable(cfg_dict, stage):
    """The settings a stage's checkpoint depends on: all but evaluation settings and those only other stages read."""
    settings = json.loads(json.dumps(cfg_dict))  # tuples -> lists, as they come back from a checkpoint
    for part, f in settable():
        reader = f.metadata.get("stage")
        if (reader and reader not in DEPENDS[stage]) or f.name in ("eval_episodes", "eval_shots") or \
                f.metadata.get("runtime"):
            settings.get(part, {}).pop(f.name, None)
    return settings


def check_config(saved, cfg, path, stage="flamingo"):
    """A CheckpointError if a checkpoint of `stage` was made with a configuration that differs in anything the stage
    depends on (for the `lm` and `vision` stages, the bridge's settings do not count)."""
    then, now = _comparable(saved, stage), _comparable(to_dict(cfg), stage)
    keys = {(part, k) for d in (then, now) for part in d for k in d[part]}  # a setting this code lacks counts too
    diffs = [f"{part}.{k}: {then.get(part, {}).get(k)!r} in the checkpoint, {now.get(part, {}).get(k)!r} now"
             for part, k in sorted(keys) if then.get(part, {}).get(k) != now.get(part, {}).get(k)]
    if diffs:
        raise CheckpointError(f"{path} was made with a different configuration ({'; '.join(diffs)}). Use a new "
                              "--out folder, or the same --preset and --set values that made this run (see "
                              "config.json).")


def start_run(run, cfg, write=True):
    """Check every checkpoint already in `run` against cfg, then (and only then, if `write`) record cfg in
    config.json."""
    for stage in STAGES:
        if os.path.exists(ckpt_path(run, stage)):
            check_config(load_checkpoint(ckpt_path(run, stage))["config"], cfg, ckpt_path(run, stage), stage)
    if not write:
        return
    path = os.path.join(run, "config.json")
    check_writable(path)
    write_text(json.dumps(to_dict(cfg), indent=1), path)


def log_metrics(run, record):
    with open(os.path.join(run, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run):
    """Every logged record; a last line cut short by a kill is left out."""
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def trim_metrics(run, stage, step):
    """On resume, forget log lines this stage wrote after its last checkpoint: they will be written again."""
    keep = [m for m in read_metrics(run) if not (m["stage"] == stage and m["step"] >= step)]
    write_text("".join(json.dumps(m) + "\n" for m in keep), os.path.join(run, "metrics.jsonl"))


def make_lm(model_cfg):
    return LM(model_cfg.vocab_size, model_cfg.d_model, model_cfg.n_layers, model_cfg.n_heads, model_cfg.context)


def finished_checkpoint(run, stage, cfg):
    """The checkpoint of a finished stage of `run`, checked against cfg; a CheckpointError that says what to run
    otherwise."""
    path = ckpt_path(run, stage)
    saved = load_checkpoint(path) if os.path.exists(path) else None
    if saved is None or not saved["done"]:
        raise CheckpointError(f"{run} has no finished {stage!r} stage ({path}): run `python main.py train --out "
                              f"{run}` (every stage), or `--stage {stage}` first")
    check_config(saved["config"], cfg, path, stage)
    return saved


def load_lm(run, cfg):
    """The pretrained, frozen LM of a run's finished `lm` stage."""
    lm = make_lm(cfg.model)
    lm.load_state_dict(finished_checkpoint(run, "lm", cfg)["model"])
    return lm.eval().requires_grad_(False)


def build_flamingo(run, cfg, device):
    """Flamingo with the LM and the encoder from their finished stages (or freshly initialised where train.lm_mode or
    train.vision_mode says so), frozen."""
    model = Flamingo(cfg.model)
    if cfg.train.lm_mode != "scratch":
        model.lm.load_state_dict(load_lm(run, cfg).state_dict())
    if cfg.train.vision_mode == "pretrained":
        encoder = finished_checkpoint(run, "vision", cfg)["model"]
        model.vision.load_state_dict({k[len("vision."):]: v for k, v in encoder.items() if k.startswith("vision.")})
    model.reset_new_embeddings()
    model.calibrate(collate([TextCorpus(cfg.data, seed=-1)[i] for i in range(16)])[0])  # fixed text, not training data
    return model.freeze().to(device)


def load_run(run, device=torch.device("cpu")):
    """The trained Flamingo of a finished run folder, in eval mode, and its Config."""
    if not os.path.isdir(run):
        raise CheckpointError(f"no run folder {run!r}: train one with `python main.py train --out {run}`")
    path = ckpt_path(run, "flamingo")
    saved = load_checkpoint(path) if os.path.exists(path) else None
    if saved is None or not saved["done"]:
        raise CheckpointError(f"{run} has no finished flamingo checkpoint ({path}): finish it with "
                              f"`python main.py train --out {run}`")
    try:
        cfg = from_dict(saved["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path} records a configuration this code cannot use ({e}); retrain it") from None
    model = Flamingo(cfg.model)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError:
        raise CheckpointError(f"{path}'s weights do not fit its own configuration; delete it and retrain the "
                              f"flamingo stage (`python main.py train --out {run} --stage flamingo`)") from None
    return model.freeze().to(device).eval(), cfg
