# %% [markdown]
# # Lesson 7: training the bridge, and watching the gates open
#
# The paper's recipe in three stages (section 2.4): pretrain an LM on text; pretrain a vision encoder contrastively;
# freeze both and train only the resampler, the gated layers and the new token embeddings. This lesson runs all three
# at miniature size (well under a minute) with the same code as `python main.py train`, then plots the loss curves and
# the gates' |tanh(alpha)| (the paper's Fig. 6). Lesson 8's few-shot curves need the full recipe: your own run
# (`python main.py train`, timed in docs/performance.md), or the one kept in the repository (`lessons/trained.py`),
# whose gates this lesson sets beside the miniature's.

# %%
import own_checkout  # noqa: F401  (first, before torch: this checkout's code, idle threads that sleep soon)

import os
import shutil

import torch

from flamingo_min import train
from flamingo_min.lab import plots
from flamingo_min.config import make_config
from flamingo_min.errors import CheckpointError
from flamingo_min import checkpoints, runs
from lessons import claim, trained, wrap_up
from lessons.exercises import use
from toy_data import TOKENIZER, DocumentStream
from toy_data.documents import collate

OUT = os.environ.get("LESSONS_OUT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
FAST = bool(os.environ.get("LESSONS_FAST"))
RUN = os.path.join(OUT, "run_fast" if FAST else "run")

# %% [markdown]
# ## A miniature configuration
# The same presets and `--set` overrides as the command line.

# %%
steps = (20, 10, 20) if FAST else (150, 60, 120)
cfg = make_config("quick", ["model.d_model=64", "model.n_heads=2", "model.vision_width=32", "model.latents=4",
                            "model.resampler_layers=1", "data.text_len=96", f"train.lm_steps={steps[0]}",
                            f"train.vision_steps={steps[1]}", f"train.flamingo_steps={steps[2]}",
                            "train.lm_batch=8", "train.vision_batch=32", "train.doc_batch=16",
                            "train.pair_batch=16", "train.log_every=5"])
t = cfg.train
print(f"steps: lm {t.lm_steps}, vision {t.vision_steps}, flamingo {t.flamingo_steps}; batches: text {t.lm_batch}, "
      f"pairs {t.vision_batch} (vision), documents {t.doc_batch} + pairs {t.pair_batch} (bridge)")

# %% [markdown]
# ## Three stages
# A stage with a finished checkpoint is skipped: run the lesson twice and the second run is instant. If you change the
# configuration above, the old run no longer matches it (the trainer would refuse to mix them), so it is started afresh.

# %%
try:
    runs.start_run(RUN, cfg)   # checks the checkpoints already there against cfg, then records cfg
except CheckpointError:         # made with another configuration (or another version of this code): start afresh
    shutil.rmtree(RUN)
    runs.start_run(RUN, cfg)
for stage in runs.STAGES:
    kept = runs.stage_done(RUN, stage)
    ckpt = train.run_stage(RUN, stage, cfg, seed=0, progress=False)
    print(f"{stage:<9} {ckpt['step']} steps in {ckpt['elapsed']:5.1f} s" +
          (f" (by an earlier run of this lesson: kept in {RUN})" if kept else ""))
metrics = runs.read_metrics(RUN)

# %% [markdown]
# ## What stayed frozen
# After the bridge trained, the LM's weights are bit-identical to what stage `lm` produced.

# %%
lm = checkpoints.load_checkpoint(runs.ckpt_path(RUN, "lm"))["model"]
fl = checkpoints.load_checkpoint(runs.ckpt_path(RUN, "flamingo"))["model"]
print("LM untouched:", all(torch.equal(fl["lm." + k], v) for k, v in lm.items()))
model, _ = runs.load_run(RUN)
n_train = sum(p.numel() for _, p in model.trainable_parameters())
print(f"trainable: {n_train:,} of {sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# ## Writing in the LM's units
# A trained LM's residual stream is large after its first block (its MLPs write big vectors), while a freshly
# initialised gated layer writes vectors of size ~1: the LM's LayerNorms would drown them until the layer's weights
# grew many-fold. So each gated layer multiplies its branches by a fixed scale, measured once on text: the RMS of the
# stream where it writes (`Flamingo.calibrate`). The full-size LM of the run kept in the repository is printed beside
# the miniature's: its stream is larger still.

# %%
full, _ = runs.load_run(trained.run("video"))   # the 1200-step run kept in the repository (lessons/trained.py)
for name, m in (("this miniature run", model), ("the video preset's run", full)):
    print(f"{name:<22} each gated layer's scale (RMS of the residual stream before its block):",
          [round(layer.scale.item(), 2) for layer in m.xattn])

# %% [markdown]
# ## Which tokens carry the loss (exercise `next_token_loss`)
# Position t-1 predicts token t, and only the targets marked in the document's loss mask are scored: never `<bos>`,
# `<image>` or padding, nor a first answer that the context cannot yet tell (toy_data/documents.py).

# %%
next_token_loss = use("next_token_loss")
ids, mask, images, _ = collate(DocumentStream(cfg.data, seed=1).batch(range(8)))
with torch.no_grad():
    logits = model(ids, images=images)
print(f"document loss {next_token_loss(logits, ids, mask).item():.3f} (the trainer's: "
      f"{train.next_token_loss(logits, ids, mask).item():.3f}), over {int(mask.sum())} scored targets of "
      f"{int((ids[:, 1:] != TOKENIZER.pad_id).sum())} real ones")

# %% [markdown]
# ## Loss curves and gates

# %%
for name, picture in (("07_losses.png", plots.losses(metrics)), ("07_gates.png", plots.gates(metrics))):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(picture)
last = [m for m in metrics if m["stage"] == "flamingo"][-1]
print("final |tanh(alpha)| per layer:", {k: round(v, 3) for k, v in last.items() if k.startswith(("xattn", "dense"))})
claim(all(v > 0 for k, v in last.items() if k.startswith(("xattn", "dense"))), "every gate opened from 0",
      str({k: v for k, v in last.items() if k.startswith(("xattn", "dense"))}))


grows, last_widest = [], []   # per run and kind of gate: do they grow layer by layer; is the last one the widest
for name, gates in (("this miniature run", last), ("the video preset's 1200-step run", full.gates())):
    for kind in ("xattn", "dense"):
        values = [gates[f"{kind}{i}"] for i in range(len(model.xattn))]
        grows.append(all(a <= b for a, b in zip(values, values[1:])))
        last_widest.append(values[-1] == max(values))
        print(f"{name:<33} {kind:<5} gates, first layer to last: " + " ".join(f"{v:.3f}" for v in values) +
              ("   (growing with depth)" if grows[-1] else "   (the last widest)" if last_widest[-1] else ""))

# %% [markdown]
# ## Summary and questions

# %%
wrap_up(7, [
    "Only the bridge trains; each update sums the interleaved-document loss (x1.0) and the pair loss (x0.2).",
    "Gates start at 0 and open over training. The paper's Fig. 6 has deeper layers open more; of the four rows of "
    f"gates above, {sum(grows) or 'none'} grow{'s' * (sum(grows) == 1)} layer by layer, and in {sum(last_widest)} "
    "the last layer's is the widest open.",
], [
    "Why does the paper accumulate gradients across datasets instead of alternating (round-robin)?",
    "Which tokens carry no loss in a binding document, and why? (toy_data/documents.py)",
    "Lesson 8 finds the shipped model's whole lookup in gated layer 0, whose gates are printed above, far below 1. "
    "Why is gate size a poor measure of influence?",
])
print(f"figures in {OUT}; the run is in {RUN}")
