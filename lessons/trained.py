"""The lessons' trained models, kept in the repository (`lessons/trained.pt`), so that lessons 8, 9 and 10 show
few-shot binding, the all-images ablation and video on a machine that has trained nothing.

What the file holds, weights only (no optimiser state), in float16 to halve its size:
- `video`: the `video` preset's run, seed 0, without documents that open with text (PLAIN_BINDING below: exactly what
  `python main.py train --preset video` trains with that `--set` value; the LM, the contrastive encoder, the bridge;
  stills and clips): lessons 8 and 10 read it;
- `all-images`: a second bridge, trained with the same recipe and seed on the same frozen LM and encoder but with
  `model.only_immediate=false` (the paper's "attend to all previous images"): lesson 9 sets it beside the first.
The frozen LM and encoder are stored once: 5.7 MB in all. Rebuild the file with `make lesson-weights`: the usual
training code into runs/lesson-build (resumable), then `export` (its time: docs/performance.md). Training is
deterministic on one machine: on the shipped `video` model lesson 10 prints the numbers docs/video.md gives for the
preset's seed 0.

`python -m lessons.trained export` writes the file again from finished runs in runs/lesson-build, without training.

A lesson calls `run("video")`: on first use (or when trained.pt is newer) the file is unpacked into an ordinary run
folder, runs/lesson/video (lm.pt, vision.pt, flamingo.pt, config.json), which `runs.load_run` then reads with every
check it applies to any run: program, format and SHA-256 fingerprint (checkpoints.py), the recorded configuration
against this code's, the weights against that configuration. `python main.py eval --run runs/lesson/video` works on it too.

Why weights and not a small preset trained on first use: binding needs the LM's 900 steps and the encoder's 800
before the bridge can learn it (docs/recipe.md), minutes of training before the bridge's first step, and at
300 bridge steps it has only started (docs/ablations.md); lesson 9 needs two bridges and lesson 10 a video run.
Unpacking takes a second, and every lesson and test reads the same numbers.
"""
import json
import os
import shutil
import sys

import torch

from flamingo_min import train
from flamingo_min.config import from_dict, make_config, to_dict
from flamingo_min.errors import CheckpointError, ConfigError, FlamingoError
from flamingo_min.checkpoints import load_checkpoint, save_checkpoint, write_text
from flamingo_min.flamingo import Flamingo
from flamingo_min import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "lessons", "trained.pt")
BUILD = os.path.join(ROOT, "runs", "lesson-build")   # where `make lesson-weights` trains
UNPACKED = os.path.join(ROOT, "runs", "lesson")      # where lessons read them
PRESET = "video"
SEED = 0
# The lessons' recipe: the video preset without documents that open with text (data.infer_text=0): every figure and
# answer of lessons 8-10 was worked out on it. docs/results.md gives the full recipe's scores.
PLAIN_BINDING = ("data.infer_text=0",)
# Each model: the --set values on top of the video preset. The first one's LM and encoder serve every other.
MODELS = {"video": PLAIN_BINDING, "all-images": PLAIN_BINDING + ("model.only_immediate=false",)}
FROZEN = ("lm.", "vision.")   # the pretrained, frozen parts, shared by every model in the file
SHIPPED = "LESSONS_SHIPPED"   # set (to 1) to make lessons use the shipped models even where runs/ has their own


def config(name):
    return make_config(PRESET, list(MODELS[name]))


# --- building the file ---------------------------------------------------------------------------------------------
def build(folder=BUILD, progress=True):
    """Train every model with the usual training code (a killed build resumes), then export them."""
    first = os.path.join(folder, "video")
    for name in MODELS:
        run, cfg = os.path.join(folder, name), config(name)
        os.makedirs(run, exist_ok=True)
        if run != first:   # the same frozen stages as the first model: link its finished checkpoints
            for stage in ("lm", "vision"):
                if not os.path.exists(runs.ckpt_path(run, stage)):
                    os.link(runs.ckpt_path(first, stage), runs.ckpt_path(run, stage))
        runs.start_run(run, cfg)
        for stage in runs.stages(cfg):
            ckpt = train.run_stage(run, stage, cfg, seed=SEED, progress=progress)
            print(f"{name:<11} {stage:<9} {ckpt['step']} steps, {ckpt['elapsed']:.0f} s of training")
    export(folder)


def half(state):
    """float32 tensors -> float16 (every value of these models fits: checked); other dtypes as they are."""
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            if v.numel() and v.abs().max() > torch.finfo(torch.float16).max:
                raise FlamingoError(f"{k} holds a value float16 cannot represent; keep it in float32")
            v = v.half()
        out[k] = v
    return out


def export(folder=BUILD, path=None):
    """The finished runs in `folder` -> one weights file (default WEIGHTS): the frozen parts once, each model's
    bridge, its config."""
    path = path or WEIGHTS
    models, configs, steps = {}, {}, {}
    for name in MODELS:
        saved = runs.finished_checkpoint(os.path.join(folder, name), "flamingo", config(name))
        models[name], configs[name], steps[name] = saved["model"], saved["config"], saved["step"]
    frozen = {k: v for k, v in models["video"].items() if k.startswith(FROZEN)}
    for name, state in models.items():   # the same LM and encoder under every bridge, bit for bit
        if any(not torch.equal(state[k], v) for k, v in frozen.items()):
            raise FlamingoError(f"{name} was not trained on the video model's LM and encoder: rebuild {folder}")
    bridges = {name: half({k: v for k, v in state.items() if not k.startswith(FROZEN)})
               for name, state in models.items()}
    save_checkpoint({"stage": "lessons", "step": steps, "done": True, "config": configs, "seed": SEED,
                     "model": {"frozen": half(frozen), "bridges": bridges}, "optim": {},
                     "rng": torch.empty(0, dtype=torch.uint8), "elapsed": 0.0}, path)
    print(f"written {path}: {os.path.getsize(path) / 1e6:.1f} MB, models {', '.join(MODELS)}")


# --- reading it ----------------------------------------------------------------------------------------------------
def unpack(name):
    """Write model `name` of the weights file as a run folder in runs/lesson/ (float32, no optimiser state)."""
    shipped = load_checkpoint(WEIGHTS)   # program, format, fingerprint: a damaged file stops here
    if name not in shipped["config"]:
        raise CheckpointError(f"{WEIGHTS} has no model {name!r} (it has {', '.join(shipped['config'])}): rebuild "
                              "it with `make lesson-weights`")
    rebuild = "rebuild it with `make lesson-weights`"
    try:
        cfg = from_dict(shipped["config"][name])
    except ConfigError as e:
        raise CheckpointError(f"{WEIGHTS} records a configuration this code cannot build ({e}): {rebuild}") from None
    state = {k: v.float() if v.is_floating_point() else v
             for part in (shipped["model"]["frozen"], shipped["model"]["bridges"][name]) for k, v in part.items()}
    try:
        Flamingo(cfg.model).load_state_dict(state)
    except RuntimeError:
        raise CheckpointError(f"{WEIGHTS}'s {name} model no longer fits this code's Flamingo: {rebuild}") from None
    run = os.path.join(UNPACKED, name)
    shutil.rmtree(run, ignore_errors=True)   # an older unpacking, perhaps of another configuration
    os.makedirs(run)
    common = {"done": True, "config": to_dict(cfg), "seed": shipped["seed"], "optim": {},
              "rng": torch.empty(0, dtype=torch.uint8), "elapsed": 0.0}
    steps = cfg.train
    save_checkpoint({**common, "stage": "lm", "step": steps.lm_steps,
                     "model": {k[3:]: v for k, v in state.items() if k.startswith("lm.")}}, runs.ckpt_path(run, "lm"))
    save_checkpoint({**common, "stage": "vision", "step": steps.vision_steps,   # the encoder's image side only
                     "model": {k: v for k, v in state.items() if k.startswith("vision.")}},
                    runs.ckpt_path(run, "vision"))
    save_checkpoint({**common, "stage": "flamingo", "step": shipped["step"][name], "model": state},
                    runs.ckpt_path(run, "flamingo"))
    write_text(json.dumps(to_dict(cfg), indent=1), os.path.join(run, "config.json"))
    return run


def run(name):
    """The run folder of shipped model `name`, unpacked on first use or when trained.pt is newer than it."""
    if not os.path.exists(WEIGHTS):
        raise CheckpointError(f"{WEIGHTS} is missing: restore it (git checkout lessons/trained.pt) or rebuild it "
                              "with `make lesson-weights`")
    path = runs.ckpt_path(os.path.join(UNPACKED, name), "flamingo")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(WEIGHTS):
        unpack(name)
    return os.path.dirname(path)


def pick(own, name):
    """(run folder, model, cfg): your own run `own` (e.g. runs/default) when it has a finished bridge, else the
    shipped model `name`. LESSONS_SHIPPED=1 always picks the shipped one (the tests do)."""
    if own and not os.environ.get(SHIPPED) and os.path.exists(runs.ckpt_path(own, "flamingo")):
        try:
            return (own, *runs.load_run(own))
        except CheckpointError as e:
            print(f"not using {own}: {e}\n")
    folder = run(name)
    return (folder, *runs.load_run(folder))


if __name__ == "__main__":
    export() if sys.argv[1:] == ["export"] else build()
